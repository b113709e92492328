"""Choosing members by role, as patronictl's `--role` options do (spec 2.4). PURE."""
from __future__ import annotations

from typing import List, Optional

from qhb_patroni.core.model import ClusterView, Member

ROLE_CHOICES = ("leader", "primary", "standby-leader", "replica", "standby", "any", "master")


def leader_member(cluster: ClusterView) -> Optional[Member]:
    """The lock holder's member entry (a placeholder with only the name if it has none)."""
    if cluster.leader is None or not cluster.leader.name:
        return None
    return cluster.member(cluster.leader.name) or cluster.leader.member or Member(name=cluster.leader.name)


def members_with_role(cluster: ClusterView, role: str = "leader") -> List[Member]:
    """leader: the lock holder of any kind; primary/master: a leader that is not a
    standby leader; standby-leader: a leader that is not a primary; replica/standby:
    everyone but the leader; any: everyone."""
    if role in ("leader", "master", "primary", "standby-leader"):
        leader = leader_member(cluster)
        if leader is None:
            return []
        member_role = leader.role or leader.data.get("role")
        if role in ("master", "primary") and member_role == "standby_leader":
            return []
        if role == "standby-leader" and member_role in ("master", "primary"):
            return []
        return [leader]
    leader_name = cluster.leader.name if cluster.leader is not None else None
    if role == "any":
        return list(cluster.members)
    if role in ("replica", "standby"):
        return [m for m in cluster.members if m.name != leader_name]
    raise ValueError(f"unknown role {role!r}")

