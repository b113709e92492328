"""TaskRunner: one task at a time, its result reported once, cooperative cancellation;
and when the loop may cancel a task for a forced reinitialize."""
from __future__ import annotations

import threading
from typing import List, Optional

from qhb_patroni.core import actions as A
from qhb_patroni.core.cancel import cancels_for_forced_reinit
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import DATA_PRESENT, STATE_RUNNING, LocalState, TaskStatus
from qhb_patroni.core.model import ClusterView, Leader, Member
from qhb_patroni.core.observation import Memory, Observation, Settings
from qhb_patroni.core.operator import Command, ReinitCommand, RestartCommand
from qhb_patroni.runtime.tasks import TaskRunner, cancel_event, cancel_requested, is_cancelled


def runner() -> tuple[TaskRunner, threading.Event]:
    done = threading.Event()
    return TaskRunner(on_done=done.set), done


def test_result_is_reported_once_and_a_second_task_is_refused_meanwhile() -> None:
    tasks, done = runner()
    release = threading.Event()
    assert tasks.start("Clone", "bootstrap from leader 'a'", lambda: release.wait(10))
    assert not tasks.start("Restart", "restart", lambda: True)
    running = tasks.status()
    assert running is not None and not running.done and tasks.busy()
    release.set()
    assert done.wait(10)
    finished = tasks.status()
    assert finished == TaskStatus("Clone", "bootstrap from leader 'a'", done=True, ok=True)
    assert tasks.status() is None and not is_cancelled(finished)


def test_cancel_without_a_running_task_does_nothing() -> None:
    tasks, _ = runner()
    assert tasks.cancel(timeout=1) is False
    assert tasks.start("Restart", "restart", lambda: True)
    tasks.join(10)
    assert tasks.cancel(timeout=1) is False  # finished already
    finished = tasks.status()
    assert finished is not None and finished.ok


def test_cancel_reaches_only_the_task_thread_and_ends_it_as_cancelled() -> None:
    tasks, done = runner()
    seen: List[Optional[threading.Event]] = []

    def work() -> bool:
        event = cancel_event()
        seen.append(event)
        assert event is not None
        event.wait(30)
        return not cancel_requested()

    assert tasks.start("Reinitialize", "reinitialize", work)
    assert cancel_event() is None and not cancel_requested()  # not in this thread
    assert tasks.cancel(timeout=30) is True
    assert done.is_set()
    finished = tasks.status()
    assert finished is not None and finished.done and not finished.ok
    assert finished.error == "reinitialize cancelled" and is_cancelled(finished)
    assert seen and seen[0] is not None and seen[0].is_set()
    # The next task gets a fresh, unset event.
    fresh: List[bool] = []

    def look() -> bool:
        fresh.append(cancel_requested())
        return True

    assert tasks.start("Restart", "restart", look)
    tasks.join(10)
    assert fresh == [False]


def test_a_task_failing_with_an_exception_after_cancel_is_cancelled_not_crashed() -> None:
    tasks, _ = runner()

    def work() -> bool:
        event = cancel_event()
        assert event is not None
        event.wait(30)
        raise RuntimeError("child killed")

    assert tasks.start("Clone", "bootstrap from leader 'a'", work)
    assert tasks.cancel(timeout=30)
    finished = tasks.status()
    assert is_cancelled(finished) and finished is not None
    assert finished.error == "bootstrap from leader 'a' cancelled"


def test_a_plain_failure_is_not_a_cancellation() -> None:
    tasks, _ = runner()
    assert tasks.start("Clone", "clone", lambda: False)
    tasks.join(10)
    finished = tasks.status()
    assert finished is not None and finished.error == "clone failed" and not is_cancelled(finished)


# ---- when the loop cancels -------------------------------------------------------

def cluster(leader: Optional[str] = "a") -> ClusterView:
    members = (Member("a", "postgres://127.0.0.1:5432/qhb"), Member("b", "postgres://127.0.0.1:5433/qhb"))
    return ClusterView(leader=Leader(leader, version=1) if leader else None, members=members)


CLONE = TaskStatus("Clone", "bootstrap from leader 'a'")
FORCED = ReinitCommand(7, force=True)


def observation(task: Optional[TaskStatus], view: Optional[ClusterView], primary: bool,
                commands: tuple[Command, ...], now: float) -> Observation:
    local = LocalState(data_dir=DATA_PRESENT, state=STATE_RUNNING, running=primary,
                       in_recovery=False if primary else None)
    return Observation(now=now, wall_time=now, cluster=view, local=local, task=task, commands=commands)


def decide_cancel(task: Optional[TaskStatus] = CLONE, view: Optional[ClusterView] = None, me: str = "b",
                  primary: bool = False, commands: tuple[Command, ...] = (FORCED,), now: float = 1000.0) -> bool:
    """The core's rule (core.cancel), and decide() answering with CancelTask exactly then."""
    obs = observation(task, view if view is not None else cluster(), primary, commands, now)
    settings = Settings(name=me, scope="batman")
    cancels = cancels_for_forced_reinit(obs, settings)
    decision = decide(obs, Memory(started=True), settings)
    assert (A.CancelTask() in decision.actions) == cancels, decision
    return cancels


def test_forced_reinit_cancels_a_clone_restart_or_rewind_on_a_replica() -> None:
    for kind in ("Clone", "Restart", "Rewind", "Reinitialize"):
        assert decide_cancel(TaskStatus(kind, kind.lower()))


def test_never_cancelled_without_force_or_without_a_task() -> None:
    assert not decide_cancel(commands=(ReinitCommand(7, force=False),))
    assert not decide_cancel(commands=())
    assert not decide_cancel(task=None)
    assert not decide_cancel(task=TaskStatus("Clone", "clone", done=True))


def test_never_on_the_leader_nor_without_one() -> None:
    assert not decide_cancel(me="a")  # I hold the lock
    assert not decide_cancel(primary=True)  # running as a primary
    assert not decide_cancel(view=cluster(leader=None))
    assert not cancels_for_forced_reinit(observation(CLONE, None, False, (FORCED,), 1000.0),
                                         Settings(name="b", scope="batman"))  # DCS unreadable


def test_never_a_promote_or_a_bootstrap() -> None:
    assert not decide_cancel(task=TaskStatus("Promote", "promote"))
    assert not decide_cancel(task=TaskStatus("Bootstrap", "bootstrap"))


def test_only_when_the_forced_reinit_is_served_first() -> None:
    immediate_restart = RestartCommand(3)
    due = RestartCommand(4, scheduled_at=900.0)
    later = RestartCommand(5, scheduled_at=2000.0)
    assert not decide_cancel(commands=(immediate_restart, FORCED))
    assert not decide_cancel(commands=(due, FORCED))
    assert decide_cancel(commands=(later, FORCED))
