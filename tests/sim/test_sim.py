"""Seeded simulations of 3 nodes (each the real runtime: HALoop + Executor) under
crashes, restarts, partitions and outages.

Every simulated second: never two writable primaries with a valid local lease,
and no writable primary without a successful lock write in the last ttl; in
synchronous mode also no writable primary that lacks an acknowledged commit.  After
the faults stop: exactly one primary, holding the lock, every other node a
caught-up replica streaming from it.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings
from qhb_patroni.runtime.executor import Executor
from qhb_patroni.runtime.loop import HALoop

from .world import InvariantViolation, World


def _check(world: World, min_promotions: int = 2) -> None:
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)
    assert world.primaries_seen > 1000  # the cluster was actually up most of the time
    assert world.promotions >= min_promotions  # and failovers did happen
    assert world.landings > 500  # executed decisions landed in the role the table names


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
    assert world.events_landed["manual_failover"] >= 2  # the switchover landed the old primary as a replica


@pytest.mark.parametrize("seed", range(51, 57))
def test_synchronous_mode_loses_no_acknowledged_commit(seed: int) -> None:
    """Every simulated second, a writable primary holds every position acknowledged to a
    client so far (the server acknowledges only what its synchronous standbys have)."""
    world = World(seed, synchronous_mode=True)
    world.run(fault_seconds=4000, quiet_seconds=400)
    _check(world)
    assert world.acked_checks > 1000
    assert world.events_landed["shutdown_stop"] > 0  # planned stops happened under the check


def test_synchronous_standbys_hand_over_before_a_planned_stop() -> None:
    """Planned stops of synchronous standbys go through the hand-over (nosync, wait) first
    (whether a stopped node was a synchronous standby at that moment depends on the seed)."""
    landed = 0
    for seed in (51, 52, 53):
        world = World(seed, synchronous_mode=True)
        world.run(fault_seconds=4000, quiet_seconds=400)
        _check(world)
        landed += world.events_landed["sync_hand_over"]
    assert landed > 0


def test_the_acknowledged_commit_check_can_fail() -> None:
    """Asynchronous replication does lose acknowledged commits in these runs."""
    caught = 0
    for seed in range(1, 5):
        world = World(seed)
        world.check_acked = True
        try:
            world.run(fault_seconds=4000, quiet_seconds=0)
        except InvariantViolation as exc:
            assert "without the acknowledged position" in str(exc)
            caught += 1
    assert caught >= 2


def test_calm_cluster_bootstraps_once_and_stays_put() -> None:
    world = World(seed=0)
    world.run(fault_seconds=0, quiet_seconds=300)
    assert world.converged() == []
    assert world.promotions == 0
    for node in world.nodes.values():  # the runtime itself, not a copy
        assert type(node.loop) is HALoop and type(node.loop.executor) is Executor


# ---- the simulation must be able to fail: broken cores are caught ------------------------
def _no_demote_when_dcs_down(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    d = decide(obs, memory, settings)
    if obs.cluster is None:
        return replace(d, actions=tuple(a for a in d.actions if not isinstance(a, A.Demote)))
    return d


def _promote_without_lock(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    d = decide(obs, memory, settings)
    return replace(d, actions=tuple(a for a in d.actions if not isinstance(a, A.AcquireLock)))


def _lock_without_promote(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    """Takes the lock but never promotes: safe, but not where the role table says it goes."""
    d = decide(obs, memory, settings)
    return replace(d, actions=tuple(a for a in d.actions if not isinstance(a, A.Promote)))


def test_a_decision_that_does_not_land_where_the_table_says_is_caught() -> None:
    with pytest.raises(InvariantViolation, match="should land in promoting"):
        World(1, decide_fn=_lock_without_promote).run(fault_seconds=4000, quiet_seconds=0)


@pytest.mark.parametrize("broken", [_no_demote_when_dcs_down, _promote_without_lock])
def test_broken_cores_are_caught(broken: object) -> None:
    # Without the runtime's lease guard, so that a core that never demotes is what is tested.
    with pytest.raises(InvariantViolation):
        for seed in range(1, 4):
            World(seed, decide_fn=broken, lease_guard=False).run(  # type: ignore[arg-type]
                fault_seconds=4000, quiet_seconds=0)


def test_a_primary_cut_off_from_the_dcs_without_a_lease_guard_is_caught() -> None:
    """The core keeps a primary that cannot reach the DCS writable while its lease runs
    (core/lease.py) and relies on the shell's lease guard to fence it on time."""
    with pytest.raises(InvariantViolation, match="writable without a lock write"):
        for seed in range(1, 4):
            World(seed, lease_guard=False).run(fault_seconds=4000, quiet_seconds=0)


def _race_ignores_sync(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    """Synchronous mode on the leader, but the race lets any member win."""
    if obs.cluster is not None and obs.cluster.leader is None:
        settings = replace(settings, synchronous_mode=False)
    return decide(obs, memory, settings)


def test_a_race_that_ignores_sync_is_caught() -> None:
    with pytest.raises(InvariantViolation, match="without the acknowledged position"):
        for seed in range(51, 55):
            World(seed, decide_fn=_race_ignores_sync, synchronous_mode=True).run(fault_seconds=4000,
                                                                                 quiet_seconds=0)
