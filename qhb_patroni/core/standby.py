"""Standby cluster (dynamic `standby_cluster`, spec 3.3 and 5.3-5.5), pure.

A cluster is a standby cluster when `standby_cluster` sets host, port or
restore_command.  Its lock holder is the standby leader: it follows the remote
primary (or restores from the archive) and is never promoted; the other members
follow it.  Removing `standby_cluster` turns the standby leader into a primary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from .model import Member

REMOTE_MEMBER = "remote_member"


def _text(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    return str(value)


@dataclass(frozen=True)
class StandbyCluster:
    host: Optional[str] = None
    port: int = 5432
    primary_slot_name: Optional[str] = None
    restore_command: Optional[str] = None
    archive_cleanup_command: Optional[str] = None
    recovery_min_apply_delay: Optional[str] = None
    create_replica_methods: Tuple[str, ...] = ()

    @property
    def remote(self) -> Optional[Member]:
        """The remote primary as a member to follow or clone from; None when the
        standby cluster only restores from the archive."""
        if self.host is None:
            return None
        return Member(name=REMOTE_MEMBER, conn_url=f"postgres://{self.host}:{self.port}/postgres",
                      state="running", role="master")

    @property
    def host_port(self) -> Optional[Tuple[str, int]]:
        return (self.host, self.port) if self.host is not None else None


def standby_cluster(raw: Any) -> Tuple[Optional[StandbyCluster], Tuple[str, ...]]:
    """(the standby cluster or None, problems naming the key)."""
    if not isinstance(raw, Mapping):
        return None, ()
    host, port, restore = _text(raw.get("host")), _text(raw.get("port")), _text(raw.get("restore_command"))
    if host is None and port is None and restore is None:
        return None, ()
    problems = []
    number = 5432
    if port is not None:
        try:
            number = int(port)
        except ValueError:
            problems.append(f"standby_cluster.port: not a port number: {port!r}")
    if host is None and port is not None:
        host = "localhost"
    methods = raw.get("create_replica_methods") or ()
    if isinstance(methods, str):
        methods = (methods,)
    return StandbyCluster(
        host=host,
        port=number,
        primary_slot_name=_text(raw.get("primary_slot_name")),
        restore_command=restore,
        archive_cleanup_command=_text(raw.get("archive_cleanup_command")),
        recovery_min_apply_delay=_text(raw.get("recovery_min_apply_delay")),
        create_replica_methods=tuple(str(m) for m in methods if m),
    ), tuple(problems)


def follows_remote(following: Optional[str], standby: StandbyCluster) -> bool:
    """Do the recovery settings in effect (LocalState.following) point at the remote?"""
    hp = standby.host_port
    if hp is None:
        return following is None
    return following == f"{hp[0]}:{hp[1]}"

