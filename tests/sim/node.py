"""One simulated node: the REAL runtime (qhb_patroni.runtime's HALoop and Executor)
with the fake database behind the manager port, the memory DCS behind the DCS port,
a simulated background task runner and prober, and the world's manual clock.

Only the world around the runtime is simulated here: what a database server does
when the manager is asked something (FakeDB), how long a background task takes, and
what a peer answers on GET /patroni.  Every decision and every action's order and
failure handling is the runtime's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence

from qhb_patroni.core.local import ReplicationState, TaskStatus
from qhb_patroni.core.model import ClusterView, Member
from qhb_patroni.core.observation import Decision, Memory, Observation, PeerStatus, Settings
from qhb_patroni.core.roles import current_role
from qhb_patroni.core.slots import slot_name_for
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.runtime.executor import FatalError
from qhb_patroni.runtime.loop import HALoop
from qhb_patroni.runtime.status import ServerStatus, StatusBoard, StatusView
from qhb_patroni.runtime.watchdog import MODE_OFF, Watchdog, WatchdogSettings

from .fakedb import FakeDB, port_of
from .fencing import SimWatchdogDevice

if TYPE_CHECKING:
    from .world import World

BASE = "/service/sim"
# Simulated seconds a background task takes (kind -> seconds).
TASK_SECONDS = {"Bootstrap": 5.0, "Clone": 8.0, "Promote": 1.0, "Rewind": 4.0, "CrashRecovery": 3.0,
                "Restart": 3.0, "Reinitialize": 8.0}


def conn_url(name: str) -> str:
    return f"postgres://127.0.0.1:{port_of(name)}/qhb"


def name_of(url: Optional[str]) -> Optional[str]:
    """The node a connection URL points at (the inverse of conn_url)."""
    if not url:
        return None
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    return f"n{port - 6000}"


class SimManager:
    """The manager port in front of a FakeDB: answers as the real manager would."""

    def __init__(self, node: SimNode) -> None:
        self.node = node

    @property
    def db(self) -> FakeDB:
        return self.node.db

    def _slot(self, upstream: Optional[str]) -> Optional[str]:
        sc = self.node.settings.standby  # following a standby cluster's remote: its slot, if any
        if sc is not None and sc.remote is not None and upstream == name_of(sc.remote.conn_url):
            return sc.primary_slot_name
        return slot_name_for(self.node.name) if self.node.settings.use_slots else None

    def _source(self, url: Optional[str]) -> Optional[SimNode]:
        node = self.node.world.server_at(name_of(url))
        return node if node is not None and node.up else None

    # ---- looking ------------------------------------------------------------------
    def observe(self, deadline: Optional[float] = None, cluster_timeline: Optional[int] = None) -> Any:
        return self.db.observe()

    def stopped_position(self) -> Optional[int]:
        return self.db.observe().lsn  # type: ignore[no-any-return]

    def server_status(self, deadline: Optional[float] = None) -> ServerStatus:
        db, world = self.db, self.node.world
        rows: List[Dict[str, Any]] = [{"application_name": n.name, "state": "streaming"}
                                      for n in world.streaming_from(self.node)]
        return ServerStatus(state=db.state, role="master" if db.writable else "replica", query_ok=db.running,
                            in_recovery=db.in_recovery if db.running else None, replication=rows)

    def member_data(self) -> Dict[str, Any]:
        db = self.db
        return {
            "conn_url": conn_url(self.node.name),
            "state": db.state if db.has_data else "stopped",
            "role": "master" if db.writable else "replica",
            "xlog_location": db.lsn,
            "timeline": db.timeline,
        }

    def replication_state(self, confirm: Sequence[str] = ()) -> ReplicationState:
        return self.node.world.probe_replication(self.node, tuple(confirm))

    def check_divergence(self, leader_conn_url: str) -> Optional[bool]:
        name = name_of(leader_conn_url) or ""
        return self.node.world.probe_divergence(self.node, Member(name=name, conn_url=leader_conn_url)).needed

    def note_paused_not_running(self) -> None:
        pass

    def timeline_history(self) -> List[List[Any]]:
        return [[i + 1, lsn, "no recovery target specified"] for i, (_, lsn) in enumerate(self.db.history[1:])]

    # ---- background tasks (called when the simulated task ends) ------------------------
    def bootstrap(self) -> bool:
        self.db.bootstrap(self.node.world.new_sysid())
        self.node.fresh_bootstrap = True
        return True

    def clone(self, source_conn_url: Optional[str], leader_conn_url: Optional[str]) -> bool:
        src = self._source(source_conn_url)
        if src is None or not src.db.running or not src.db.has_data:
            return False
        self.db.clone_from(src.db, name_of(leader_conn_url), self._slot(name_of(leader_conn_url)))
        return True

    def promote(self, wait_seconds: float, on_promoted: Optional[Callable[[], None]] = None,
                slots: Sequence[str] = ()) -> bool:
        return self.db.promote()

    def rewind(self, leader_conn_url: str) -> bool:
        src = self._source(leader_conn_url)
        self.db.stop()
        if src is None or not src.db.writable:
            return False
        self.db.rewind_to(src.db)
        self.db.start_replica(src.name, self._slot(src.name))
        return True

    def crash_recovery(self) -> bool:
        world = self.node.world
        if world.trip_rate and not self.node.tripped and world.sim_rng.random() < world.trip_rate:
            # The shell trips before single-user mode runs (fault #82 of chaos seed 22: a
            # postmaster that exited under it); transient: the next attempt gets through.
            self.node.tripped = True
            world.trips += 1
            raise ProcessLookupError(3, "No such process")
        self.node.tripped = False
        if self.db.shutting_down:
            self.db.stop()  # a fast stop first: it waits for the shutdown under way
        self.db.recover_in_single_user_mode()
        return self.db.has_data

    def restart(self, mode: str = "fast", timeout: Optional[float] = None) -> bool:
        writable_before = self.db.writable
        self.db.stop()
        if writable_before:
            return False  # a restarted primary comes back read-only; the loop follows up
        self.db.start_replica(self.db.following, self._slot(self.db.following))
        return True

    # ---- immediate actions ------------------------------------------------------------
    def start(self, follow_conn_url: Optional[str] = None, read_only: bool = False) -> bool:
        upstream = name_of(follow_conn_url)
        self.db.start_replica(upstream, self._slot(upstream) if upstream else None)
        return True

    def stop(self, mode: str = "fast", timeout: Optional[float] = None,
             on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        self.db.stop()
        if on_safepoint is not None:
            on_safepoint()
        return True

    def follow(self, leader_conn_url: Optional[str]) -> bool:
        if not self.db.has_data:
            return False
        self.db.start_replica(name_of(leader_conn_url), self._slot(name_of(leader_conn_url)))
        return True

    def demote(self, mode: str, leader_conn_url: Optional[str],
               on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        self.db.stop()
        if on_safepoint is not None:
            on_safepoint()
        upstream = name_of(leader_conn_url) if mode != "offline" else None
        self.db.start_replica(upstream, self._slot(upstream))
        return True

    def set_synchronous_standby_names(self, value: Optional[str]) -> bool:
        changed = self.db.sync_names != (value or "")
        self.db.sync_names = value or ""
        return changed

    def wake_wal_receiver(self) -> bool:
        """The simulated standby has no WAL receiver of its own (observe() leaves
        wal_receiver unknown), so the core never asks for this; a reload changes nothing."""
        return bool(self.db.running)

    def fence(self) -> bool:
        """The lease guard: stop acknowledging writes at once (with the control data
        modelled, the postmaster then takes a while to finish its shutdown)."""
        was_writable = self.db.writable
        if self.db.control_data:
            self.db.begin_shutdown(self.node.world.clock() + self.node.world.shutdown_seconds())
        else:
            self.db.stop()
        return was_writable

    def mark_demoted(self) -> None:
        pass  # the fake server's role follows from whether it runs and is writable

    def check_clone_source(self, source_conn_url: Optional[str]) -> None:
        src = self._source(source_conn_url)
        if src is None or not src.db.running:
            raise RuntimeError(f"nothing answers at {source_conn_url}")

    def remove_data_directory(self) -> None:
        self.db.remove_data()

    def manage_slots(self, drop: Sequence[str], create: Sequence[Any], advance: Sequence[Any],
                     feedback: Optional[bool], readiness_leader_url: Optional[str] = None) -> None:
        if self.db.writable:  # physical slots on the primary; the fake server keeps no others
            kept = set(self.db.slots) - set(drop)
            self.db.slots = tuple(sorted(kept | {s.name for s in create if s.type == "physical"}))

    def copy_logical_slots(self, names: Sequence[str], leader_conn_url: Optional[str]) -> bool:
        return True  # the fake server has no logical slots

    def checkpoint(self) -> None:
        pass


@dataclass
class SimTask:
    kind: str
    name: str
    ends_at: float
    work: Callable[[], bool]


class SimTasks:
    """The task port: one background task that takes simulated time; `tick()` (called
    by the world every simulated second) runs its work when the time has come."""

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.task: Optional[SimTask] = None
        self.finished: Optional[TaskStatus] = None

    def start(self, kind: str, name: str, work: Callable[[], bool]) -> bool:
        if self.task is not None:
            return False
        if kind == "CrashRecovery" and self.node.db.shutting_down:
            self.node.world.recoveries_while_alive += 1  # the postmaster has not gone yet
        self.finished = None
        self.task = SimTask(kind, name, self.node.world.clock() + TASK_SECONDS[kind], work)
        return True

    def tick(self) -> None:
        t = self.task
        if t is None or self.node.world.clock() < t.ends_at:
            return
        self.task = None
        try:
            ok, error = bool(t.work()), None
        except Exception as exc:  # the runner reports a failed task, it never raises
            ok, error = False, str(exc)
        self.finished = TaskStatus(kind=t.kind, name=t.name, done=True, ok=ok,
                                   error=None if ok else error or f"{t.name} failed")
        self.node.wake = True

    def status(self) -> Optional[TaskStatus]:
        if self.task is not None:
            return TaskStatus(kind=self.task.kind, name=self.task.name)
        report, self.finished = self.finished, None
        return report

    def peek(self) -> Optional[TaskStatus]:
        if self.task is not None:
            return TaskStatus(kind=self.task.kind, name=self.task.name)
        return self.finished

    def cancel(self, timeout: float = 0.0) -> bool:
        t = self.task
        if t is None:
            return False
        self.task = None
        self.finished = TaskStatus(kind=t.kind, name=t.name, done=True, ok=False, error=f"{t.name} cancelled",
                                   cancelled=True)
        return True

    def join(self, timeout: Optional[float] = None) -> None:
        pass


class SimProber:
    """The prober port: what each peer would answer on GET /patroni right now, and
    POST /failsafe from `caller` (None: no answer)."""

    timeout = 2.0

    def __init__(self, world: World, caller: str) -> None:
        self.world = world
        self.caller = caller

    def probe(self, members: Sequence[Member]) -> Dict[str, Optional[PeerStatus]]:
        return self.world.probe_peers(tuple(m.name for m in members))

    def post_json(self, url: str, doc: Mapping[str, Any], headers: Optional[Mapping[str, str]] = None) -> Optional[int]:
        return self.world.post_json(self.caller, url, doc, headers)


class SimNode:
    def __init__(self, world: World, name: str, settings: Settings) -> None:
        self.world = world
        self.name = name
        self.settings = settings
        self.db = FakeDB(name)
        self.dcs = ClusterDCS(world.server.client(name, base=BASE), name, ttl=settings.ttl)
        self.up = True
        self.next_cycle = world.clock()
        self.wake = False
        self.seen_leader: Optional[Any] = None
        self.fatal: Optional[str] = None
        # A freshly bootstrapped server is writable before the lock exists (nobody
        # else has this cluster's data yet); exempt until it first holds the lock.
        self.fresh_bootstrap = False
        self.last_decision: Optional[Decision] = None
        self.stalled_until: Optional[float] = None  # the daemon is stopped (SIGSTOP), its database runs on
        self.tripped = False  # the last crash recovery tripped (see SimManager.crash_recovery)
        self.watchdog_device: Optional[SimWatchdogDevice] = None  # the one the current daemon opened
        self.loop = self._new_loop()

    def _new_loop(self) -> HALoop:
        """The daemon's runtime as it starts: fresh memory, no lease, no task."""
        self.tasks = SimTasks(self)
        board = StatusBoard(StatusView(name=self.name, scope=self.settings.scope, version="3.0.2",
                                       api_url=self.api_url, conn_url=conn_url(self.name)))
        loop = HALoop(dcs=self.dcs, watch_dcs=self.dcs, manager=SimManager(self), board=board,
                      settings_provider=self._settings, member_extra=lambda: {"api_url": self.api_url},
                      clock=self.world.clock, prober=SimProber(self.world, self.name), tasks=self.tasks,
                      decide_fn=self._decide)
        self.watchdog_device = None
        if self.settings.watchdog_mode != MODE_OFF:  # as the daemon does, with the simulated device
            dog = WatchdogSettings(mode=self.settings.watchdog_mode, device="/dev/watchdog",
                                   safety_margin=self.settings.watchdog_safety_margin)
            loop.executor.watchdog = Watchdog(dog, opener=lambda path: SimWatchdogDevice(self, path))
        return loop

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{port_of(self.name) + 2000}/patroni"

    def _settings(self, cluster: Optional[ClusterView]) -> Settings:
        return self.settings

    def _decide(self, obs: Observation, memory: Memory, settings: Settings) -> Decision:
        lead = obs.cluster.leader if obs.cluster is not None else None
        if self.db.shutting_down and lead is not None and lead.name != self.name:
            self.world.unanswering_looks += 1  # the window of chaos seed 22, fault #82
        decision = self.world.decide(obs, memory, settings)
        self.world.log(self.name, current_role(obs), decision)
        return decision

    @property
    def memory(self) -> Memory:
        return self.loop.memory

    @property
    def lock_written_at(self) -> Optional[float]:
        return self.loop.lease.written_at

    # ---- lifecycle ---------------------------------------------------------------
    @property
    def responsive(self) -> bool:
        """The daemon runs (not down, not stalled)."""
        return self.up and self.stalled_until is None

    def crash(self) -> None:
        self.up = False
        self.stalled_until = None
        self.db.stop(crashed=True)
        self.loop.lease.lost()

    def shutdown(self) -> None:
        """SIGTERM (5.15): the runtime's next cycles hand over, stop the server, release
        the lock and exit (decided by the core); the node is down once it exited."""
        self.loop.shutdown_requested = True
        self.wake = True

    def restart(self) -> None:
        self.up = True
        self.loop = self._new_loop()
        self.next_cycle = self.world.clock()

    def holds_lease(self, now: float) -> bool:
        if self.lock_written_at is not None or not self.db.writable:
            self.fresh_bootstrap = False
        return self.lock_written_at is not None and now < self.lock_written_at + self.settings.ttl

    # ---- one HA cycle, as HALoop.run schedules it ----------------------------------------
    def cycle(self) -> None:
        now = self.world.clock()
        self.wake = False
        self.loop.wake.clear()
        self.last_decision = None
        try:
            self.last_decision = self.loop.run_cycle()
        except FatalError as exc:
            self.fatal = str(exc)
            self.crash()
            return
        if self.loop.exited:
            self.up = False
            self.world.exits += 1
            return
        remaining, _ = self.loop.sleep_seconds(now)
        self.next_cycle = now + max(remaining, 0.0)
        if self.loop.wake.is_set():  # the runtime asked to look again at once (after a demotion)
            self.next_cycle = now
        self.seen_leader = self.world.leader_key()

    def tick(self) -> None:
        self.tasks.tick()
