"""The DCS contract, part 2: watches, consistent reads, outages and unreachable servers."""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Tuple

import pytest

from qhb_patroni.dcs.base import DCSError
from tests.contract.backends import Backend

Factory = Callable[..., Backend]


def _later(delay: float, action: Callable[[], object]) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_watch_is_woken_by_leader_deletion(store_factory: Factory) -> None:
    backend = store_factory(realtime=True)
    a, b = backend.client("a"), backend.client("b")
    version = a.attempt_to_acquire_leader()
    view = b.get_cluster()
    assert view.leader is not None
    changer = _later(0.3, lambda: a.delete_leader(version))
    woken = b.watch_leader(view, timeout=30.0)
    changer.join(10)
    assert woken is True  # returned because of the change, not the 30 s timeout
    assert b.get_cluster().leader is None


def test_watch_is_woken_when_a_leader_appears(store_factory: Factory) -> None:
    backend = store_factory(realtime=True)
    a, b = backend.client("a"), backend.client("b")
    view = b.get_cluster()
    assert view.leader is None
    changer = _later(0.3, a.attempt_to_acquire_leader)
    assert b.watch_leader(view, timeout=30.0) is True
    changer.join(10)
    assert b.get_cluster().leader is not None


def test_watch_is_woken_by_lease_expiry(store_factory: Factory) -> None:
    backend = store_factory(realtime=True)
    a, b = backend.client("a", ttl=2), backend.client("b", ttl=2)
    a.attempt_to_acquire_leader()
    view = b.get_cluster()
    assert b.watch_leader(view, timeout=max(30.0, backend.lease_seconds(2) + 15)) is True
    assert b.get_cluster().leader is None


def test_watch_ignores_other_keys_and_times_out(store_factory: Factory) -> None:
    backend = store_factory(realtime=True)
    a, b = backend.client("a"), backend.client("b")
    a.attempt_to_acquire_leader()
    view = b.get_cluster()
    changer = _later(0.1, lambda: a.set_config({"ttl": 30}))
    assert b.watch_leader(view, timeout=1.0) is False
    changer.join(10)


def test_watch_returns_at_once_for_a_change_made_before_it_started(store_factory: Factory) -> None:
    backend = store_factory()  # works with the fake clock too: no blocking needed
    a, b = backend.client("a"), backend.client("b")
    version = a.attempt_to_acquire_leader()
    view = b.get_cluster()
    a.update_leader(version)
    assert b.watch_leader(view, timeout=30.0) is True


def test_a_renewal_seen_by_the_watch_needs_no_new_read(store_factory: Factory) -> None:
    """renewed(): the watched view moved to the renewed leader version (what a new read
    says), or None where the backend's watch does not carry the event; never for a leader
    key that went away."""
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    version = a.attempt_to_acquire_leader()
    view = b.get_cluster()
    renewed_version = a.update_leader(version)
    assert renewed_version is not None
    assert b.watch_leader(view, timeout=30.0) is True
    moved = b.renewed(view)
    if moved is not None:
        fresh = b.get_cluster()
        assert moved.leader is not None and fresh.leader is not None
        assert (moved.leader.name, moved.leader.version) == (fresh.leader.name, fresh.leader.version)
        assert b.watch_leader(moved, timeout=0.5) is False  # nothing new since: watched from there
        assert a.delete_leader(renewed_version)
        assert b.watch_leader(moved, timeout=30.0) is True
        assert b.renewed(moved) is None  # gone: the caller reads the cluster


def test_the_failover_watch_starts_from_the_view_it_is_given(store_factory: Factory) -> None:
    """watch_failover(view): a change of /failover made after that read wakes it, even one
    made before the watch started; none times out.  A cleared key "{}" counts as held."""
    backend = store_factory(realtime=True)
    a, b = backend.client("a"), backend.client("b")
    a.attempt_to_acquire_leader()
    assert a.set_failover({})
    view = a.get_cluster()
    assert view.failover is None and view.failover_version is not None
    assert a.watch_failover(view, timeout=1.0) is False
    assert b.manual_failover("a", "b")  # before the watch starts: seen at once
    assert a.watch_failover(view, timeout=30.0) is True
    fresh = a.get_cluster()
    changer = _later(0.3, lambda: b.delete_failover())
    assert a.watch_failover(fresh, timeout=30.0) is True
    changer.join(10)


def test_prefix_read_is_a_consistent_snapshot(store_factory: Factory) -> None:
    backend = store_factory()
    writer, reader = backend.client("w"), backend.client("r")
    rounds = 40
    stop = threading.Event()

    def write() -> None:
        # config is always written before history: in any consistent read,
        # history's round <= config's round <= history's round + 1
        for i in range(1, rounds + 1):
            writer.set_config({"n": i})
            writer.set_history([[i, 0, "r"]])
        stop.set()

    def read() -> Tuple[int, int]:
        snap = reader.store.load()
        assert snap.index is None or all(n.version <= snap.index for n in snap.nodes.values())
        view = reader.get_cluster()
        config_n = int(view.config.data.get("n", 0)) if view.config else 0
        history_n = int(view.history[-1][0]) if view.history else 0
        return config_n, history_n

    seen: List[Tuple[int, int]] = []
    thread = threading.Thread(target=write)
    thread.start()
    try:
        while not stop.is_set():
            seen.append(read())
    finally:
        thread.join(60)
    seen.append(read())
    assert all(h <= c <= h + 1 for c, h in seen), seen
    assert seen[-1] == (rounds, rounds)


def test_server_outage_raises_then_recovers(store_factory: Factory) -> None:
    backend = store_factory()
    backend.prepare_restart()
    a = backend.client("a", retry_timeout=1.0)
    assert a.set_config({"ttl": 30})
    assert a.initialize("7214287012345678901", create=True)
    backend.stop_server()
    try:
        with pytest.raises(DCSError):
            a.get_cluster()
        with pytest.raises(DCSError):
            a.set_config({"ttl": 10})
        with pytest.raises(DCSError):
            a.attempt_to_acquire_leader()
        # a watch never raises: it waits (out) and reports no change
        assert a.watch_leader(None, timeout=0.5) is False
    finally:
        backend.start_server()
    view = a.get_cluster()
    assert view.config is not None and view.config.data == {"ttl": 30}
    assert view.initialize == "7214287012345678901"
    assert a.attempt_to_acquire_leader() is not None


@pytest.mark.parametrize("operation", ["get_cluster", "touch_member", "acquire", "set_config", "delete_leader"])
def test_unreachable_server_is_a_bounded_dcs_error(store_factory: Factory, operation: str) -> None:
    backend = store_factory()
    retry_timeout = 1.5
    dcs = backend.client("x", retry_timeout=retry_timeout)  # a reachable one, for contrast
    assert dcs.get_cluster().leader is None
    cut = backend.unreachable_client("x", retry_timeout=retry_timeout)
    calls: Dict[str, Callable[[], object]] = {
        "get_cluster": cut.get_cluster,
        "touch_member": lambda: cut.touch_member({"state": "running"}),
        "acquire": cut.attempt_to_acquire_leader,
        "set_config": lambda: cut.set_config({"ttl": 30}),
        "delete_leader": lambda: cut.delete_leader(5),
    }
    started = time.monotonic()
    with pytest.raises(DCSError) as info:
        calls[operation]()
    elapsed = time.monotonic() - started
    assert backend.endpoint_text() in str(info.value)
    assert elapsed < retry_timeout + 5.0  # bounded by retry_timeout (generous slack: a 2-core box)
