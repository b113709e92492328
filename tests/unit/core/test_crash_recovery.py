"""A stopped former primary that crashed is recovered in single-user mode as a
background task before its timeline is compared with the leader's."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core import reasons as R
from qhb_patroni.core.crash import CRASH_RECOVERY_ATTEMPTS
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import CRASH_RECOVERY_RAN_ERROR, STATE_RUNNING, Divergence
from qhb_patroni.core.observation import Decision, Memory

from .builders import NOW, STARTED, cluster, make_obs, settings, stopped, task

REWIND = dict(use_pg_rewind=True)
RAN_AND_FAILED = f"crash recovery failed: {CRASH_RECOVERY_RAN_ERROR}: PANIC:  could not locate a checkpoint"
TRIPPED = "crash recovery failed: [Errno 3] No such process"  # the shell failed before single-user mode ran


def crashed():  # type: ignore[no-untyped-def]
    return replace(stopped(), controldata_state="in production")


def test_a_crashed_stopped_node_recovers_in_the_background_before_the_check() -> None:
    c = cluster(leader="n1")
    memory = replace(STARTED, rewind_state="check")
    d = decide(make_obs(c, crashed()), memory, settings(**REWIND))
    assert d.actions == (A.CrashRecovery(),)
    assert d.reason.code == R.CRASH_RECOVERY


def test_while_it_runs_nothing_else_happens() -> None:
    c = cluster(leader="n1")
    d = decide(make_obs(c, crashed(), t=task("CrashRecovery", "crash recovery")), STARTED, settings(**REWIND))
    assert d.actions == ()
    assert d.reason.code == R.TASK_IN_PROGRESS


def test_after_recovery_the_timeline_is_checked_then_followed() -> None:
    c = cluster(leader="n1")
    clean = replace(stopped(), controldata_state="shut down")
    done = task("CrashRecovery", "crash recovery", done=True, ok=True)
    d = decide(make_obs(c, clean, t=done), STARTED, settings(**REWIND))
    assert len(d.actions) == 1 and isinstance(d.actions[0], A.ProbeDivergence)
    fine = decide(make_obs(c, clean, divergence=Divergence("n1", needed=False)), d.memory, settings(**REWIND))
    assert any(isinstance(a, A.Follow) for a in fine.actions)


def test_a_failed_recovery_leaves_the_node_stopped_with_a_clear_reason() -> None:
    c = cluster(leader="n1")
    failed = task("CrashRecovery", "crash recovery", done=True, ok=False, error=RAN_AND_FAILED)
    d = decide(make_obs(c, crashed(), t=failed), STARTED, settings(**REWIND))
    assert d.reason.code == R.CRASH_RECOVERY_FAILED
    assert not any(isinstance(a, (A.Follow, A.CrashRecovery)) for a in d.actions)
    again = decide(make_obs(c, crashed()), d.memory, settings(**REWIND))
    assert again.reason.code == R.CRASH_RECOVERY_FAILED and again.actions == ()


def test_without_rewind_a_crashed_node_just_starts_as_a_replica() -> None:
    c = cluster(leader="n1")
    d = decide(make_obs(c, crashed()), STARTED, settings())
    assert not any(isinstance(a, A.CrashRecovery) for a in d.actions)
    assert any(isinstance(a, A.Follow) for a in d.actions)


# ---- chaos seed 22, fault #82: the postmaster was still finishing the lease guard's fast shutdown
def shutting_down(cstate: str = "in production"):  # type: ignore[no-untyped-def]
    """A postmaster that is alive but does not answer (running False), as the shell sees a
    former primary in the middle of its fast shutdown; the control file not yet updated."""
    return replace(stopped(state=STATE_RUNNING), postmaster_alive=True, controldata_state=cstate)


def test_a_postmaster_still_shutting_down_is_stopped_not_crash_recovered() -> None:
    c = cluster(leader="n1")
    for cstate in ("in production", "shutting down", "in crash recovery"):
        d = decide(make_obs(c, shutting_down(cstate)), replace(STARTED, rewind_state="check"), settings(**REWIND))
        assert d.actions == (A.StopServer("fast"),), cstate
        assert d.reason.code == R.CRASH_CHECK_STOP


def test_when_that_stop_fails_nothing_else_is_tried_this_cycle() -> None:
    c = cluster(leader="n1")
    d = decide(make_obs(c, shutting_down(), failed=A.StopServer("fast")), STARTED, settings(**REWIND))
    assert d.actions == () and d.reason.code == R.CRASH_CHECK_STOP_FAILED


def test_once_it_has_shut_down_cleanly_the_timeline_is_checked_without_recovery() -> None:
    c = cluster(leader="n1")
    clean = replace(stopped(), controldata_state="shut down")
    d = decide(make_obs(c, clean), replace(STARTED, rewind_state="check"), settings(**REWIND))
    assert len(d.actions) == 1 and isinstance(d.actions[0], A.ProbeDivergence)


def _finish(memory: Memory, error: str, now: float = NOW) -> Decision:
    failed = task("CrashRecovery", "crash recovery", done=True, ok=False, error=error)
    return decide(make_obs(cluster(leader="n1"), crashed(), t=failed, now=now), memory, settings(**REWIND))


def test_a_recovery_task_that_tripped_before_running_is_retried_after_loop_wait() -> None:
    c, s = cluster(leader="n1"), settings(**REWIND)
    d = _finish(STARTED, TRIPPED)
    assert d.reason.code == R.CRASH_RECOVERY_RETRY_WAIT and d.actions == ()
    soon = decide(make_obs(c, crashed(), now=NOW + s.loop_wait / 2), d.memory, s)
    assert soon.reason.code == R.CRASH_RECOVERY_RETRY_WAIT and soon.actions == ()
    later = decide(make_obs(c, crashed(), now=NOW + s.loop_wait), soon.memory, s)
    assert later.actions == (A.CrashRecovery(),)


def test_a_tripped_task_whose_cluster_meanwhile_shut_down_cleanly_goes_on_to_the_check() -> None:
    failed = task("CrashRecovery", "crash recovery", done=True, ok=False, error=TRIPPED)
    clean = replace(stopped(), controldata_state="shut down")
    d = decide(make_obs(cluster(leader="n1"), clean, t=failed), STARTED, settings(**REWIND))
    assert len(d.actions) == 1 and isinstance(d.actions[0], A.ProbeDivergence)


def test_tripping_again_and_again_ends_in_the_reinitialize_state() -> None:
    s = settings(**REWIND)
    memory, now = STARTED, NOW
    for _ in range(CRASH_RECOVERY_ATTEMPTS - 1):
        d = _finish(memory, TRIPPED, now)
        assert d.reason.code == R.CRASH_RECOVERY_RETRY_WAIT
        now += s.loop_wait
        d = decide(make_obs(cluster(leader="n1"), crashed(), now=now), d.memory, s)
        assert d.actions == (A.CrashRecovery(),)
        memory = d.memory
    last = _finish(memory, TRIPPED, now)
    assert last.reason.code == R.CRASH_RECOVERY_FAILED and last.actions == ()


def test_a_successful_recovery_forgets_earlier_trips() -> None:
    d = _finish(STARTED, TRIPPED)
    assert d.memory.crash_attempts == 1
    done = task("CrashRecovery", "crash recovery", done=True, ok=True)
    clean = replace(stopped(), controldata_state="shut down")
    ok = decide(make_obs(cluster(leader="n1"), clean, t=done, now=NOW + 20), d.memory, settings(**REWIND))
    assert ok.memory.crash_attempts == 0 and ok.memory.crash_retry_at is None


def test_the_reinitialize_state_ends_when_the_cluster_is_found_cleanly_shut_down() -> None:
    c = cluster(leader="n1")
    d = _finish(STARTED, RAN_AND_FAILED)
    assert d.reason.code == R.CRASH_RECOVERY_FAILED
    still = decide(make_obs(c, shutting_down()), d.memory, settings(**REWIND))
    assert still.reason.code == R.CRASH_RECOVERY_FAILED and still.actions == ()
    clean = replace(stopped(), controldata_state="shut down")
    after = decide(make_obs(c, clean), d.memory, settings(**REWIND))
    assert len(after.actions) == 1 and isinstance(after.actions[0], A.ProbeDivergence)
