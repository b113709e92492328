"""The seeded simulations at the fast profile: ttl 5 / loop_wait 1 / retry_timeout 2.

The same worlds as test_sim.py and test_sim_fencing.py (crashes, restarts, partitions,
DCS outages, lost answers, stalled daemons), with the timings of the profile that
docs/failover-decisions.md recommends where the network allows.  The invariants are the
world's own, checked every simulated second: never two writable primaries, no writable
primary without a lock write in the last ttl (or a confirmed failsafe round), and in
synchronous mode no writable primary that lacks an acknowledged commit.
"""
from __future__ import annotations

from typing import Any, Dict

import pytest

from .world import World

FAST: Dict[str, Any] = dict(ttl=5, loop_wait=1, retry_timeout=2,
                            bootstrap_dcs={"ttl": 5, "loop_wait": 1, "retry_timeout": 2})
STALLS = 0.004  # as test_sim_fencing: a daemon stops for ttl + 1 .. 2.5 ttl seconds


def _check(world: World) -> None:
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)
    assert world.primaries_seen > 1000
    assert world.promotions >= 2
    assert world.landings > 500


@pytest.mark.parametrize("seed", range(201, 205))
def test_fast_profile_under_faults(seed: int) -> None:
    world = World(seed, **FAST)
    world.run(fault_seconds=4000, quiet_seconds=400)
    _check(world)


@pytest.mark.parametrize("seed", range(211, 215))
def test_fast_profile_synchronous_mode_loses_no_acknowledged_commit(seed: int) -> None:
    world = World(seed, synchronous_mode=True, **FAST)
    world.run(fault_seconds=4000, quiet_seconds=400)
    _check(world)
    assert world.acked_checks > 1000


@pytest.mark.parametrize("seed", [221, 222])
def test_fast_profile_with_lost_dcs_answers(seed: int) -> None:
    """A lost answer to a renewal demotes the primary (as in 3.0.2); at loop_wait 1 that is
    five times as frequent as at loop_wait 10, so the answers stop being lost for the
    quiet period before convergence is checked."""
    world = World(seed, lossy=0.05, **FAST)
    world.run(fault_seconds=3000, quiet_seconds=0)
    for node in world.nodes.values():
        node.dcs.store.rate = 0.0  # type: ignore[attr-defined]
    world.run(fault_seconds=0, quiet_seconds=400)
    _check(world)


@pytest.mark.parametrize("seed", range(231, 235))
def test_fast_profile_watchdog_fences_stalled_primaries(seed: int) -> None:
    """safety_margin 1: a 4 s device timeout, longer than loop_wait + retry_timeout (3 s)."""
    world = World(seed, stall_rate=STALLS, watchdog_mode="required", watchdog_safety_margin=1,
                  synchronous_mode=True, **FAST)
    world.run(fault_seconds=4000, quiet_seconds=400)
    _check(world)
    assert world.resets_of_running_daemons == 0
