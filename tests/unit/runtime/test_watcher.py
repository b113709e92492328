"""The leader-key watcher against the in-memory DCS (real clock, real thread)."""
from __future__ import annotations

import threading
import time
from typing import Iterator, Tuple

import pytest

from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.runtime.watcher import LeaderWatcher


@pytest.fixture
def setup() -> Iterator[Tuple[LeaderWatcher, ClusterDCS, ClusterDCS, threading.Event]]:
    server = MemoryServer()
    leader = ClusterDCS(server.client("n0"), "n0", ttl=30)
    mine = ClusterDCS(server.client("n1"), "n1", ttl=30)
    assert leader.attempt_to_acquire_leader() is not None
    woken = threading.Event()
    stopping = threading.Event()
    watcher = LeaderWatcher(ClusterDCS(server.client("n1-watch"), "n1", ttl=30), woken.set, stopping,
                            lambda: "n1", lambda: 5.0, time.monotonic)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    yield watcher, leader, mine, woken
    stopping.set()
    watcher.stop()
    thread.join(10)


def test_a_renewal_does_not_wake_the_loop_a_released_key_does(setup) -> None:  # type: ignore[no-untyped-def]
    watcher, leader, mine, woken = setup
    view = mine.get_cluster()
    ended = time.monotonic()
    watcher.seen(view)
    assert view.leader is not None
    assert leader.update_leader(view.leader.version) is not None  # a renewal
    assert not woken.wait(0.3)
    assert leader.delete_leader(None)
    assert woken.wait(5)
    # The view the watcher read is handed over once, to a cycle that ended before it was read.
    fresh = watcher.take_fresh(ended)
    assert fresh is not None and fresh.leader is None
    assert watcher.take_fresh(ended) is None


def test_a_view_read_before_the_cycle_ended_is_not_handed_over(setup) -> None:  # type: ignore[no-untyped-def]
    watcher, leader, mine, woken = setup
    watcher.seen(mine.get_cluster())
    assert leader.delete_leader(None)
    assert woken.wait(5)
    assert watcher.take_fresh(time.monotonic()) is None  # the cycle ended after the read: read afresh
    assert watcher.take_fresh(None) is None
