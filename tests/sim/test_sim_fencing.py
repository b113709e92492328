"""Fencing in the seeded simulations (issue 11): failsafe_mode and the watchdog.

Every simulated second (and after every node's cycle) the world checks that no two
nodes are writable at the same instant, and that a writable node either renewed its
lock less than ttl ago, or decided FailsafeActive less than ttl ago while listed in
/failsafe (as the DCS stores it) with every other member listed there having accepted
its POST /failsafe at that instant (world.py check_invariants, _confirm_failsafe).
POST /failsafe is answered by the target's real api/failsafe.py handler; it gets no
answer across a partition or from a daemon that is down or stalled.

The watchdog is the real runtime Watchdog with a device on the simulated clock
(fencing.py): when it runs out while open, the node is reset (daemon and database
stop).  A stall stops a daemon (cycles, background work, lease guard, REST API) for
longer than ttl while its database keeps running, as SIGSTOP does.
"""
from __future__ import annotations

import random
from dataclasses import replace
from typing import List

import pytest

from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings

from .world import InvariantViolation, World


def _outages(world: World, seed: int, seconds: int, rate: float = 0.01) -> None:
    """Run with faults, and more DCS outages for everybody than the world's own rate,
    after a calm start (a crash during the first bootstrap leaves /initialize behind and
    nobody bootstraps again: a known Patroni limitation, not what is tested here)."""
    world.run(fault_seconds=0, quiet_seconds=60)
    rng = random.Random(seed * 7919)
    for _ in range(seconds):
        if world.outage_until is None and rng.random() < rate:
            world.server.set_down(True)
            world.outage_until = world.clock() + rng.uniform(20, 90)
        world.step(faults=True)


def _converged(world: World) -> None:
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)


@pytest.mark.parametrize("seed", range(101, 107))
def test_failsafe_keeps_one_writable_node_under_outages_and_partitions(seed: int) -> None:
    world = World(seed, failsafe_mode=True)
    _outages(world, seed, 4000)
    world.run(fault_seconds=0, quiet_seconds=400)
    _converged(world)
    assert world.primaries_seen > 1000 and world.promotions >= 2


def test_failsafe_runs_do_keep_primaries_through_outages() -> None:
    """Over the seeds, failsafe confirmations happened and kept a primary writable beyond
    its lease (the extension the invariant accepts was exercised, not only allowed)."""
    confirmations = kept = 0
    for seed in range(101, 107):
        world = World(seed, failsafe_mode=True)
        _outages(world, seed, 4000)
        confirmations += world.failsafe_confirmations
        kept += world.failsafe_kept
    assert confirmations >= 20 and kept >= 50, (confirmations, kept)


# ---- the failsafe checks can fail -----------------------------------------------------
def _ignores_the_failsafe_call(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    """A replica that accepted POST /failsafe but races for the lock anyway."""
    return decide(replace(obs, failsafe_leader=None), memory, settings)


def _stays_without_every_answer(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    """A primary that takes any answer to POST /failsafe for a yes."""
    if obs.failsafe_answers is not None:
        obs = replace(obs, failsafe_answers={name: True for name in obs.failsafe_answers})
    return decide(obs, memory, settings)


def _count_failures(broken: object, seeds: range) -> List[str]:
    caught = []
    for seed in seeds:
        world = World(seed, decide_fn=broken, failsafe_mode=True)  # type: ignore[arg-type]
        try:
            _outages(world, seed, 4000)
        except InvariantViolation as exc:
            caught.append(str(exc).splitlines()[0])
    return caught


def test_a_replica_that_races_despite_the_failsafe_call_is_caught() -> None:
    caught = _count_failures(_ignores_the_failsafe_call, range(101, 107))
    assert any("two writable nodes at the same instant" in c for c in caught), caught


def test_a_primary_that_stays_without_every_acceptance_is_caught() -> None:
    caught = _count_failures(_stays_without_every_answer, range(101, 107))
    assert any("did not accept its POST /failsafe" in c for c in caught), caught


# ---- the watchdog and stalled daemons --------------------------------------------------
STALLS = 0.004  # per simulated second: a daemon stops for ttl + 1 .. 2.5 ttl seconds


def test_a_stalled_primary_without_a_watchdog_is_caught() -> None:
    """SIGSTOP stops the daemon's lease guard too: its server writes on past the lease."""
    caught = []
    for seed in range(1, 4):
        world = World(seed, stall_rate=STALLS)
        try:
            world.run(fault_seconds=4000, quiet_seconds=0)
        except InvariantViolation as exc:
            caught.append(str(exc).splitlines()[0])
    assert len(caught) == 3 and all("is writable without a lock write" in c for c in caught), caught


@pytest.mark.parametrize("mode", ["required", "automatic"])
@pytest.mark.parametrize("seed", range(1, 7))
def test_the_watchdog_fences_stalled_primaries(seed: int, mode: str) -> None:
    world = World(seed, stall_rate=STALLS, watchdog_mode=mode)
    world.run(fault_seconds=4000, quiet_seconds=400)
    _converged(world)
    assert world.primaries_seen > 1000 and world.promotions >= 2


def test_stalled_primaries_were_reset_and_only_they() -> None:
    """The runs above stalled primaries and their watchdogs reset them; no running daemon
    was reset (a primary cut off from the DCS is fenced by its lease guard, which closes
    the watchdog, before the watchdog fires).  A stall still running when the faults end
    is ended then, so not every stalled primary is reset."""
    stalled = resets = 0
    for seed in range(1, 7):
        world = World(seed, stall_rate=STALLS, watchdog_mode="required")
        world.run(fault_seconds=4000, quiet_seconds=400)
        stalled += world.stalled_primaries
        resets += world.watchdog_resets
        assert world.resets_of_running_daemons == 0, seed
    assert resets >= 10 and resets <= stalled, (stalled, resets)


@pytest.mark.parametrize("seed", range(101, 105))
def test_failsafe_and_the_watchdog_together(seed: int) -> None:
    world = World(seed, stall_rate=STALLS, watchdog_mode="required", failsafe_mode=True)
    _outages(world, seed, 4000)
    world.run(fault_seconds=0, quiet_seconds=400)
    _converged(world)
    assert world.primaries_seen > 1000 and world.promotions >= 2
