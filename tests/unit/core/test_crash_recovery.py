"""A stopped former primary that crashed is recovered in single-user mode as a
background task before its timeline is compared with the leader's."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core import reasons as R
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import Divergence

from .builders import STARTED, cluster, make_obs, settings, stopped, task

REWIND = dict(use_pg_rewind=True)


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
    failed = task("CrashRecovery", "crash recovery", done=True, ok=False, error="crash recovery failed")
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
