"""Seeded simulations of 3 nodes under crashes, restarts, partitions and outages.

Every simulated second: never two writable primaries with a valid local lease,
and no writable primary without a successful lock write in the last ttl.  After
the faults stop: exactly one primary, holding the lock, every other node a
caught-up replica streaming from it.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings

from .world import InvariantViolation, World


def _check(world: World, min_promotions: int = 2) -> None:
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)
    assert world.primaries_seen > 1000  # the cluster was actually up most of the time
    assert world.promotions >= min_promotions  # and failovers did happen


@pytest.mark.parametrize("seed", range(1, 9))
def test_safety_and_convergence_under_faults(seed: int) -> None:
    world = World(seed)
    world.run(fault_seconds=4000, quiet_seconds=400)
    _check(world)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_lost_dcs_answers(seed: int) -> None:
    world = World(seed, lossy=0.05)
    world.run(fault_seconds=3000, quiet_seconds=400)
    _check(world)


@pytest.mark.parametrize("seed", [21, 22])
def test_reinit_instead_of_rewind(seed: int) -> None:
    world = World(seed, rewind_possible=False, remove_data_directory_on_diverged_timelines=True)
    world.run(fault_seconds=3000, quiet_seconds=400)
    _check(world)
    assert world.rewinds == 0


@pytest.mark.parametrize("seed", [31])
def test_five_nodes(seed: int) -> None:
    world = World(seed, n=5)
    world.run(fault_seconds=3000, quiet_seconds=400)
    _check(world)


@pytest.mark.parametrize("seed", [41, 42])
def test_switchovers_happen(seed: int) -> None:
    world = World(seed)
    world.run(fault_seconds=3000, quiet_seconds=400)
    _check(world)
    assert world.switchovers >= 3 and world.graceful >= 2, (world.switchovers, world.graceful)


def test_calm_cluster_bootstraps_once_and_stays_put() -> None:
    world = World(seed=0)
    world.run(fault_seconds=0, quiet_seconds=300)
    assert world.converged() == []
    assert world.promotions == 0


# ---- the simulation must be able to fail: broken cores are caught ------------------------
def _no_demote_when_dcs_down(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    d = decide(obs, memory, settings)
    if obs.cluster is None:
        return replace(d, actions=tuple(a for a in d.actions if not isinstance(a, A.Demote)))
    return d


def _promote_without_lock(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    d = decide(obs, memory, settings)
    return replace(d, actions=tuple(a for a in d.actions if not isinstance(a, A.AcquireLock)))


@pytest.mark.parametrize("broken", [_no_demote_when_dcs_down, _promote_without_lock])
def test_broken_cores_are_caught(broken: object) -> None:
    with pytest.raises(InvariantViolation):
        for seed in range(1, 4):
            World(seed, decide_fn=broken).run(fault_seconds=4000, quiet_seconds=0)  # type: ignore[arg-type]
