"""Operator commands (restart, reinitialize) through decide(): tables of
observation -> actions, no I/O."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Tuple

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Decision, FailedAction, Observation
from qhb_patroni.core.operator import (
    I_AM_LEADER,
    NO_CLONE_SOURCE,
    NO_LEADER,
    NOT_SATISFIED,
    ReinitCommand,
    RestartCommand,
    restart_mismatch,
    version_to_int,
)
from tests.unit.core.builders import STARTED, cluster, make_obs, member, primary, replica, settings, task


def run(obs: Observation, *commands: Any, me: str = "n0", **obs_changes: Any) -> Decision:
    obs = replace(obs, commands=tuple(commands), **obs_changes)
    return decide(obs, STARTED, settings(me))


def kinds(decision: Decision) -> Tuple[type, ...]:
    return tuple(type(a) for a in decision.actions)


def test_restart_on_the_leader_keeps_the_lock() -> None:
    obs = make_obs(cluster("n0"), primary())
    d = run(obs, RestartCommand(1, timeout=30.0))
    assert kinds(d) == (A.RenewLock, A.Restart)
    assert d.actions[-1] == A.Restart(1, 30.0)
    assert d.reason.code == "restart_initiated"


def test_restart_on_a_replica() -> None:
    obs = make_obs(cluster("n0"), replica(following="127.0.0.1:5432"), me="n1")
    d = run(obs, RestartCommand(4), me="n1")
    assert d.actions == (A.Restart(4, None),)


@pytest.mark.parametrize("command", [
    RestartCommand(2, role="master"),
    RestartCommand(2, postgres_version=150004),
    RestartCommand(2, restart_pending=True),
])
def test_restart_filters_refuse(command: RestartCommand) -> None:
    obs = make_obs(cluster("n0"), replica(following="127.0.0.1:5432"), me="n1")
    d = run(obs, command, me="n1", server_version=150004)
    assert d.actions[0] == A.RejectCommand(2, NOT_SATISFIED)
    assert not any(isinstance(a, A.Restart) for a in d.actions)


def test_restart_refused_while_a_task_runs() -> None:
    obs = make_obs(cluster("n0"), primary(), t=task("Promote", "promote"))
    d = run(obs, RestartCommand(3))
    assert d.actions[0] == A.RejectCommand(3, "promote already in progress")
    assert A.RenewLock in kinds(d)


def test_scheduled_restart_waits_for_its_time_then_runs() -> None:
    obs = make_obs(cluster("n0"), primary())
    cmd = RestartCommand(5, scheduled_at=2000.0)
    assert A.Restart not in kinds(run(obs, cmd, wall_time=1999.0))
    assert A.Restart not in kinds(run(obs, cmd))  # wall clock unknown: wait
    assert kinds(run(obs, cmd, wall_time=2000.5)) == (A.RenewLock, A.Restart)
    # Due while a task runs: it waits instead of being refused.
    busy = make_obs(cluster("n0"), primary(), t=task("Promote"))
    assert not any(isinstance(a, A.RejectCommand) for a in run(busy, cmd, wall_time=2001.0).actions)


def test_commands_wait_while_a_finished_task_is_dealt_with() -> None:
    obs = make_obs(cluster("n0"), replica(), me="n1", t=task("Clone", done=True, ok=True))
    d = run(obs, RestartCommand(6), me="n1")
    assert not any(isinstance(a, (A.Restart, A.RejectCommand)) for a in d.actions)


def test_reinitialize_rules() -> None:
    leader_obs = make_obs(cluster("n0"), primary())
    d = run(leader_obs, ReinitCommand(1))
    assert d.actions[0] == A.RejectCommand(1, I_AM_LEADER) and A.RenewLock in kinds(d)
    lonely = make_obs(cluster(None), replica(), me="n1")
    assert run(lonely, ReinitCommand(2), me="n1").actions[0] == A.RejectCommand(2, NO_LEADER)
    obs = make_obs(cluster("n0"), replica(following="127.0.0.1:5432"), me="n1")
    d = run(obs, ReinitCommand(3), me="n1")
    assert len(d.actions) == 1 and isinstance(d.actions[0], A.Reinitialize)
    reinit = d.actions[0]
    assert reinit.ident == 3 and reinit.leader is not None and reinit.leader.name == "n0"
    busy = make_obs(cluster("n0"), replica(), me="n1", t=task("Rewind", "running pg_rewind from n0"))
    d = run(busy, ReinitCommand(4, force=True), me="n1")
    assert d.actions == (A.CancelTask(),)  # forced: the running task is cancelled first
    # ... and when the cancellation failed (the task did not end), the command is refused.
    d = run(busy, ReinitCommand(4, force=True), me="n1", failed=FailedAction(A.CancelTask(), "condition failed"))
    assert d.actions[0] == A.RejectCommand(4, "running pg_rewind from n0 already in progress")
    d = run(busy, ReinitCommand(5), me="n1")  # not forced: refused at once
    assert d.actions[0] == A.RejectCommand(5, "running pg_rewind from n0 already in progress")


def test_reinitialize_needs_a_leader_to_clone_from_before_anything_is_wiped() -> None:
    # The leader key names a member that has no member key (or one without conn_url):
    # nothing to clone from, so no Reinitialize (whose task would wipe the data first).
    for members in ((member("n1"), member("n2")),
                    (replace(member("n0", role="master"), conn_url=None), member("n1"))):
        obs = make_obs(cluster("n0", members=members), replica(following="127.0.0.1:5432"), me="n1")
        d = run(obs, ReinitCommand(5), me="n1")
        assert A.RejectCommand(5, NO_CLONE_SOURCE) in d.actions
        assert A.Reinitialize not in kinds(d) and A.RemoveDataDir not in kinds(d)


def test_two_commands_one_task() -> None:
    obs = make_obs(cluster("n0"), replica(following="127.0.0.1:5432"), me="n1")
    d = run(obs, RestartCommand(1), ReinitCommand(2), me="n1")
    assert d.actions == (A.RejectCommand(2, "restart already in progress"), A.Restart(1, None))


def test_failed_renew_never_starts_a_restart() -> None:
    obs = make_obs(cluster("n0"), primary(), failed=A.RenewLock(version=7, last_lsn=100))
    d = run(obs, RestartCommand(1))
    assert A.Restart not in kinds(d)


def test_restart_mismatch_and_versions() -> None:
    assert version_to_int("15.2") == 150002 and version_to_int("9.6.24") == 90624 and version_to_int("9.6") == 90600
    for bad in ("15", "a.b", "1.2.3.4", ""):
        with pytest.raises(ValueError):
            version_to_int(bad)
    assert restart_mismatch(RestartCommand(1, role="primary"), "master", None, False) == "host role mismatch"
    assert restart_mismatch(RestartCommand(1, postgres_version=150005), "master", 150004, False) == ""
    assert restart_mismatch(RestartCommand(1, restart_pending=True), "replica", None, True) == ""


def test_switchover_hands_over_only_to_a_streaming_candidate() -> None:
    from qhb_patroni.core.model import Failover
    from tests.unit.core.builders import peer

    c = cluster("n0", failover=Failover(leader="n0", candidate="n1", version=3))
    peers = {"n1": peer("n1", lsn=100)}
    waiting = decide(replace(make_obs(c, primary(), peers=peers), streaming=("n2",)), STARTED, settings("n0"))
    assert not any(isinstance(a, (A.Demote, A.ClearFailover)) for a in waiting.actions)
    assert "waiting for n1 to stream from me" in str(waiting.reason.args.get("warning"))
    go = decide(replace(make_obs(c, primary(), peers=peers), streaming=("n1", "n2")), STARTED, settings("n0"))
    assert A.Demote("graceful", None) in go.actions
    unknown = decide(make_obs(c, primary(), peers=peers), STARTED, settings("n0"))
    assert A.Demote("graceful", None) in unknown.actions


def test_scheduled_restart_cancelled_when_postgres_restarted_meanwhile() -> None:
    from qhb_patroni.core.operator import RESTARTED_MEANWHILE

    local = replace(primary(), postmaster_start_time="2026-01-01 10:00:00+00")
    obs = make_obs(cluster("n0"), local)
    same = RestartCommand(7, scheduled_at=5000.0, postmaster_start_time="2026-01-01 10:00:00+00")
    assert not any(isinstance(a, A.RejectCommand) for a in run(obs, same, wall_time=1000.0).actions)
    other = replace(same, postmaster_start_time="2025-12-31 09:00:00+00")
    assert run(obs, other, wall_time=1000.0).actions[0] == A.RejectCommand(7, RESTARTED_MEANWHILE)


def test_named_failover_candidate_takes_the_free_lock_while_paused() -> None:
    from qhb_patroni.core.model import Failover

    paused = {"ttl": 30, "pause": True}
    c = cluster(None, config=paused, failover=Failover(candidate="n1", version=3))
    me = run(make_obs(c, replica(), me="n1"), me="n1")
    assert A.AcquireLock in kinds(me) and A.Promote in kinds(me)
    other = run(make_obs(c, replica(), me="n2"), me="n2")
    assert not any(isinstance(a, (A.AcquireLock, A.Promote)) for a in other.actions)
    nobody = run(make_obs(cluster(None, config=paused), replica(), me="n1"), me="n1")
    assert not any(isinstance(a, (A.AcquireLock, A.Promote)) for a in nobody.actions)


def test_switchover_waits_for_streaming_only_so_long() -> None:
    from qhb_patroni.core.model import Failover
    from qhb_patroni.core.switchover import stream_wait_limit
    from tests.unit.core.builders import NOW, peer

    c = cluster("n0", failover=Failover(leader="n0", candidate="n1", version=3))
    peers = {"n1": peer("n1", lsn=100)}
    s = settings("n0")

    def at(now: float, memory: Any) -> Decision:
        obs = replace(make_obs(c, primary(), peers=peers, now=now), streaming=())
        return decide(obs, memory, s)

    first = at(NOW, STARTED)
    assert first.memory.stream_wait_since == (3, NOW)
    assert A.Demote("graceful", None) not in first.actions
    later = at(NOW + stream_wait_limit(s) - 1, first.memory)
    assert A.Demote("graceful", None) not in later.actions and later.memory.stream_wait_since == (3, NOW)
    # A cascading replica never streams from the leader: hand over anyway once the wait is over.
    final = at(NOW + stream_wait_limit(s), later.memory)
    assert A.Demote("graceful", None) in final.actions and final.memory.stream_wait_since is None
