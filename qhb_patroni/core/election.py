"""Am I the healthiest node to take the free leader lock? (spec 5.4)

Evaluated top-down; the first decisive rule wins.  Peers are asked over HTTP
by the shell: when their answers are still missing, the verdict says whom to
ask and decide() emits a ProbePeers action.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .eligibility import candidate_names, peer_can_take_over
from .failsafe import race_veto
from .fencing import watchdog_unusable
from .local import STATE_STARTING
from .model import ClusterView
from .observation import Memory, Observation, Settings
from .switchover import race_rule
from .syncrep import sync_members


@dataclass(frozen=True)
class Verdict:
    healthiest: bool
    why: str = ""
    probe: Optional[Tuple[str, ...]] = None  # ask these peers first, then decide again


def race_candidates(cluster: ClusterView, me: str) -> Tuple[str, ...]:
    """Other members worth asking: they publish an api_url and may fail over."""
    return candidate_names(cluster, me)


def is_healthiest(obs: Observation, memory: Memory, settings: Settings) -> Verdict:
    cluster = obs.cluster
    local = obs.local
    assert cluster is not None
    if memory.release_backoff_until is not None and obs.now < memory.release_backoff_until:
        return Verdict(False, "backing off after releasing the lock")
    if local.state == STATE_STARTING:
        return Verdict(False, "still starting")
    if local.is_primary:
        return Verdict(True, "running as primary")
    veto = race_veto(obs, settings)
    if veto is not None:
        return Verdict(False, veto)
    if watchdog_unusable(obs, settings):
        return Verdict(False, "watchdog device is not usable")
    if cluster.paused and (cluster.failover is None or cluster.failover.candidate != settings.name):
        return Verdict(False, "paused")  # only the named failover candidate races in pause
    if settings.nofailover:
        return Verdict(False, "nofailover")
    rule = race_rule(obs, settings)
    if rule.verdict is not None:
        return Verdict(rule.verdict, rule.why)
    # Synchronous mode: only the /sync leader and its standbys hold every acknowledged commit.
    allowed = sync_members(cluster.sync) if settings.synchronous_mode else ()
    if allowed and settings.name not in allowed:
        return Verdict(False, "not a synchronous standby")
    my_lsn = local.lsn or 0
    if rule.check_lag and cluster.last_lsn - my_lsn > settings.maximum_lag_on_failover:
        return Verdict(False, "My wal position exceeds maximum replication lag")
    if settings.check_timeline and (local.timeline or 0) < cluster.timeline:
        return Verdict(False, f"My timeline {local.timeline} is behind last known cluster timeline {cluster.timeline}")
    if obs.peers is None:
        names = set(race_candidates(cluster, settings.name)) | set(rule.probe or ())
        if allowed:
            names &= set(allowed) | set(rule.probe or ())
        if names:
            return Verdict(False, "asking peers", probe=tuple(sorted(names)))
    former_leader = cluster.sync.leader if allowed and cluster.sync is not None else None
    for name, peer in sorted((obs.peers or {}).items()):
        if name in (settings.name, rule.exclude) or peer is None or not peer_can_take_over(peer):
            continue
        if allowed and name not in allowed:
            continue
        if not peer.in_recovery:
            return Verdict(False, f"Primary ({name}) is still alive")
        if peer.wal_position > my_lsn and name != former_leader:
            return Verdict(False, f"{name} has a higher wal position")
    return Verdict(True, "no better candidate")
