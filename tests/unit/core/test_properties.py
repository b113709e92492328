"""Hypothesis: safety properties of decide() over arbitrary observations."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import STATE_STARTING, Divergence, LocalState
from qhb_patroni.core.model import ClusterView, Failover
from qhb_patroni.core.observation import Decision, FailedAction, Memory, Observation
from qhb_patroni.messages import render

from . import builders as b

NAMES = ("n0", "n1", "n2")


@st.composite
def local_states(draw: Any) -> LocalState:
    kind = draw(st.sampled_from(["primary", "replica", "stopped", "starting", "empty", "unknown"]))
    lsn = draw(st.integers(0, 3_000_000))
    if kind == "primary":
        local = b.primary(lsn=lsn)
    elif kind == "replica":
        local = b.replica(lsn=lsn, following=draw(st.sampled_from([None, b.hostport("n1"), b.hostport("n2")])))
    elif kind == "stopped":
        local = b.stopped()
    elif kind == "starting":
        local = replace(b.stopped(), state=STATE_STARTING)
    elif kind == "unknown":
        local = replace(b.replica(lsn=lsn), in_recovery=None)
    else:
        local = b.empty()
    return replace(
        local,
        rewind_possible=draw(st.booleans()),
        sysid=local.sysid if local.sysid is None else draw(st.sampled_from([b.SYSID, b.SYSID, b.OTHER_SYSID])),
    )


@st.composite
def clusters(draw: Any) -> Optional[ClusterView]:
    if draw(st.integers(0, 5)) == 0:
        return None
    leader = draw(st.sampled_from([None, "n0", "n1", "n2"]))
    members = tuple(
        b.member(n, role="master" if n == leader else "replica", lsn=draw(st.integers(0, 3_000_000)),
                 tags={"nofailover": True} if draw(st.integers(0, 6)) == 0 else {})
        for n in NAMES
        if n == "n0" or draw(st.booleans())
    )
    return b.cluster(
        leader=leader,
        members=members or (b.member("n0"),),
        initialize=draw(st.sampled_from([b.SYSID, b.SYSID, None, ""])),
        last_lsn=draw(st.integers(0, 3_000_000)),
        failover=draw(st.sampled_from([None, Failover(candidate="n1", version=5), Failover(leader="n0", version=5),
                                       Failover(leader="n1", candidate="n2", version=5)])),
    )


tasks = st.one_of(
    st.none(),
    st.builds(
        b.task,
        kind=st.sampled_from(["Bootstrap", "Clone", "Promote", "Rewind", "Restart"]),
        done=st.booleans(),
        ok=st.booleans(),
    ),
)
failed_actions = st.sampled_from(
    [None, A.AcquireLock(), A.RenewLock(7, None), A.WriteInitialize("", create=True), A.Follow(None), A.Bootstrap()]
)
peer_maps = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["n1", "n2"]),
        st.one_of(st.none(), st.builds(b.peer, name=st.just("x"), lsn=st.integers(0, 3_000_000),
                                        in_recovery=st.booleans())),
    ),
)
memories = st.builds(
    Memory,
    bootstrapping=st.booleans(),
    rewind_state=st.sampled_from(["idle", "check", "needed", "failed"]),
    started=st.booleans(),
)
settings_st = st.builds(
    b.settings,
    use_pg_rewind=st.booleans(),
    remove_data_directory_on_diverged_timelines=st.booleans(),
    remove_data_directory_on_rewind_failure=st.booleans(),
    nofailover=st.booleans(),
    use_slots=st.booleans(),
)


@st.composite
def observations(draw: Any) -> Observation:
    c = draw(clusters())
    failed = draw(failed_actions)
    div = draw(st.one_of(st.none(), st.builds(Divergence, leader=st.sampled_from(NAMES),
                                              needed=st.sampled_from([None, True, False]))))
    lease = draw(st.booleans())
    obs = b.make_obs(c, draw(local_states()), t=draw(tasks), peers=draw(peer_maps), divergence=div, lease=lease)
    return replace(obs, failed=FailedAction(failed) if failed is not None else None)


def _index(d: Decision, kind: type) -> Optional[int]:
    for i, a in enumerate(d.actions):
        if isinstance(a, kind):
            return i
    return None


COMMON = settings(max_examples=200, deadline=None, derandomize=True)


@COMMON
@given(observations(), memories, settings_st)
def test_never_promote_without_the_lock(obs: Observation, memory: Memory, s: Any) -> None:
    d = decide(obs, memory, s)
    i = _index(d, A.Promote)
    if i is None:
        return
    acquire = _index(d, A.AcquireLock)
    renew = _index(d, A.RenewLock)
    assert obs.cluster is not None
    if acquire is not None and acquire < i:
        assert obs.cluster.leader is None
        return
    assert obs.cluster.leader is not None and obs.cluster.leader.name == s.name, d
    assert renew is not None and renew < i, d


@COMMON
@given(observations(), memories, settings_st)
def test_dcs_down_while_primary_demotes_once_its_lease_ends(obs: Observation, memory: Memory, s: Any) -> None:
    from qhb_patroni.core.lease import lease_runs
    obs = replace(obs, cluster=None, local=b.primary())
    memory = replace(memory, last_paused=False)
    d = decide(obs, replace(memory, last_paused=False), replace(s, failsafe_mode=False))
    if lease_runs(obs.lock_written_at, obs.now, s.ttl):
        assert d.actions == ()  # the key cannot have expired: stay writable (the lease guard fences)
    else:
        assert d.actions == (A.Demote("offline"),)


@COMMON
@given(observations(), memories, settings_st)
def test_lock_lost_while_primary_demotes(obs: Observation, memory: Memory, s: Any) -> None:
    c = obs.cluster
    if c is None or (obs.task is not None and not obs.task.done and obs.task.kind in ("Promote", "Bootstrap")):
        return
    obs = replace(obs, local=b.primary(), task=None if obs.task and obs.task.kind == "Bootstrap" else obs.task)
    if c.has_valid_initialize is False and c.initialize not in (None, ""):
        return
    memory = replace(memory, bootstrapping=False)
    failed = obs.failed.action if obs.failed is not None else None
    lost = (
        (c.leader is not None and c.leader.name != s.name)
        or (isinstance(failed, A.RenewLock) and c.leader is not None and c.leader.name == s.name)
        or (isinstance(failed, A.AcquireLock) and c.leader is None)
    )
    if not lost:
        return
    d = decide(obs, memory, s)
    assert any(isinstance(a, A.Demote) for a in d.actions), (obs, d)
    assert not any(isinstance(a, (A.Promote, A.AcquireLock, A.RenewLock, A.TakeLock)) for a in d.actions)


@COMMON
@given(observations(), memories, settings_st)
def test_writable_primary_never_keeps_running_without_a_renewal(obs: Observation, memory: Memory, s: Any) -> None:
    """A primary's decision either refreshes the lease, demotes, or exits."""
    if not obs.local.is_primary or obs.cluster is None:
        return
    if obs.task is not None and not obs.task.done and obs.task.kind in ("Promote", "Bootstrap"):
        return
    if obs.local.sysid != b.SYSID and obs.cluster.has_valid_initialize:
        pass  # Fatal expected
    d = decide(obs, memory, s)
    kinds = {type(a) for a in d.actions}
    ok = kinds & {A.RenewLock, A.AcquireLock, A.TakeLock, A.Demote, A.Fatal, A.ProbePeers}
    if not ok:
        # Left alone only when the failure being handled is the renewal itself... which demotes; or a
        # repeated failure was cut, or the cluster is being bootstrapped by us.
        assert obs.failed is not None or memory.bootstrapping, (obs, d)


@COMMON
@given(observations(), memories, settings_st)
def test_decisions_are_deterministic_and_render_completely(obs: Observation, memory: Memory, s: Any) -> None:
    d1 = decide(obs, memory, s)
    d2 = decide(obs, memory, s)
    assert d1 == d2
    text = render(d1.reason)
    assert text and "?" not in text and "{" not in text, (d1.reason, text)


@COMMON
@given(observations(), memories, settings_st)
def test_never_acquire_a_taken_lock_nor_clone_over_data(obs: Observation, memory: Memory, s: Any) -> None:
    d = decide(obs, memory, s)
    if obs.cluster is not None and obs.cluster.leader is not None:
        assert _index(d, A.AcquireLock) is None
    if obs.local.data_dir != "empty":
        assert _index(d, A.Clone) is None and _index(d, A.Bootstrap) is None
