"""Seeded simulations with someone writing garbage into the DCS keys (issue 12
items 2 and 3), on top of the usual crashes, partitions and outages: the same
safety invariants every simulated second (never two writable primaries with a
valid lease, no node exits), and convergence to one primary afterwards even
though the garbage stays in the keys.  The leader key is left out: another
value there is another owner of the lock."""
from __future__ import annotations

import json
import random

import pytest

from qhb_patroni.dcs import keys
from qhb_patroni.dcs.base import DCSError

from .world import World

DEEP = "[" * 20_000 + "]" * 20_000
GARBAGE = (
    "Infinity", "NaN", "1e400", "-1", "9" * 5000, DEEP, "\ufffd\ufffd{", "[1, 2, 3]", '"text"', "{}",
    '{"optime": 1e400, "slots": {"a": NaN}}',
    '{"leader": {"a": 1}, "sync_standby": [1, {"b": 2}]}',
    '{"leader": "n0", "member": "n1", "scheduled_at": "0001-01-01T00:00:00+01:00"}',
    '{"leader": "n0", "member": "n1", "scheduled_at": "2030-01-01T00:00:00"}',
    '{"conn_url": "postgres://127.0.0.1:1/x", "state": "running", "role": "master", "xlog_location": 1e400, '
    '"timeline": Infinity}',
    '{"xlog_location": 18446744073709551616, "timeline": 0, "tags": "nofailover", "role": ["master"]}',
    '[[1e400, 1, "x"], ["2", "3"]]',
    '{"ttl": -1, "loop_wait": "x", "pause": "maybe", "synchronous_mode": {"a": NaN}}',
)
KEYS = ("config", "status", "sync", "history", "failsafe", "failover", "initialize", "optime/leader",
        "members/n1", "members/n2", "members/ghost")


class Vandal:
    """Writes a random garbage value into a random key now and then."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.rng = random.Random(seed)
        self.written = 0

    def maybe_write(self) -> None:
        if self.rng.random() >= 0.05:
            return
        try:
            self.world.observer.put(self.rng.choice(KEYS), self.rng.choice(GARBAGE))
            self.written += 1
        except DCSError:
            pass  # a DCS outage of the simulation


@pytest.mark.parametrize("seed", [61, 62, 63])
def test_garbage_in_the_keys_under_faults(seed: int) -> None:
    world = World(seed)
    vandal = Vandal(world, seed)
    for _ in range(3000):
        vandal.maybe_write()
        world.step(faults=True)
    for key in ("status", "members/ghost", "failover"):  # garbage still there while it settles
        world.observer.put(key, GARBAGE[vandal.rng.randrange(len(GARBAGE))])
    for _ in range(400):
        world.step(faults=False)
    assert vandal.written > 50
    assert world.converged() == [], world.describe() + "\n" + "\n".join(world.trace)
    assert world.primaries_seen > 1000 and world.promotions >= 2
    view, problems = keys.decode_checked(world.observer.load())
    assert problems and all(key for key, _ in problems)  # garbage present, no decoder bug


def test_every_garbage_value_decodes_without_an_error() -> None:
    for key in KEYS:
        for value in GARBAGE:
            _, problems = keys.decode_checked(keys.snapshot_of({key: value}))
            assert all(k for k, _ in problems), (key, value, problems)
    json.dumps(GARBAGE)  # the values themselves are plain strings
