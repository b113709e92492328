"""The planned stop (SIGTERM) and the hand-over of synchronous standby duty, as
decide() answers them (core/shutdown.py)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from qhb_patroni.core import actions as A
from qhb_patroni.core import roles
from qhb_patroni.core.decide import decide
from qhb_patroni.core.model import ClusterConfig, SyncState
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings
from qhb_patroni.core.operator import ReinitCommand, RestartCommand
from qhb_patroni.messages import render
from tests.unit.core.builders import STARTED, cluster, make_obs, primary, replica, settings, task


def stop(obs: Observation, memory: Memory = STARTED, s: Optional[Settings] = None, **changes: Any) -> Decision:
    return decide(replace(obs, stopping=True, **changes), memory, s if s is not None else settings())


def test_a_primary_stops_then_releases_with_its_shutdown_position_then_exits() -> None:
    d = stop(make_obs(cluster(leader="n0"), primary(lsn=500)))
    assert d.actions == (A.StopServer("fast"), A.ReleaseLock(stopped_position=True), A.Exit())
    assert d.event == roles.SHUTDOWN_STOP
    assert roles.target_role(roles.transition(d.role, d.event), d.role) == roles.STOPPED


def test_a_replica_stops_and_exits_and_never_touches_the_lock() -> None:
    d = stop(make_obs(cluster(leader="n0"), replica(), me="n1"), s=settings("n1"))
    assert d.actions == (A.StopServer("fast"), A.Exit())


def test_the_dcs_unreadable_the_server_is_stopped_anyway() -> None:
    d = stop(make_obs(None, primary()))
    assert d.actions == (A.StopServer("fast"), A.Exit())


def test_paused_leaves_the_server_running_and_keeps_the_lock() -> None:
    c = replace(cluster(leader="n0"), config=ClusterConfig({"pause": True}, version=2))
    d = stop(make_obs(c, primary()))
    assert d.actions == (A.Exit(),)


def test_a_server_that_does_not_stop_keeps_the_lock_until_it_expires() -> None:
    obs = make_obs(cluster(leader="n0"), primary(), failed=A.StopServer("fast"))
    d = stop(obs)
    assert d.actions == (A.Exit(),)
    assert d.event == roles.SHUTDOWN_STOP_FAILED


def test_a_running_task_is_waited_for_a_few_seconds_then_the_stop_goes_on() -> None:
    obs = make_obs(cluster(leader="n0"), replica(), me="n1", t=task("Clone", "bootstrap from leader 'n0'"))
    first = stop(obs, s=settings("n1"))
    assert first.actions == (A.Recheck(0.5),) and first.memory.stop_requested_at == obs.now
    later = stop(replace(obs, now=obs.now + 6), first.memory, s=settings("n1"))
    assert later.actions == (A.StopServer("fast"), A.Exit())


def sync_cluster(standbys: tuple[str, ...] = ("n1",)) -> Any:
    return replace(cluster(leader="n0"), sync=SyncState(leader="n0", sync_standby=standbys, version=3))


def test_a_synchronous_standby_hands_its_duty_over_before_stopping() -> None:
    s = settings("n1", synchronous_mode=True, loop_wait=10)
    obs = make_obs(sync_cluster(), replica(), me="n1")
    first = stop(obs, s=s)
    assert first.actions == (A.PublishNoSync(True), A.Recheck(0.5))
    assert first.event == roles.SYNC_HAND_OVER and first.memory.sync_withdrawn_at == obs.now
    waiting = stop(replace(obs, now=obs.now + 1), first.memory, s=s)
    assert waiting.actions == (A.Recheck(0.5),)
    released = stop(replace(obs, now=obs.now + 2, cluster=sync_cluster(("n2",))), waiting.memory, s=s)
    assert released.actions == (A.StopServer("fast"), A.Exit())
    assert released.reason.args["note"] == "No longer a synchronous standby"


def test_the_hand_over_gives_up_after_twice_loop_wait_at_most_20_seconds() -> None:
    s = settings("n1", synchronous_mode=True, loop_wait=30)
    obs = make_obs(sync_cluster(), replica(), me="n1")
    first = stop(obs, s=s)
    assert stop(replace(obs, now=obs.now + 19), first.memory, s=s).actions == (A.Recheck(0.5),)
    late = stop(replace(obs, now=obs.now + 20), first.memory, s=s)
    assert late.actions == (A.StopServer("fast"), A.Exit())
    assert "did not release me" in late.reason.args["alert"]


def test_an_operator_restart_of_the_synchronous_standby_waits_for_the_hand_over() -> None:
    s = settings("n1", synchronous_mode=True)
    obs = replace(make_obs(sync_cluster(), replica(), me="n1"), commands=(RestartCommand(4),))
    first = decide(obs, STARTED, s)
    assert first.actions == (A.PublishNoSync(True), A.Recheck(0.5))
    released = replace(obs, now=obs.now + 1, cluster=sync_cluster(("n2",)))
    start = decide(released, first.memory, s)
    assert start.actions == (A.Restart(4, None),)
    assert start.memory.sync_withdrawn_at is not None  # nosync stays published while it runs
    running = replace(released, commands=(), task=task("Restart", "restart"))
    assert A.PublishNoSync(False) not in decide(running, start.memory, s).actions
    done = replace(released, commands=(), task=task("Restart", "restart", done=True, ok=True))
    after = decide(done, start.memory, s)
    assert after.actions[0] == A.PublishNoSync(False) and after.memory.sync_withdrawn_at is None


def test_no_hand_over_outside_synchronous_mode_or_for_a_reinitialize_of_an_async_replica() -> None:
    obs = replace(make_obs(sync_cluster(), replica(), me="n2"), commands=(ReinitCommand(5),))
    d = decide(obs, STARTED, settings("n2", synchronous_mode=True))
    assert [type(a) for a in d.actions] == [A.Reinitialize]
    d = stop(make_obs(sync_cluster(), replica(), me="n1"), s=settings("n1"))  # synchronous mode off
    assert d.actions == (A.StopServer("fast"), A.Exit())


def test_every_shutdown_reason_renders() -> None:
    d = stop(make_obs(cluster(leader="n0"), primary()))
    assert render(d.reason).startswith("shutting down")
