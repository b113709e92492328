"""The watchdog as decide() inputs and actions (core/fencing.py), case by case."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Optional

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.fencing import watchdog_mode, watchdog_timeout
from qhb_patroni.core.model import ClusterView
from qhb_patroni.core.observation import Decision, Observation, WatchdogState
from qhb_patroni.messages import render

from .builders import STARTED, cluster, make_obs, peer, primary, replica, settings

AUTO = settings(ttl=30, loop_wait=10, watchdog_mode="automatic")
REQUIRED = settings(ttl=30, loop_wait=10, watchdog_mode="required")
ARMED = WatchdogState(armed=True, timeout=25)
UNARMED = WatchdogState()


def obs(c: Optional[ClusterView], local: Any, dog: WatchdogState = UNARMED, **kw: Any) -> Observation:
    return replace(make_obs(c, local, **kw), watchdog=dog)


def kinds(d: Decision) -> List[str]:
    return [type(a).__name__ for a in d.actions]


@pytest.mark.parametrize("ttl, margin, timeout", [(30, 5, 25), (10, 5, 5), (30, -1, 15), (10, 0, 10)])
def test_timeout_is_ttl_less_the_margin(ttl: float, margin: int, timeout: int) -> None:
    assert watchdog_timeout(ttl, margin) == timeout


@pytest.mark.parametrize("value, mode", [(False, "off"), (None, "automatic"), ("Require", "required"),
                                         ("disable", "off"), ("sometimes", None)])
def test_mode_spellings(value: object, mode: Optional[str]) -> None:
    assert watchdog_mode(value) == mode


def test_off_adds_nothing() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), STARTED, settings(ttl=30))
    assert not any(isinstance(a, A.WATCHDOG_ACTIONS) for a in d.actions)


def test_leader_arms_before_renewing() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), STARTED, AUTO)
    assert kinds(d)[:2] == ["ArmWatchdog", "RenewLock"]
    assert d.actions[0] == A.ArmWatchdog(25, required=False)


def test_armed_leader_pings_before_renewing() -> None:
    d = decide(obs(cluster(leader="n0"), primary(), ARMED), STARTED, AUTO)
    assert kinds(d)[:2] == ["PingWatchdog", "RenewLock"]
    assert "ArmWatchdog" not in kinds(d) and "DisarmWatchdog" not in kinds(d)


def test_a_new_ttl_retimes_the_armed_watchdog() -> None:
    d = decide(obs(cluster(leader="n0"), primary(), ARMED), STARTED, replace(AUTO, ttl=20))
    assert d.actions[0] == A.ArmWatchdog(15, required=False)
    assert kinds(d)[1] == "RenewLock"


def test_required_mode_says_so_in_the_action() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), STARTED, REQUIRED)
    assert d.actions[0] == A.ArmWatchdog(25, required=True)


def test_a_task_running_under_the_lock_still_pings() -> None:
    from .builders import task
    d = decide(obs(cluster(leader="n0"), replica(), ARMED, t=task("Promote")), STARTED, AUTO)
    assert kinds(d) == ["PingWatchdog", "RenewLock"]


def test_pause_disarms_and_does_not_ping() -> None:
    c = replace(cluster(leader="n0"), config=replace(cluster().config, data={"ttl": 30, "pause": True}))
    assert c.paused
    d = decide(obs(c, primary(), ARMED), STARTED, AUTO)
    assert "RenewLock" in kinds(d)
    assert kinds(d)[-1] == "DisarmWatchdog"
    assert "ArmWatchdog" not in kinds(d)


def test_pause_does_not_arm_an_unarmed_watchdog() -> None:
    c = replace(cluster(leader="n0"), config=replace(cluster().config, data={"ttl": 30, "pause": True}))
    d = decide(obs(c, primary()), STARTED, AUTO)
    assert not any(isinstance(a, A.WATCHDOG_ACTIONS) for a in d.actions)


def test_resume_rearms() -> None:
    d = decide(obs(cluster(leader="n0"), primary()), STARTED, AUTO)  # pause over, watchdog closed
    assert kinds(d)[0] == "ArmWatchdog"


def test_demotion_disarms_after_the_demote() -> None:
    d = decide(obs(cluster(leader="n1"), primary(), ARMED), STARTED, AUTO)
    assert kinds(d) == ["PingWatchdog", "Demote", "DisarmWatchdog"]


def test_switchover_demotes_then_disarms() -> None:
    from qhb_patroni.core.model import Failover
    c = replace(cluster(leader="n0"), failover=Failover(leader="n0", candidate="n1", version=4))
    o = replace(obs(c, primary(), ARMED, peers={"n1": peer("n1", 100)}), streaming=("n1",))
    d = decide(o, STARTED, AUTO)
    # clean stop, the lock handed over with the shutdown position, start as a replica; then close
    assert kinds(d) == ["PingWatchdog", "RenewLock", "StopServer", "ReleaseLock", "Demote", "DisarmWatchdog"]


def test_an_armed_watchdog_closes_as_soon_as_a_stopping_server_takes_no_write() -> None:
    """A switchover's fast stop waits for the WAL senders to reach their standbys, up to
    wal_sender_timeout for one that is cut off; the device must not fire meanwhile (the
    fault harness saw it reset a primary's machine mid-switchover with an isolated replica)."""
    from qhb_patroni.core.model import Failover
    c = replace(cluster(leader="n0"), failover=Failover(leader="n0", candidate="n1", version=4))
    o = replace(obs(c, primary(), ARMED, peers={"n1": peer("n1", 100)}), streaming=("n1",))
    d = decide(o, STARTED, AUTO)
    stops = [a for a in d.actions if isinstance(a, (A.StopServer, A.Demote))]
    assert [type(a).__name__ for a in stops] == ["StopServer", "Demote"]
    assert all(a.disarm_at_safepoint for a in stops)
    demoted = decide(obs(cluster(leader="n1"), primary(), ARMED), STARTED, AUTO)
    assert [a.disarm_at_safepoint for a in demoted.actions if isinstance(a, A.Demote)] == [True]


def test_without_an_armed_watchdog_stops_carry_no_safepoint_disarm() -> None:
    d = decide(obs(cluster(leader="n1"), primary(), UNARMED), STARTED, AUTO)
    assert [a.disarm_at_safepoint for a in d.actions if isinstance(a, A.Demote)] == [False]


def test_dcs_unreachable_demotes_then_disarms() -> None:
    d = decide(obs(None, primary(), ARMED), STARTED, AUTO)
    assert kinds(d) == ["PingWatchdog", "Demote", "DisarmWatchdog"]


def test_a_primary_holding_its_lease_without_the_dcs_keeps_the_watchdog_armed_unfed() -> None:
    """Nothing renewed: no ping; the server still writes: no close (if the daemon hangs now,
    its lease guard hangs with it and only the watchdog stops the writes)."""
    o = replace(obs(None, primary(), ARMED), lock_written_at=1000.0, now=1006.0)
    d = decide(o, STARTED, AUTO)
    assert render(d.reason).startswith("DCS is not accessible; still the leader for")
    assert d.actions == ()


def test_in_pause_a_primary_without_the_dcs_closes_the_watchdog() -> None:
    o = replace(obs(None, primary(), ARMED), lock_written_at=1000.0, now=1006.0)
    d = decide(o, replace(STARTED, last_paused=True), AUTO)
    assert kinds(d) == ["PingWatchdog", "DisarmWatchdog"]


def test_a_replica_never_arms() -> None:
    d = decide(obs(cluster(leader="n1"), replica(), WatchdogState(), ), STARTED, REQUIRED)
    assert not any(isinstance(a, A.WATCHDOG_ACTIONS) for a in d.actions)


def test_the_race_arms_before_taking_the_lock() -> None:
    d = decide(obs(cluster(), replica(lsn=100), peers={"n1": peer("n1", 90), "n2": None}), STARTED, REQUIRED)
    assert kinds(d)[:3] == ["ArmWatchdog", "AcquireLock", "Promote"]


def test_probe_decisions_are_left_alone() -> None:
    d = decide(obs(cluster(), replica(lsn=100), ARMED), STARTED, REQUIRED)
    assert kinds(d) == ["ProbePeers"]


def test_required_watchdog_that_fails_in_the_race_never_promotes() -> None:
    failed = A.ArmWatchdog(25, required=True)
    o = obs(cluster(), replica(lsn=100), WatchdogState(error="watchdog.device /x: cannot open it"),
            peers={"n1": peer("n1", 90), "n2": None}, failed=failed)
    d = decide(o, STARTED, REQUIRED)
    assert "AcquireLock" not in kinds(d) and "Promote" not in kinds(d)
    assert render(d.reason) == "Not promoting self because watchdog could not be activated"


def test_required_watchdog_failing_under_the_lock_gives_it_back() -> None:
    failed = A.ArmWatchdog(25, required=True)
    d = decide(obs(cluster(leader="n0"), replica(), failed=failed), STARTED, REQUIRED)
    assert kinds(d) == ["ReleaseLock"]


def test_required_watchdog_failing_on_a_primary_demotes_it() -> None:
    failed = A.ArmWatchdog(25, required=True)
    d = decide(obs(cluster(leader="n0"), primary(), failed=failed), STARTED, REQUIRED)
    assert d.actions == (A.Demote("immediate"), A.ReleaseLock(version=7))  # stop writes, then give the lock back
    assert render(d.reason) == "Demoting self because watchdog could not be activated"


def test_mode_turned_off_closes_an_armed_watchdog() -> None:
    d = decide(obs(cluster(leader="n0"), primary(), ARMED), STARTED, settings(ttl=30))
    assert kinds(d)[-1] == "DisarmWatchdog"


def test_a_node_whose_required_watchdog_is_unusable_never_bootstraps() -> None:
    from .builders import empty
    broken = WatchdogState(error="watchdog.device /x: cannot open it: no such file")
    c = replace(cluster(), initialize=None)
    d = decide(obs(c, empty(), broken), STARTED, REQUIRED)
    assert "Bootstrap" not in kinds(d)
    assert "Bootstrap" in kinds(decide(obs(c, empty()), STARTED, REQUIRED))


def test_a_node_whose_required_watchdog_is_unusable_does_not_race() -> None:
    broken = WatchdogState(error="watchdog.device /x: cannot open it: no such file")
    d = decide(obs(cluster(), replica(lsn=100), broken, peers={"n1": peer("n1", 90), "n2": None}), STARTED, REQUIRED)
    assert "AcquireLock" not in kinds(d)
    assert d.reason.args["why"] == "watchdog device is not usable"
    # in mode automatic the same node races (and leads without a watchdog)
    d = decide(obs(cluster(), replica(lsn=100), broken, peers={"n1": peer("n1", 90), "n2": None}), STARTED, AUTO)
    assert "AcquireLock" in kinds(d)
