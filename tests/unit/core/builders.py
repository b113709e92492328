"""Small builders for decide() inputs: read a test as a sentence, not a setup."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from qhb_patroni.core.local import (
    DATA_EMPTY,
    DATA_PRESENT,
    STATE_RUNNING,
    STATE_STOPPED,
    Divergence,
    LocalState,
    TaskStatus,
)
from qhb_patroni.core.model import ClusterConfig, ClusterView, Failover, Leader, Member
from qhb_patroni.core.observation import FailedAction, Memory, Observation, PeerStatus, Settings

SYSID = "7000000000000000001"
OTHER_SYSID = "7999999999999999999"
NOW = 1000.0


def port_of(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return 5432 + (int(digits) if digits else 0)


def hostport(name: str) -> str:
    return f"127.0.0.1:{port_of(name)}"


def member(
    name: str,
    role: str = "replica",
    state: str = "running",
    lsn: int = 0,
    tags: Optional[Mapping[str, Any]] = None,
    api: bool = True,
    version: int = 1,
) -> Member:
    return Member(
        name=name,
        conn_url=f"postgres://127.0.0.1:{port_of(name)}/qhb",
        api_url=f"http://127.0.0.1:{8000 + port_of(name) - 5432}/patroni" if api else None,
        state=state,
        role=role,
        xlog_location=lsn,
        timeline=1,
        tags=dict(tags or {}),
        version=version,
    )


def cluster(
    leader: Optional[str] = None,
    members: Sequence[Member] = (),
    names: Sequence[str] = ("n0", "n1", "n2"),
    initialize: Optional[str] = SYSID,
    last_lsn: int = 0,
    leader_version: int = 7,
    config: Optional[Mapping[str, Any]] = None,
    failover: Optional[Failover] = None,
) -> ClusterView:
    if not members:
        members = tuple(member(n, role="master" if n == leader else "replica") for n in names)
    by_name = {m.name: m for m in members}
    lead = None
    if leader is not None:
        lead = Leader(name=leader, version=leader_version, member=by_name.get(leader) or Member(name=leader))
    return ClusterView(
        initialize=initialize,
        initialize_version=3 if initialize is not None else None,
        config=ClusterConfig(data=dict(config if config is not None else {"ttl": 30}), version=2),
        leader=lead,
        members=tuple(members),
        failover=failover,
        last_lsn=last_lsn,
    )


def primary(lsn: int = 100, slots: Sequence[str] = ()) -> LocalState:
    return LocalState(
        data_dir=DATA_PRESENT, state=STATE_RUNNING, role="master", running=True, in_recovery=False,
        timeline=1, lsn=lsn, sysid=SYSID, rewind_possible=True, slots=tuple(slots),
    )


def replica(lsn: int = 100, following: Optional[str] = None, slot: Optional[str] = None) -> LocalState:
    return LocalState(
        data_dir=DATA_PRESENT, state=STATE_RUNNING, role="replica", running=True, in_recovery=True,
        timeline=1, lsn=lsn, sysid=SYSID, following=following, slot_name=slot, rewind_possible=True,
    )


def stopped(sysid: str = SYSID, state: str = STATE_STOPPED) -> LocalState:
    return LocalState(data_dir=DATA_PRESENT, state=state, sysid=sysid, rewind_possible=True, lsn=90)


def empty() -> LocalState:
    return LocalState(data_dir=DATA_EMPTY)


def task(kind: str, name: str = "", done: bool = False, ok: bool = False, error: Optional[str] = None) -> TaskStatus:
    return TaskStatus(kind=kind, name=name or kind.lower(), done=done, ok=ok, error=error)


def peer(name: str, lsn: int = 0, in_recovery: bool = True, nofailover: bool = False) -> PeerStatus:
    return PeerStatus(name=name, role="replica" if in_recovery else "master", state="running",
                      in_recovery=in_recovery, wal_position=lsn, nofailover=nofailover)


def settings(name: str = "n0", **kw: Any) -> Settings:
    base: Dict[str, Any] = dict(name=name, scope="demo", bootstrap_dcs={"ttl": 30, "loop_wait": 10})
    base.update(kw)
    return Settings(**base)


def make_obs(
    c: Optional[ClusterView],
    local: LocalState,
    *,
    me: str = "n0",
    now: float = NOW,
    lease: bool = True,
    t: Optional[TaskStatus] = None,
    peers: Optional[Mapping[str, Optional[PeerStatus]]] = None,
    divergence: Optional[Divergence] = None,
    failed: Any = None,
) -> Observation:
    """`lease`: when the leader key names `me`, whether my local lease runs."""
    holds = c is not None and c.leader is not None and c.leader.name == me and lease
    return Observation(
        now=now,
        cluster=c,
        local=local,
        task=t,
        lock_written_at=now - 5 if holds else None,
        peers=peers,
        divergence=divergence,
        failed=FailedAction(action=failed) if failed is not None else None,
    )


STARTED = Memory(started=True)
