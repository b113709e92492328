"""Seeded simulations of a standby cluster (dynamic standby_cluster naming a remote
primary outside the cluster): through crashes, planned stops, partitions, DCS outages
and lost DCS answers, no member is ever writable or told to promote (checked every
simulated second and after every cycle), a member holds the lock as the standby
leader streaming from the remote most of the time, and once the faults stop the
cluster converges to one standby leader following the remote with the other members
following it."""
from __future__ import annotations

from dataclasses import replace

import pytest

from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings

from .standby_world import REMOTE, StandbyWorld
from .world import InvariantViolation


def _run(world: StandbyWorld, fault_seconds: int) -> StandbyWorld:
    # The first member's clone from the remote completes before the faults start: a crash
    # of the member holding /initialize during that first clone leaves every member waiting
    # for a bootstrap that never runs (as in 3.0.2, see LossyStore in world.py).
    world.run(fault_seconds=0, quiet_seconds=60)
    assert world.standby_leader() is not None
    world.run(fault_seconds=fault_seconds, quiet_seconds=400)
    return world


def _check(world: StandbyWorld) -> None:
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)
    assert world.member_writable_checks > 1000
    # The cluster had a standby leader streaming from the remote most of the time.
    assert world.standby_leader_seconds > world.seconds // 2, (world.standby_leader_seconds, world.seconds)
    assert world.landings > 500  # executed decisions landed in the role the table names
    # The lock did move: a standby leader was lost and another member took over.
    assert world.events_landed["standby_lock_acquired"] >= 2, dict(world.events_landed)


@pytest.mark.parametrize("seed", range(101, 107))
def test_standby_leader_never_promotes_under_faults(seed: int) -> None:
    world = _run(StandbyWorld(seed), 4000)
    _check(world)
    assert world.events_landed["shutdown_stop"] + world.exits > 0  # planned stops happened


@pytest.mark.parametrize("seed", [111, 112])
def test_standby_cluster_with_lost_dcs_answers(seed: int) -> None:
    world = _run(StandbyWorld(seed, lossy=0.05), 3000)
    _check(world)


@pytest.mark.parametrize("seed", [121])
def test_switchover_requests_never_make_a_standby_cluster_writable(seed: int) -> None:
    """/failover intents written under the faults (the standby leader does not hand over
    on them; a member that wins a race clears them): safety and convergence hold."""
    world = _run(StandbyWorld(seed, switchovers=True), 3000)
    _check(world)
    assert world.switchovers >= 3


def test_calm_standby_cluster_clones_the_remote_once() -> None:
    world = StandbyWorld(seed=100)
    world.run(fault_seconds=0, quiet_seconds=300)
    assert world.converged() == []
    lead = world.standby_leader()
    assert lead is not None and lead.db.sysid == world.remote.db.sysid
    assert all(n.db.following in (REMOTE, lead.name) for n in world.nodes.values())


# ---- the check must be able to fail ----------------------------------------------------------
def _normal_cluster_core(obs: Observation, memory: Memory, settings: Settings) -> Decision:
    """A core that forgets standby_cluster in the leader race: the winner promotes."""
    if obs.cluster is not None and obs.cluster.leader is None and obs.local.is_replica and not memory.bootstrapping:
        settings = replace(settings, standby=None)
    return decide(obs, memory, settings)


def test_a_core_that_promotes_in_a_standby_cluster_is_caught() -> None:
    with pytest.raises(InvariantViolation, match="standby cluster"):
        _run(StandbyWorld(101, decide_fn=_normal_cluster_core), 4000)
