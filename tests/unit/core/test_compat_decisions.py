"""decide() for the Patroni 3.0.2 behaviours of issue 15: a failed pre_promote,
the crashed primary with primary_start_timeout 0, pause."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import PRE_PROMOTE_FAILED_ERROR
from qhb_patroni.core.observation import Decision, Memory
from qhb_patroni.messages import render

from .builders import NOW, STARTED, cluster, make_obs, peer, replica, settings, task

S = settings()


def run(obs, memory: Memory = STARTED, s=S) -> Decision:  # type: ignore[no-untyped-def]
    return decide(obs, memory, s)


# ---- pre_promote ---------------------------------------------------------------------
def test_failed_pre_promote_releases_the_lock_and_backs_off() -> None:
    failed = task("Promote", "promote", done=True, error=f"promote failed: {PRE_PROMOTE_FAILED_ERROR}")
    d = run(make_obs(cluster(leader="n0"), replica(), t=failed))
    assert d.actions == (A.ReleaseLock(version=7),)
    assert render(d.reason) == "Promotion cancelled because the pre-promote script failed"
    assert d.memory.release_backoff_until == NOW + S.ttl
    # Next cycle, no leader: it stays out of the race while backing off.
    again = run(make_obs(cluster(), replica(), now=NOW + 1,
                         peers={"n1": peer("n1", lsn=100), "n2": peer("n2", lsn=100)}), d.memory)
    assert not any(isinstance(a, (A.AcquireLock, A.Promote)) for a in again.actions)


def test_other_promote_failures_do_not_release_the_lock() -> None:
    failed = task("Promote", "promote", done=True, error="promote failed: server did not become writable")
    d = run(make_obs(cluster(leader="n0"), replica(), t=failed))
    assert not any(isinstance(a, A.ReleaseLock) for a in d.actions)


def test_failed_pre_promote_without_the_lock_changes_nothing_special() -> None:
    failed = task("Promote", "promote", done=True, error=f"promote failed: {PRE_PROMOTE_FAILED_ERROR}")
    d = run(make_obs(cluster(leader="n1"), replica(), t=failed))
    assert not any(isinstance(a, A.ReleaseLock) for a in d.actions)
    assert replace(d.memory).release_backoff_until is None
