"""The executor against the in-memory DCS and a hand-written fake manager."""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional, Sequence

from qhb_patroni.core import actions as A
from qhb_patroni.core.local import DATA_PRESENT, LocalState
from qhb_patroni.core.model import Member
from qhb_patroni.dcs import keys
from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.runtime.executor import Executor, LeaseTracker
from qhb_patroni.runtime.probe import parse_peer_status
from qhb_patroni.runtime.tasks import TaskRunner


class FakeManager:
    """Records calls; promote blocks until released so a test can look at the task."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.safepoints: List[Optional[Callable[[], None]]] = []
        self.release = threading.Event()

    def promote(self, wait: float, on_promoted: Optional[Callable[[], None]] = None,
                slots: Sequence[str] = ()) -> bool:
        self.calls.append(("promote", wait, tuple(slots)))
        self.release.wait(5)
        return True

    def demote(self, mode: str, leader: Optional[str], on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        self.calls.append(("demote", mode, leader))
        self.safepoints.append(on_safepoint)
        return True

    def follow(self, leader: Optional[str]) -> bool:
        self.calls.append(("follow", leader))
        return True

    def checkpoint(self) -> None:
        self.calls.append(("checkpoint",))

    def wake_wal_receiver(self) -> bool:
        self.calls.append(("wake_wal_receiver",))
        return len(self.calls) > 1  # the first call fails: the action is best effort

    def stop(self, mode: str = "fast", timeout: Optional[float] = None,
             on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        self.calls.append(("stop", mode))
        self.safepoints.append(on_safepoint)
        return True

    def observe(self, deadline: Optional[float] = None, cluster_timeline: Optional[int] = None) -> LocalState:
        return LocalState(data_dir=DATA_PRESENT, lsn=4242)

    def stopped_position(self) -> Optional[int]:
        return 4242  # the stopped server's last position


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_700_000_000.0 + self.now


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
    result = ex.execute([A.AcquireLock(), A.Promote(slots=("n1", "n2"))], dcs.get_cluster())
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
    # The members' slots are the promote task's (created while the server promotes).
    assert mgr.calls == [("promote", 3.0, ("n1", "n2"))]


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


def test_stops_marked_for_it_close_the_watchdog_at_the_safepoint() -> None:
    """StopServer/Demote with disarm_at_safepoint hand the watchdog's disarm to the stop
    (called once the server takes no write); without it they hand nothing."""
    ex, dcs, mgr, *_ = make("n0", MemoryServer(clock=Clock()))
    leader = Member(name="n1", conn_url="postgres://127.0.0.1:5433/qhb")
    ex.execute([A.StopServer("fast", disarm_at_safepoint=True), A.Demote("graceful", leader, True),
                A.StopServer("fast"), A.Demote("immediate", leader)], None)
    assert mgr.safepoints == [ex.watchdog.disarm, ex.watchdog.disarm, None, None]


def test_demote_immediate_then_release_my_lock() -> None:
    """One effect per action: the demotion stops being writable, the ReleaseLock after it
    gives the key back (by name: the version read this cycle may be stale)."""
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    ex.execute([A.AcquireLock()], None)
    leader = Member(name="n1", conn_url="postgres://127.0.0.1:5433/qhb")
    result = ex.execute([A.Demote("immediate", leader)], dcs.get_cluster())
    assert result.failed is None and lease.written_at is None
    assert dcs.get_cluster().leader is not None and dcs.get_cluster().leader.name == "n0"  # type: ignore[union-attr]
    result = ex.execute([A.ReleaseLock()], dcs.get_cluster())
    assert result.failed is None and result.lock_changed
    assert dcs.get_cluster().leader is None
    assert mgr.calls == [("demote", "immediate", "postgres://127.0.0.1:5433/qhb")]


def test_a_failed_demotion_keeps_the_lock() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    ex.execute([A.AcquireLock()], None)
    mgr.demote = lambda mode, leader: False  # type: ignore[method-assign]
    result = ex.execute([A.Demote("immediate"), A.ReleaseLock()], dcs.get_cluster())
    assert result.failed is not None and isinstance(result.failed.action, A.Demote)
    assert dcs.get_cluster().leader is not None  # never handed over while maybe still writable


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


def test_a_switchover_stops_cleanly_then_hands_the_lock_over_with_the_shutdown_position() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    ex.execute([A.AcquireLock()], None)
    acts = [A.StopServer("fast", checkpoint=True), A.ReleaseLock(stopped_position=True), A.Demote("graceful")]
    result = ex.execute(acts, dcs.get_cluster())
    assert result.failed is None and result.lock_changed and lease.written_at is None
    assert mgr.calls == [("checkpoint",), ("stop", "fast"), ("demote", "graceful", None)]
    assert dcs.get_cluster().leader is None
    status = dcs.store.load().nodes.get(keys.STATUS)
    assert status is not None and '"optime":4242' in status.value


def test_a_release_without_a_version_is_a_cas_on_my_last_write_then_by_name() -> None:
    """The version my last leader-key write left is released without reading the key; when
    it changed since (an answer lost in transit, a renewal by name) the key is released by
    name as before, and another member's key is never touched."""
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    ex.execute([A.AcquireLock()], None)
    assert ex.execute([A.ReleaseLock()], None).failed is None
    assert dcs.get_cluster().leader is None
    ex.execute([A.AcquireLock()], None)
    again = ClusterDCS(server.client("n0-other"), "n0", ttl=10)
    assert again.update_leader(None) is not None  # the key is still mine, at another version
    assert ex.execute([A.ReleaseLock()], None).failed is None
    assert dcs.get_cluster().leader is None
    ex.execute([A.AcquireLock()], None)
    other = ClusterDCS(server.client("n1"), "n1", ttl=10)
    assert dcs.delete_leader(None) and other.attempt_to_acquire_leader() is not None
    assert ex.execute([A.ReleaseLock()], None).failed is not None
    leader = dcs.get_cluster().leader
    assert leader is not None and leader.name == "n1"


def test_the_planned_stop_actions_report_to_the_loop() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    result = ex.execute([A.PublishNoSync(True), A.Recheck(0.5), A.Recheck(2.0)], None)
    assert ex.nosync and result.recheck_after == 0.5 and not result.exit
    result = ex.execute([A.StopServer("fast"), A.Exit()], None)
    assert result.exit and ("stop", "fast") in mgr.calls
    ex.execute([A.PublishNoSync(False)], None)
    assert not ex.nosync


def test_waking_the_wal_receiver_is_best_effort_and_asks_for_an_early_look() -> None:
    server = MemoryServer(clock=Clock())
    ex, dcs, mgr, tasks, lease, clock, _ = make("n0", server)
    for _ in range(2):  # the first reload fails, the second works: neither stops the cycle
        result = ex.execute([A.WakeWalReceiver(), A.Recheck(0.5)], None)
        assert result.failed is None and result.recheck_after == 0.5
    assert mgr.calls.count(("wake_wal_receiver",)) == 2


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
