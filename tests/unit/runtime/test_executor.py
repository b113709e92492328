"""The executor against the in-memory DCS and a hand-written fake manager."""
from __future__ import annotations

import threading
from typing import Any, List, Optional

from qhb_patroni.core import actions as A
from qhb_patroni.core.model import Member
from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.runtime.executor import Executor, LeaseTracker
from qhb_patroni.runtime.probe import parse_peer_status
from qhb_patroni.runtime.tasks import TaskRunner


class FakeManager:
    """Records calls; promote blocks until released so a test can look at the task."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.release = threading.Event()

    def promote(self, wait: float) -> bool:
        self.calls.append(("promote", wait))
        self.release.wait(5)
        return True

    def demote(self, mode: str, leader: Optional[str]) -> bool:
        self.calls.append(("demote", mode, leader))
        return True

    def follow(self, leader: Optional[str]) -> bool:
        self.calls.append(("follow", leader))
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(name: str, server: MemoryServer) -> tuple:
    clock = Clock()
    dcs = ClusterDCS(server.client(name), name, ttl=10)
    mgr = FakeManager()
    done = threading.Event()
    tasks = TaskRunner(on_done=done.set)
    lease = LeaseTracker()
    ex = Executor(dcs, mgr, tasks, lease, clock, promote_wait=lambda: 3.0)
    return ex, dcs, mgr, tasks, lease, clock, done


def test_promote_is_never_reached_after_losing_the_lock_race() -> None:
    server = MemoryServer(clock=Clock())
    other = ClusterDCS(server.client("n1"), "n1", ttl=10)
    assert other.attempt_to_acquire_leader() is not None
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    result = ex.execute([A.AcquireLock(), A.Promote()], dcs.get_cluster())
    assert result.failed is not None and isinstance(result.failed.action, A.AcquireLock)
    assert mgr.calls == [] and tasks.peek() is None
    assert lease.written_at is None


def test_acquire_then_promote_runs_the_task_and_records_the_lease() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, done = make("n0", server)
    result = ex.execute([A.AcquireLock(), A.Promote()], dcs.get_cluster())
    assert result.failed is None and result.lock_changed
    assert lease.written_at == clock.now
    assert dcs.get_cluster().leader is not None and dcs.get_cluster().leader.name == "n0"
    status = tasks.peek()
    assert status is not None and status.kind == "Promote" and not status.done
    # A second long action is refused while the first runs.
    assert ex.execute([A.Promote()], None).failed is not None
    mgr.release.set()
    assert done.wait(5)
    finished = tasks.status()
    assert finished is not None and finished.done and finished.ok
    assert tasks.status() is None  # reported exactly once
    assert mgr.calls == [("promote", 3.0)]


def test_failed_renewal_drops_the_local_lease() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    assert ex.execute([A.AcquireLock()], None).failed is None
    stale = dcs.get_cluster().leader
    assert stale is not None
    # Somebody else now owns the key (ours was deleted and re-taken).
    assert dcs.delete_leader(stale.version)
    assert ClusterDCS(server.client("n1"), "n1", ttl=10).attempt_to_acquire_leader() is not None
    result = ex.execute([A.RenewLock(version=stale.version), A.Follow(None)], None)
    assert result.failed is not None and isinstance(result.failed.action, A.RenewLock)
    assert lease.written_at is None
    assert mgr.calls == []  # Follow after the failure was not performed


def test_dcs_outage_is_a_failed_action_not_an_exception() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    server.set_down(True)
    result = ex.execute([A.AcquireLock()], None)
    assert result.failed is not None and "DCS error" in result.failed.error


def test_demote_immediate_releases_my_lock_first() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    ex.execute([A.AcquireLock()], None)
    leader = Member(name="n1", conn_url="postgres://127.0.0.1:5433/qhb")
    result = ex.execute([A.Demote("immediate", leader)], dcs.get_cluster())
    assert result.failed is None
    assert dcs.get_cluster().leader is None
    assert mgr.calls == [("demote", "immediate", "postgres://127.0.0.1:5433/qhb")]
    assert lease.written_at is None


def test_parse_peer_status_shapes() -> None:
    primary = parse_peer_status("a", {"role": "master", "state": "running", "xlog": {"location": 500}})
    assert not primary.in_recovery and primary.wal_position == 500
    replica = parse_peer_status(
        "b",
        {"role": "replica", "xlog": {"received_location": 300, "replayed_location": 200}, "tags": {"nofailover": True}},
    )
    assert replica.in_recovery and replica.wal_position == 300 and replica.nofailover
    stopped = parse_peer_status("c", {"state": "stopped", "role": "demoted"})
    assert stopped.in_recovery and stopped.wal_position == 0


def test_write_history_keeps_the_last_max_timelines_history_lines() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    lines = [[tl, tl * 100, "no recovery target specified", "", "n0"] for tl in range(1, 6)]
    mgr.timeline_history = lambda: lines  # type: ignore[attr-defined]
    assert ex.execute([A.WriteHistory(keep=2)], dcs.get_cluster()).failed is None
    history = dcs.get_cluster().history
    assert history is not None and [line[0] for line in history] == [4, 5]
    assert ex.execute([A.WriteHistory()], dcs.get_cluster()).failed is None
    history = dcs.get_cluster().history
    assert history is not None and [line[0] for line in history] == [1, 2, 3, 4, 5]
