"""The HA loop on the in-memory DCS: an exception in a cycle is logged and the next
cycle runs; a primary whose cycles keep failing demotes (decided by the core) before
its lease runs out, never exits; /liveness fails while cycles do not complete."""
from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Sequence

from qhb_patroni.api.health import liveness
from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import DATA_PRESENT, STATE_RUNNING, LocalState, ReplicationState
from qhb_patroni.core.model import ClusterView
from qhb_patroni.core.observation import Decision, Memory, Observation, Settings
from qhb_patroni.dcs import keys
from qhb_patroni.dcs.memory import ManualClock, MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.runtime.loop import HALoop
from qhb_patroni.runtime.status import ServerStatus, StatusBoard, StatusView

BASE = "/service/batman"
SYSID = "7214159812345678901"


class PrimaryManager:
    """A running primary that records what it is asked to do."""

    def __init__(self) -> None:
        self.calls: List[Any] = []
        self.primary = True
        self.running = True

    def observe(self, deadline: Optional[float] = None, cluster_timeline: Optional[int] = None) -> LocalState:
        return LocalState(data_dir=DATA_PRESENT, state=STATE_RUNNING if self.running else "stopped",
                          role="master" if self.primary else "replica", running=self.running,
                          in_recovery=not self.primary if self.running else None, timeline=1,
                          lsn=100 if self.running else 120, sysid=SYSID)

    def stopped_position(self) -> Optional[int]:
        return self.observe().lsn

    def server_status(self, deadline: Optional[float] = None) -> ServerStatus:
        return ServerStatus(state="running", role="master" if self.primary else "replica")

    def member_data(self) -> Dict[str, Any]:
        return {"conn_url": "postgres://127.0.0.1:5432/qhb", "state": "running" if self.running else "stopped",
                "role": "master" if self.primary else "replica", "xlog_location": 100, "timeline": 1}

    def stop(self, mode: str = "fast", timeout: Optional[float] = None,
             on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        self.calls.append(("stop", mode))
        self.primary = False
        self.running = False
        return True

    def demote(self, mode: str, leader: Optional[str], on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        self.calls.append(("demote", mode))
        self.primary = False
        return True

    def sync_slots(self, names: Sequence[str]) -> None:
        self.calls.append(("sync_slots", tuple(names)))

    def timeline_history(self) -> List[List[Any]]:
        return []

    def replication_state(self, confirm: Sequence[str] = ()) -> ReplicationState:
        return ReplicationState()

    def note_paused_not_running(self) -> None:
        pass


class Breakable:
    """The real core, made to raise while `broken`."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self, obs: Observation, memory: Memory, settings: Settings) -> Decision:
        if self.broken and obs.failed_cycles == 0:
            raise RuntimeError("a bug in this cycle")
        return decide(obs, memory, settings)


def make_loop(core: Any = decide) -> tuple[HALoop, PrimaryManager, ManualClock, ClusterDCS]:
    clock = ManualClock()
    server = MemoryServer(clock=clock)
    dcs = ClusterDCS(server.client("a", BASE), "a")
    assert dcs.initialize(SYSID, create=True)
    assert dcs.set_config({"ttl": 30, "loop_wait": 10})
    manager = PrimaryManager()
    board = StatusBoard(StatusView(name="a", scope="batman", version="3.0.2", api_url="http://127.0.0.1:8008/patroni",
                                   conn_url="postgres://127.0.0.1:5432/qhb"))

    def settings(cluster: Optional[ClusterView]) -> Settings:
        return Settings(name="a", scope="batman", ttl=30, loop_wait=10)

    loop = HALoop(dcs=dcs, watch_dcs=ClusterDCS(server.client("aw", BASE), "a"), manager=manager, board=board,
                  settings_provider=settings, member_extra=lambda: {"api_url": "http://127.0.0.1:8008/patroni"},
                  clock=clock, decide_fn=core)
    return loop, manager, clock, dcs


def leader_of(dcs: ClusterDCS) -> Optional[str]:
    view = dcs.get_cluster()
    return view.leader.name if view.leader else None


def test_a_primary_whose_cycles_fail_keeps_serving_while_its_lease_lasts_then_demotes() -> None:
    core = Breakable()
    loop, manager, clock, dcs = make_loop(core)
    assert loop.cycle() is not None  # takes the lock
    assert leader_of(dcs) == "a" and loop.failed_cycles == 0
    core.broken = True
    clock.advance(10)
    assert loop.cycle() is None  # logged, not raised
    assert loop.failed_cycles == 1 and manager.primary  # the lease (written at 0) lasts past the next cycle
    clock.advance(10)
    assert loop.cycle() is None
    assert loop.failed_cycles == 2
    assert ("demote", "offline") in manager.calls and not manager.primary  # 20 + 10 >= 0 + 30
    assert loop.lease.written_at is None
    core.broken = False
    clock.advance(10)
    assert loop.cycle() is not None  # the next good cycle runs as usual
    assert loop.failed_cycles == 0


def test_a_replica_whose_cycles_fail_does_nothing() -> None:
    core = Breakable()
    loop, manager, clock, dcs = make_loop(core)
    manager.primary = False
    other = ClusterDCS(dcs.store, "b")
    assert other.attempt_to_acquire_leader() is not None
    core.broken = True
    for _ in range(5):
        clock.advance(10)
        assert loop.cycle() is None
    assert loop.failed_cycles == 5
    assert [c for c in manager.calls if c[0] == "demote"] == []


def test_liveness_fails_when_cycles_stop_completing() -> None:
    core = Breakable()
    loop, manager, clock, dcs = make_loop(core)
    loop.cycle()
    view = loop.board.get()
    assert liveness(view, clock.monotonic()) == 200
    core.broken = True
    for _ in range(8):
        clock.advance(10)
        loop.cycle()
    # 80 s since the last completed cycle was due (the node demoted itself: 2 x ttl applies)
    assert liveness(loop.board.get(), clock.monotonic()) == 503
    core.broken = False
    loop.cycle()
    assert liveness(loop.board.get(), clock.monotonic()) == 200


def test_a_failover_value_that_is_not_a_time_does_not_stop_the_loop() -> None:
    """A naive year-1 scheduled_at cannot be turned into epoch seconds: neither the
    cycle nor the computation of the next wake-up may raise."""
    loop, manager, clock, dcs = make_loop()
    loop.cycle()
    raw = json.dumps({"leader": "a", "member": "b", "scheduled_at": "0001-01-01T00:00:00"})
    assert dcs.store.put(keys.FAILOVER, raw) is not None
    for _ in range(3):
        clock.advance(10)
        loop.cycle()
        loop.sleep_seconds(clock.monotonic())
    assert manager.primary and leader_of(dcs) == "a"  # still the primary holding its lock


def test_the_core_answers_failed_cycles_with_a_demotion_only_when_the_lease_runs_out() -> None:
    local = PrimaryManager().observe()
    settings = Settings(name="a", scope="batman", ttl=30, loop_wait=10)
    keep = decide(Observation(now=15, cluster=None, local=local, lock_written_at=0, failed_cycles=1), Memory(),
                  settings)
    assert keep.actions == ()
    out = decide(Observation(now=25, cluster=None, local=local, lock_written_at=0, failed_cycles=2), Memory(), settings)
    assert out.actions == (A.Demote("offline"),)
    lost = decide(Observation(now=1, cluster=None, local=local, lock_written_at=None, failed_cycles=1), Memory(),
                  settings)
    assert lost.actions == (A.Demote("offline"),)


class BrokenReads(ClusterDCS):
    """A DCS client whose reads raise something that is not a DCSError (a decoder bug)."""

    broken = False

    def get_cluster(self) -> ClusterView:
        if self.broken:
            raise ValueError("cannot convert float infinity to integer")
        return super().get_cluster()


def test_a_read_that_raises_something_unexpected_does_not_freeze_the_primary() -> None:
    loop, manager, clock, dcs = make_loop()
    broken = BrokenReads(dcs.store, "a")
    loop.dcs = loop.executor.dcs = broken
    assert loop.cycle() is not None and leader_of(dcs) == "a"
    broken.broken = True
    for _ in range(3):
        clock.advance(10)
        assert loop.cycle() is None
    assert ("demote", "offline") in manager.calls  # before its lease (written at 0, ttl 30) ran out
    assert liveness(loop.board.get(), clock.monotonic()) == 200  # not yet 2 x ttl for a replica
    broken.broken = False
    clock.advance(10)
    assert loop.cycle() is not None and loop.failed_cycles == 0
