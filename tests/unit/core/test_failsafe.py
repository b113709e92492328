"""failsafe_mode and pause when the DCS cannot be read (core/failsafe.py), case by case."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Mapping, Optional

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.model import ClusterView
from qhb_patroni.core.observation import Decision, Memory, Observation, WatchdogState
from qhb_patroni.messages import render

from .builders import STARTED, cluster, make_obs, member, peer, primary, replica, settings

FS = settings(ttl=10, loop_wait=2, failsafe_mode=True)
URLS = {n: member(n).api_url or "" for n in ("n0", "n1", "n2")}
ALL = tuple(sorted(URLS.items()))
SEEN = replace(STARTED, failsafe_members=ALL)  # the last view had /failsafe with all three


def with_key(c: ClusterView, key: Optional[Mapping[str, str]] = None) -> ClusterView:
    return replace(c, failsafe=dict(URLS if key is None else key))


def paused(c: ClusterView) -> ClusterView:
    assert c.config is not None
    return replace(c, config=replace(c.config, data={"ttl": 10, "pause": True}))


def obs(c: Optional[ClusterView], local: Any, **kw: Any) -> Observation:
    extra = {k: kw.pop(k) for k in ("failsafe_answers", "failsafe_leader", "watchdog") if k in kw}
    return replace(make_obs(c, local, **kw), **extra)


def kinds(d: Decision) -> List[str]:
    return [type(a).__name__ for a in d.actions]


# ---- the /failsafe key ------------------------------------------------------------
def test_leader_writes_failsafe_with_every_member() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), STARTED, FS)
    assert d.actions[-1] == A.WriteFailsafe(ALL)


def test_leader_does_not_rewrite_an_unchanged_key() -> None:
    d = decide(obs(with_key(cluster(leader="n0")), primary()), STARTED, FS)
    assert "WriteFailsafe" not in kinds(d)


def test_mode_off_removes_the_key() -> None:
    d = decide(obs(with_key(cluster(leader="n0")), primary()), STARTED, settings(ttl=10))
    assert kinds(d)[-1] == "DeleteFailsafe"


def test_mode_off_and_no_key_writes_nothing() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), STARTED, settings(ttl=10))
    assert "DeleteFailsafe" not in kinds(d) and "WriteFailsafe" not in kinds(d)


def test_replicas_never_write_the_key() -> None:
    d = decide(obs(cluster(leader="n1"), replica()), STARTED, FS)
    assert "WriteFailsafe" not in kinds(d) and "DeleteFailsafe" not in kinds(d)


def test_the_key_is_remembered_for_an_outage() -> None:
    d = decide(obs(with_key(cluster(leader="n0")), primary()), STARTED, FS)
    assert d.memory.failsafe_members == ALL and not d.memory.last_paused


def test_an_outage_right_after_the_key_was_written_calls_the_added_members() -> None:
    """The view read had /failsafe with the leader alone; the leader wrote it with all three
    and the DCS went away: the members it added (they may race when the DCS returns) are asked."""
    d = decide(obs(with_key(cluster(leader="n0"), {"n0": URLS["n0"]}), primary()), STARTED, FS)
    assert d.actions[-1] == A.WriteFailsafe(ALL) and d.memory.failsafe_members == ALL
    d = decide(obs(None, primary()), d.memory, FS)
    assert d.actions == (A.CallFailsafe(tuple(p for p in ALL if p[0] != "n0")),)


# ---- the DCS cannot be read ----------------------------------------------------------
def test_without_failsafe_the_primary_demotes() -> None:
    d = decide(obs(None, primary()), SEEN, settings(ttl=10))
    assert d.actions == (A.Demote("offline"),)


def test_primary_calls_every_other_member() -> None:
    d = decide(obs(None, primary()), SEEN, FS)
    assert d.actions == (A.CallFailsafe(tuple(p for p in ALL if p[0] != "n0")),)


def test_all_accepted_stays_primary() -> None:
    d = decide(obs(None, primary(), failsafe_answers={"n1": True, "n2": True}), SEEN, FS)
    assert d.actions == (A.FailsafeActive(),)
    assert render(d.reason) == ("continue to run as a leader because failsafe mode is enabled "
                                "and all members are accessible")


def test_one_refusal_demotes() -> None:
    d = decide(obs(None, primary(), failsafe_answers={"n1": True, "n2": False}), SEEN, FS)
    assert d.actions == (A.Demote("offline"),)
    assert render(d.reason) == "demoting self because DCS is not accessible and I was a leader"


def test_one_missing_answer_demotes() -> None:
    d = decide(obs(None, primary(), failsafe_answers={"n1": True}), SEEN, FS)
    assert d.actions == (A.Demote("offline"),)


def test_a_single_node_cluster_stays_primary_without_calling() -> None:
    d = decide(obs(None, primary()), replace(STARTED, failsafe_members=(("n0", URLS["n0"]),)), FS)
    assert d.actions == (A.FailsafeActive(),)


def test_a_primary_missing_from_the_key_demotes() -> None:
    memory = replace(STARTED, failsafe_members=tuple(p for p in ALL if p[0] != "n0"))
    d = decide(obs(None, primary()), memory, FS)
    assert d.actions == (A.Demote("offline"),)


def test_no_key_seen_demotes() -> None:
    d = decide(obs(None, primary()), STARTED, FS)
    assert d.actions == (A.Demote("offline"),)


def test_failsafe_leader_keeps_its_watchdog_fed() -> None:
    s = replace(FS, watchdog_mode="required")
    armed = WatchdogState(armed=True, timeout=5)
    d = decide(obs(None, primary(), failsafe_answers={"n1": True, "n2": True}, watchdog=armed), SEEN, s)
    assert kinds(d) == ["PingWatchdog", "FailsafeActive"]


def test_replica_waits_when_the_dcs_is_down() -> None:
    d = decide(obs(None, replica()), SEEN, FS)
    assert d.actions == ()


# ---- pause ------------------------------------------------------------------------------
def test_pause_then_outage_keeps_the_primary() -> None:
    first = decide(obs(paused(cluster(leader="n0")), primary()), STARTED, settings(ttl=10))
    assert first.memory.last_paused
    d = decide(obs(None, primary()), first.memory, settings(ttl=10))
    assert d.actions == ()
    assert render(d.reason) == "DCS is not accessible"


def test_pause_wins_over_failsafe() -> None:
    d = decide(obs(None, primary()), replace(SEEN, last_paused=True), FS)
    assert d.actions == ()


def test_resume_forgets_the_pause() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), replace(STARTED, last_paused=True), settings(ttl=10))
    assert not d.memory.last_paused


# ---- the race ----------------------------------------------------------------------------
def test_a_member_called_by_the_leader_does_not_race() -> None:
    o = obs(with_key(cluster()), replica(lsn=100), peers={"n1": None, "n2": None}, failsafe_leader="n1")
    d = decide(o, STARTED, FS)
    assert "AcquireLock" not in kinds(d) and "Promote" not in kinds(d)
    assert d.reason.args["why"].startswith("n1 runs as leader in failsafe mode")


def test_a_member_not_in_the_key_does_not_race() -> None:
    key = {k: v for k, v in URLS.items() if k != "n0"}
    o = obs(with_key(cluster(), key), replica(lsn=100), peers={"n1": None, "n2": None})
    d = decide(o, STARTED, FS)
    assert "AcquireLock" not in kinds(d)
    assert d.reason.args["why"] == "not listed in /failsafe"


def test_the_race_is_normal_once_the_call_is_old() -> None:
    o = obs(with_key(cluster()), replica(lsn=100), peers={"n1": peer("n1", 90), "n2": None})
    d = decide(o, STARTED, FS)
    assert kinds(d)[:2] == ["AcquireLock", "Promote"]


def test_without_failsafe_mode_the_call_is_ignored() -> None:
    o = obs(with_key(cluster()), replica(lsn=100), peers={"n1": peer("n1", 90), "n2": None}, failsafe_leader="n1")
    d = decide(o, STARTED, settings(ttl=10))
    assert kinds(d)[:2] == ["AcquireLock", "Promote"]


def test_old_leader_retakes_its_lock_when_the_dcs_returns() -> None:
    d = decide(obs(with_key(cluster()), primary()), SEEN, FS)
    assert kinds(d)[0] == "AcquireLock"


def test_memory_default_is_empty() -> None:
    assert Memory().failsafe_members == () and not Memory().last_paused


# ---- the lease rule (core/lease.py) -------------------------------------------------------
def test_a_primary_keeps_writing_while_its_lease_runs() -> None:
    from qhb_patroni.core.lease import fence_at
    s = settings(ttl=10)
    o = replace(obs(None, primary()), lock_written_at=1000.0, now=1000.0 + 6)
    d = decide(o, STARTED, s)
    assert d.actions == ()
    assert render(d.reason).startswith("DCS is not accessible; still the leader for")
    end = fence_at(1000.0, 10)
    assert end is not None and 1009.0 < end < 1010.0
    late = decide(replace(o, now=end), STARTED, s)
    assert late.actions == (A.Demote("offline"),)


def test_failsafe_is_asked_while_the_lease_still_runs() -> None:
    o = replace(obs(None, primary()), lock_written_at=1000.0, now=1003.0)
    d = decide(o, SEEN, FS)
    assert kinds(d) == ["CallFailsafe"]


def test_a_refused_failsafe_call_keeps_the_lease_until_it_ends() -> None:
    o = replace(obs(None, primary(), failsafe_answers={"n1": False, "n2": True}), lock_written_at=1000.0, now=1003.0)
    d = decide(o, SEEN, FS)
    assert d.actions == ()
    d = decide(replace(o, now=1009.6), SEEN, FS)
    assert d.actions == (A.Demote("offline"),)


def test_a_fenced_server_comes_back_read_only_while_the_dcs_is_away() -> None:
    from .builders import stopped
    d = decide(obs(None, stopped()), STARTED, settings(ttl=10))
    assert d.actions == (A.Follow(None),)


def test_in_pause_a_stopped_server_stays_stopped_without_the_dcs() -> None:
    from .builders import stopped
    d = decide(obs(None, stopped()), replace(STARTED, last_paused=True), settings(ttl=10))
    assert d.actions == ()


def test_a_crashed_server_is_not_started_without_the_dcs() -> None:
    from .builders import stopped
    d = decide(obs(None, replace(stopped(), controldata_state="in production")), STARTED, settings(ttl=10))
    assert d.actions == ()
