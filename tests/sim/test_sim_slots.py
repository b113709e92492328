"""Seeded simulations with permanent slots and ignore_slots: through crashes,
partitions and failovers every primary keeps the member and permanent physical
slots, and once things calm down a foreign slot is dropped, an ignored one kept."""
from __future__ import annotations

import pytest

from qhb_patroni.core.slots import slot_name_for

from .world import World

DCS = {"ttl": 30, "loop_wait": 10, "slots": {"backup": {"type": "physical"}, "n1": {"type": "physical"}},
       "ignore_slots": [{"name": "keep_me"}]}


@pytest.mark.parametrize("seed", [61, 62])
def test_permanent_and_ignored_slots_under_faults(seed: int) -> None:
    world = World(seed, bootstrap_dcs=DCS)
    world.run(fault_seconds=3000, quiet_seconds=400)
    assert world.converged() == [], world.describe()
    assert world.promotions >= 2
    lead = next(n for n in world.nodes.values() if n.db.writable)
    others = {slot_name_for(n) for n in world.nodes if n != lead.name}
    # Member slots, the permanent one, and 'n1' (permanent) unless the primary is n1 itself.
    expected = others | {"backup"} | ({"n1"} if lead.name != "n1" else set())
    assert set(lead.db.slots) == expected

    lead.db.slots = tuple(sorted(set(lead.db.slots) | {"foreign", "keep_me"}))
    world.run(fault_seconds=0, quiet_seconds=60)
    assert lead.db.writable
    assert set(lead.db.slots) == expected | {"keep_me"}
