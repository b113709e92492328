"""Crash recovery in the seeded simulations (chaos seed 22, fault #82).

With the control data modelled (World(control_data=True), fakedb.py), the lease
guard's fast shutdown takes 1-15 simulated seconds, during which the postmaster is
alive but answers nothing (the shell reports it running with an unknown role) and its
control file still says "in production"; a crash (kill -9) leaves the control file as
it was.  A former primary that comes back behind a new leader needs single-user crash
recovery before its timeline can be checked, but only once its postmaster is gone.  Crash recovery now and then fails
in the shell before it runs (`trip_rate`; never twice in a row: a transient
failure).  Checked, besides the usual invariants and convergence: no CrashRecovery
starts while a shutdown is under way, and a transient failure never leaves a member
waiting to be reinitialized.
"""
from __future__ import annotations

from dataclasses import replace
from functools import cache

import pytest

from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import CRASH_RECOVERY_RAN_ERROR, TaskKind
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings

from .world import World

SEEDS = range(201, 207)
TRIPS = 0.5


def _run(seed: int, **kw: object) -> World:
    world = World(seed, control_data=True, trip_rate=TRIPS, **kw)  # type: ignore[arg-type]
    world.run(fault_seconds=4000, quiet_seconds=400)
    return world


@cache
def _fixed(seed: int) -> World:
    return _run(seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_crash_recovery_waits_for_the_postmaster_and_survives_transient_failures(seed: int) -> None:
    world = _fixed(seed)
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)
    assert world.primaries_seen > 1000 and world.promotions >= 2
    assert world.recoveries_while_alive == 0
    assert world.events_landed["crash_recovery_failed"] == 0
    assert world.events_landed["crash_recovery_start"] > 0


def test_the_runs_exercised_both_cases() -> None:
    """Over the seeds, former primaries were found still shutting down (and waited for)
    and crash recoveries tripped (and were retried)."""
    waited = retried = trips = 0
    for seed in SEEDS:
        world = _fixed(seed)
        waited += world.unanswering_looks
        retried += world.events_landed["crash_recovery_retry_wait"]
        trips += world.trips
    assert waited >= 5 and trips >= 5 and retried >= trips, (waited, retried, trips)


# ---- the checks can fail ------------------------------------------------------------------
def _every_failure_is_final(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    """The decision before the fix: any failed crash recovery means reinitialize."""
    t = obs.task
    if t is not None and t.done and t.kind == TaskKind.CRASH_RECOVERY and not t.ok:
        obs = replace(obs, task=replace(t, error=f"{t.error} ({CRASH_RECOVERY_RAN_ERROR})"))
    return decide(obs, memory, settings)


def test_recovering_a_postmaster_still_shutting_down_is_caught() -> None:
    """The shell of the chaos run's tree: a postmaster that does not answer reads as not
    running, and nothing says that it is alive."""
    caught = 0
    for seed in SEEDS:
        world = World(seed, control_data=True, trip_rate=TRIPS)
        for node in world.nodes.values():
            node.db.blind_shell = True
        world.run(fault_seconds=4000, quiet_seconds=400)
        caught += world.recoveries_while_alive
    assert caught > 0


def test_a_transient_failure_that_sticks_is_caught() -> None:
    assert sum(_run(seed, decide_fn=_every_failure_is_final).events_landed["crash_recovery_failed"]
               for seed in SEEDS) > 0
