"""Manual failover / switchover through the /failover key (spec 5.8).

Leader side: after renewing, a pending request makes the leader demote
gracefully (releasing the lock) once some candidate is fit to take over;
otherwise the request is cleared.  Other side: while nobody leads, the named
candidate wins the race, and the former leader steps back when anyone else
can take over.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Final, Literal, Mapping, Optional, Tuple

from .eligibility import candidate_names, peer_can_take_over
from .model import ClusterView, Failover
from .observation import Observation, PeerStatus, Settings
from .syncrep import sync_members

# What the leader should do about a /failover request.
StepKind = Literal["wait", "probe", "demote", "clear", "stream_wait"]
WAIT: Final = "wait"  # not due yet / nothing to do this cycle
PROBE: Final = "probe"  # ask `names` first
DEMOTE: Final = "demote"  # graceful demotion: someone can take over
CLEAR: Final = "clear"  # drop the request (with a warning)
STREAM_WAIT: Final = "stream_wait"  # like WAIT: the fit candidates do not stream from me yet


def stream_wait_limit(settings: Settings) -> float:
    """How long a switchover waits for a candidate to stream from the leader before
    handing over anyway (a cascading replica never does)."""
    return max(10.0, 2.0 * float(settings.loop_wait))


@dataclass(frozen=True)
class LeaderStep:
    what: StepKind
    names: Tuple[str, ...] = ()
    warning: str = ""


def _epoch(when: _dt.datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return when.timestamp()


def eligible(peer: Optional[PeerStatus], cluster: ClusterView, settings: Settings, check_lag: bool = True) -> bool:
    """Reachable, allowed to fail over, not lagging too far behind and, with
    check_timeline, not behind the cluster timeline."""
    if peer is None or not peer_can_take_over(peer):
        return False
    if check_lag and cluster.last_lsn and cluster.last_lsn - peer.wal_position > settings.maximum_lag_on_failover:
        return False
    if settings.check_timeline and (not peer.timeline or peer.timeline < cluster.timeline):
        return False
    return True


def _candidates(cluster: ClusterView, fo: Failover, settings: Settings) -> Tuple[str, ...]:
    me = settings.name
    # Synchronous mode: hand over only to a standby named in /sync (it has every acknowledged commit).
    allowed = set(sync_members(cluster.sync)) if settings.synchronous_mode else None
    if fo.candidate:
        if allowed is not None and fo.candidate not in allowed:
            return ()
        return (fo.candidate,) if fo.candidate != me and cluster.member(fo.candidate) is not None else ()
    return candidate_names(cluster, me, allowed)


def leader_step(obs: Observation, settings: Settings, waited: float = 0.0) -> LeaderStep:
    """The lock holder's handling of a pending /failover (None-safe: WAIT when absent).
    `waited`: seconds this request has already waited for a candidate to stream."""
    cluster = obs.cluster
    assert cluster is not None
    fo = cluster.failover
    if fo is None:
        return LeaderStep(WAIT)
    me = settings.name
    if fo.scheduled_at is not None:
        if obs.wall_time is None:
            return LeaderStep(WAIT, warning="scheduled failover: wall clock unknown")
        due = _epoch(fo.scheduled_at)
        if due - obs.wall_time > 0:
            seconds = int(due - obs.wall_time)
            when = fo.scheduled_at.isoformat()
            return LeaderStep(WAIT, warning=f"Awaiting failover at {when} (in {seconds} seconds)")
        if obs.wall_time - due > 1.5 * settings.loop_wait:
            return LeaderStep(CLEAR, warning="Found a stale failover value, cleaning up")
    if fo.leader and fo.leader != me:
        return LeaderStep(CLEAR, warning="leader name does not match")
    if fo.candidate == me:
        return LeaderStep(CLEAR, warning="I am already the leader, no need to failover")
    if not fo.candidate and cluster.paused:
        return LeaderStep(CLEAR, warning="manual failover: no candidate while paused")
    names = _candidates(cluster, fo, settings)
    if not names:
        return LeaderStep(CLEAR, warning="manual failover: no healthy members found, failover is not possible")
    if obs.peers is None:
        return LeaderStep(PROBE, names=names)
    fit = [n for n in names if eligible(obs.peers.get(n), cluster, settings)]
    if not fit:
        return LeaderStep(CLEAR, warning="manual failover: no healthy members found, failover is not possible")
    streaming = obs.streaming is None or any(n in obs.streaming for n in fit)
    if not streaming and waited < stream_wait_limit(settings):
        # Not connected to me: the shutdown could not deliver the last WAL to it. Wait a cycle.
        return LeaderStep(STREAM_WAIT, warning=f"manual failover: waiting for {', '.join(fit)} to stream from me")
    return LeaderStep(DEMOTE)


@dataclass(frozen=True)
class RaceRule:
    """How a pending /failover shapes the leader race of a non-leader.
    `verdict` None = no opinion, run the normal rules (excluding `exclude`,
    with or without the lag check)."""

    verdict: Optional[bool] = None
    why: str = ""
    probe: Optional[Tuple[str, ...]] = None
    exclude: Optional[str] = None
    check_lag: bool = True


def race_rule(obs: Observation, settings: Settings) -> RaceRule:
    cluster = obs.cluster
    assert cluster is not None
    fo = cluster.failover
    if fo is None or not (fo.leader or fo.candidate):
        return RaceRule()
    me = settings.name
    peers: Mapping[str, Optional[PeerStatus]] = obs.peers or {}
    allowed = sync_members(cluster.sync) if settings.synchronous_mode else ()
    if allowed and me not in allowed:
        return RaceRule(False, "not a synchronous standby")
    if fo.candidate:
        if fo.candidate == me:
            return RaceRule(True, "I am the failover candidate")
        if cluster.paused:
            return RaceRule(False, "paused")
        if cluster.member(fo.candidate) is not None:
            if obs.peers is None:
                return RaceRule(probe=(fo.candidate,))
            if eligible(peers.get(fo.candidate), cluster, settings, check_lag=False):
                return RaceRule(False, f"failover candidate {fo.candidate} is healthy")
        return RaceRule()  # the candidate is gone: anyone may win
    if cluster.paused:
        return RaceRule(False, "paused")
    if fo.leader == me:
        others = candidate_names(cluster, me, allowed or None)
        if others and obs.peers is None:
            return RaceRule(probe=others)
        if any(eligible(peers.get(n), cluster, settings, check_lag=False) for n in others):
            return RaceRule(False, "I was the leader asked to step down")
        return RaceRule(True, "nobody else can take over")
    return RaceRule(exclude=fo.leader, check_lag=False)
