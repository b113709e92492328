"""The HA loop: observe -> decide -> act -> publish, once per loop_wait.

The loop sleeps on an event that is set by the leader-key watcher, by the end
of the background task, by signals and (later) by operator commands, so a
failover or a finished promote is acted on at once rather than at the next
loop_wait.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

from ..core import actions as A
from ..core.decide import decide
from ..core.lease import fence_at, fence_margin
from ..core.local import DATA_INACCESSIBLE, STATE_STARTING, LocalState, ReplicationState
from ..core.model import ClusterView
from ..core.observation import Decision, FailedAction, Memory, Observation, Settings
from ..dcs import keys
from ..dcs.base import DCSError
from ..messages import render
from .commands import CommandQueue
from .executor import ExecutionResult, Executor, FatalError, LeaseTracker
from .failsafe import FailsafeInbox, call_failsafe
from .leaseguard import LeaseGuard
from .probe import PeerProber
from .status import StatusBoard, WatchdogStatus
from .tasks import TaskRunner, cancel_for_forced_reinit
from .watchdog import Watchdog

log = logging.getLogger(__name__)

MAX_DECISIONS_PER_CYCLE = 6
# After synchronous_standby_names changed, look again this soon to confirm the new
# standbys (every server process has reloaded by then).
SYNC_RECHECK_DELAY = 1.0


class HALoop:
    def __init__(
        self,
        *,
        dcs: Any,
        watch_dcs: Any,
        manager: Any,
        board: StatusBoard,
        settings_provider: Callable[[Optional[ClusterView]], Settings],
        member_extra: Callable[[], Dict[str, Any]],
        clock: Callable[[], float] = time.monotonic,
        prober: Optional[PeerProber] = None,
        commands: Optional[CommandQueue] = None,
        on_reload: Optional[Callable[[], object]] = None,
    ) -> None:
        self.dcs = dcs
        self.watch_dcs = watch_dcs
        self.manager = manager
        self.board = board
        self.clock = clock
        self.settings_provider = settings_provider
        self.member_extra = member_extra
        self.prober = prober or PeerProber()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.tasks = TaskRunner(on_done=self.wake.set)
        self.commands = commands or CommandQueue()
        self.commands.wake = self.wake.set
        self.on_reload = on_reload
        self.guard = LeaseGuard(self._fence, clock, on_fenced=lambda: self.lease.lost())
        self.lease = LeaseTracker(on_change=self._publish_lease)
        self.memory = Memory()
        self.settings: Optional[Settings] = None
        self.cluster: Optional[ClusterView] = None
        self.executor = Executor(
            dcs, manager, self.tasks, self.lease, clock, self._promote_wait, self.commands
        )
        self._watch_target: Optional[ClusterView] = None
        self._watch_lock = threading.Condition()
        self._last_reason: Optional[str] = None
        self._recheck_at: Optional[float] = None
        self.failsafe_inbox = FailsafeInbox()  # POST /failsafe (api/failsafe.py) writes it
        self.failsafe_headers: Dict[str, str] = {}  # e.g. the REST API's basic auth, for POST /failsafe
        self._failsafe_sent_at: Optional[float] = None
        self.executor.on_failsafe = self._publish_failsafe

    def _publish_lease(self, written_at: Optional[float]) -> None:
        ttl = self.settings.ttl if self.settings else 30.0
        self.board.update(lease_until=fence_at(written_at, ttl))  # GET /primary stops with the writes
        self._guard_update()

    def _guard_update(self) -> None:
        """The lease guard's deadline: the lease's fence_at, or later while failsafe mode
        holds; none in pause (nothing is ever stopped then) or without a lease."""
        view = self.board.get()
        ttl = self.settings.ttl if self.settings else 30.0
        candidates = [fence_at(self.lease.written_at, ttl)]
        if view.failsafe_until is not None:
            candidates.append(view.failsafe_until - fence_margin(ttl))
        known = [c for c in candidates if c is not None]
        self.guard.set(None if view.paused or not known else max(known))

    def _fence(self) -> bool:
        fenced = bool(self.manager.fence())
        if fenced:
            try:  # GET /patroni and the peers' probes see it at once, not at the next refresh
                self.board.update(server=self.manager.server_status())
            except Exception as exc:
                log.debug("status refresh after fencing failed: %s", exc)
        return fenced

    def _promote_wait(self) -> float:
        return float(self.settings.loop_wait) if self.settings else 10.0

    # ---- observe ------------------------------------------------------------
    def _read_cluster(self) -> Tuple[Optional[ClusterView], Optional[str]]:
        try:
            cluster = self.dcs.get_cluster()
        except DCSError as exc:
            log.error("Error communicating with DCS: %s", exc)
            return None, str(exc)
        self.board.update(
            cluster=cluster, cluster_read_at=self.clock(), dcs_last_seen=int(time.time())
        )
        if cluster.leader is not None and cluster.leader.name != self.board.get().last_leader:
            self.board.update(last_leader=cluster.leader.name)
        return cluster, None

    def _observe_local(self) -> LocalState:
        try:
            return self.manager.observe()  # type: ignore[no-any-return]
        except Exception as exc:
            # Unknown is not empty: never let a failed look make us bootstrap or clone.
            log.exception("Error communicating with the database server")
            return LocalState(data_dir=DATA_INACCESSIBLE, data_dir_error=str(exc))

    # ---- one cycle ----------------------------------------------------------
    def run_cycle(self) -> Decision:
        if self.commands.take_reload() and self.on_reload is not None:
            try:
                self.on_reload()
            except Exception:
                log.exception("reload failed")
        cluster, dcs_error = self._read_cluster()
        settings = self.settings = self.settings_provider(cluster)
        if cluster is not None and (cluster.leader is None or cluster.leader.name != settings.name):
            self.lease.lost()
        local = self._observe_local()
        self.watchdog.check()
        if self._cancel_for_forced_reinit(cluster, settings, local):
            local = self._observe_local()
        task = self.tasks.status()
        peers = None
        streaming: Optional[Tuple[str, ...]] = None
        divergence = None
        replication: Optional[ReplicationState] = None
        failsafe_answers: Optional[Dict[str, bool]] = None
        failed: Optional[FailedAction] = None
        decision: Optional[Decision] = None
        for _ in range(MAX_DECISIONS_PER_CYCLE):
            obs = Observation(
                now=self.clock(),
                wall_time=time.time(),
                cluster=cluster,
                local=local,
                task=task,
                lock_written_at=self.lease.written_at,
                peers=peers,
                divergence=divergence,
                failed=failed,
                dcs_error=dcs_error,
                commands=self.commands.pending(),
                server_version=self.board.get().server.server_version,
                streaming=streaming,
                replication=replication,
                watchdog=self.watchdog.state(),
                failsafe_answers=failsafe_answers,
                failsafe_leader=self.failsafe_inbox.leader(self.clock(), settings.ttl),
            )
            decision = decide(obs, self.memory, settings)
            self.memory = decision.memory
            probes = [a for a in decision.actions if isinstance(a, A.PROBE_ACTIONS)]
            if probes:
                for probe in probes:
                    if isinstance(probe, A.ProbePeers) and cluster is not None:
                        members = [m for m in cluster.members if m.name in probe.names]
                        peers = self.prober.probe(members)
                        if local.is_primary:
                            streaming = self._streaming()
                    elif isinstance(probe, A.ProbeDivergence):
                        divergence = self._check_divergence(probe.leader)
                    elif isinstance(probe, A.ProbeReplication):
                        replication = self._replication(probe.confirm)
                    elif isinstance(probe, A.CallFailsafe):
                        failsafe_answers = self._call_failsafe(probe.members)
                if peers is None and any(isinstance(p, A.ProbePeers) for p in probes):
                    peers = {}
                continue
            keeps_failsafe = any(isinstance(a, A.FailsafeActive) for a in decision.actions)
            if not keeps_failsafe and any(isinstance(a, (A.Demote, A.ReleaseLock)) for a in decision.actions):
                self._publish_failsafe(None)  # before a demotion, not after it
            result: ExecutionResult = self.executor.execute(decision.actions, cluster)
            if not keeps_failsafe:
                self._publish_failsafe(None)  # after a renewal: the new lease takes over
            if any(isinstance(a, A.Demote) for a in decision.actions):
                self.wake.set()  # look again at once: follow the new leader without waiting loop_wait
            if result.replication_changed:
                self._recheck_at = self.clock() + SYNC_RECHECK_DELAY
            if result.failed is None:
                if result.lock_changed:
                    cluster, dcs_error = self._read_cluster()
                break
            failed = result.failed
            # Something changed under us (lost race, CAS conflict...): look again.
            cluster, dcs_error = self._read_cluster()
            local = self._observe_local()
            if task is not None and task.done:
                task = None
        assert decision is not None
        self._publish_fencing(settings)
        if cluster is not None and cluster.paused and not local.running and local.state != STATE_STARTING:
            self.manager.note_paused_not_running()  # 3.0.2: a database that is down reads `stopped`
        self._log_reason(decision, cluster)
        self._publish_member(cluster)
        self._guard_update()  # a pause may have begun or ended
        self.cluster = cluster
        with self._watch_lock:
            self._watch_target = cluster
            self._watch_lock.notify_all()
        return decision

    @property
    def watchdog(self) -> Watchdog:
        return self.executor.watchdog

    def _publish_fencing(self, settings: Settings) -> None:
        dog = self.watchdog.state()
        status = WatchdogStatus(mode=settings.watchdog_mode, armed=dog.armed, timeout=dog.timeout, error=dog.error)
        self.board.update(failsafe_mode=settings.failsafe_mode, watchdog=status)

    def _call_failsafe(self, members: Tuple[Tuple[str, str], ...]) -> Dict[str, bool]:
        view = self.board.get()
        body = {"name": view.name, "conn_url": view.conn_url, "api_url": view.api_url}
        self._failsafe_sent_at = self.clock()
        answers = call_failsafe(self.prober, members, body, self.failsafe_headers)
        refused = sorted(name for name, ok in answers.items() if not ok)
        if refused:
            log.warning("POST /failsafe not accepted by %s", ", ".join(refused))
        return answers

    def _publish_failsafe(self, confirmed_at: Optional[float]) -> None:
        """FailsafeActive: the members agreed (their promise runs ttl from when they were
        called); None: failsafe is over (demotion, DCS back)."""
        if confirmed_at is None:
            self._failsafe_sent_at = None
            if self.board.get().failsafe_until is not None:
                self.board.update(failsafe_until=None)
                self._guard_update()
            return
        sent = self._failsafe_sent_at if self._failsafe_sent_at is not None else confirmed_at
        ttl = self.settings.ttl if self.settings else 30.0
        self.board.update(failsafe_until=sent + ttl)
        self._guard_update()

    def _replication(self, confirm: Tuple[str, ...]) -> ReplicationState:
        """The local primary's pg_stat_replication / synchronous_standby_names."""
        try:
            return self.manager.replication_state(confirm)  # type: ignore[no-any-return]
        except Exception as exc:
            log.warning("could not read the replication state: %s", exc)
            return ReplicationState(error=str(exc) or type(exc).__name__)

    def _cancel_for_forced_reinit(self, cluster: Optional[ClusterView], settings: Settings,
                                  local: LocalState) -> bool:
        """A forced reinitialize is queued while a task runs: cancel the task (its child
        processes are killed) so the reinitialize starts in this very cycle.  The
        cancelled task's result is dropped: the reinitialize replaces it."""
        running = self.tasks.peek()
        if not cancel_for_forced_reinit(running, cluster, settings.name, local.is_primary,
                                        self.commands.pending(), time.time()):
            return False
        assert running is not None
        log.info("Cancelling %s for a forced reinitialize", running.name)
        if not self.tasks.cancel():
            log.warning("%s did not end after being cancelled", running.name)
            return False
        finished = self.tasks.status()
        log.info("%s ended: %s", running.name, (finished.error or "done") if finished else "done")
        return True

    def _streaming(self) -> Optional[Tuple[str, ...]]:
        """Names of the standbys streaming from the local primary (fresh), None if unknown."""
        try:
            status = self.manager.server_status()
        except Exception as exc:
            log.debug("could not read pg_stat_replication: %s", exc)
            return None
        if not status.query_ok:
            return None
        return tuple(sorted(str(r.get("application_name")) for r in status.replication
                            if isinstance(r, dict) and r.get("state") == "streaming"))

    def _seconds_to_schedule(self) -> Optional[float]:
        """Seconds until the nearest scheduled switchover / restart (wall clock), if any."""
        times = []
        cluster = self.cluster
        if cluster is not None and cluster.failover is not None and cluster.failover.scheduled_at is not None:
            times.append(cluster.failover.scheduled_at.timestamp())
        scheduled = self.commands.scheduled_restart()
        if scheduled is not None:
            times.append(scheduled.schedule.timestamp())
        upcoming = [t - time.time() for t in times]
        upcoming = [t for t in upcoming if t > 0]
        return min(upcoming) if upcoming else None

    def _check_divergence(self, leader: Any) -> Any:
        from ..core.local import Divergence

        try:
            needed = self.manager.check_divergence(leader.conn_url)
        except Exception as exc:
            log.warning("could not check timeline divergence against %s: %s", leader.name, exc)
            needed = None
        return Divergence(leader=leader.name, needed=needed)

    def _log_reason(self, decision: Decision, cluster: Optional[ClusterView]) -> None:
        text = render(decision.reason)
        if cluster is not None and cluster.paused:
            text = "PAUSE: " + text
        if cluster is not None:
            owner = cluster.leader.name if cluster.leader else None
            log.info("Lock owner: %s; I am %s", owner, self.settings.name if self.settings else "?")
        log.info("%s", text)
        self._last_reason = text

    def _publish_member(self, cluster: Optional[ClusterView]) -> None:
        self.board.update(
            last_reason=self._last_reason or "",
            ttl=self.settings.ttl if self.settings else 30,
            loop_wait=self.settings.loop_wait if self.settings else 10,
            # without the DCS the last known pause holds (GET /primary, "pause" in GET /patroni)
            paused=cluster.paused if cluster is not None else self.board.get().paused,
        )
        if cluster is None:
            return
        try:
            data = dict(self.manager.member_data())
            data.update(self.member_extra())
            self.dcs.touch_member(data)
        except DCSError as exc:
            log.warning("could not update my member key: %s", exc)
        except Exception:
            log.exception("could not build my member data")

    # ---- sleeping -----------------------------------------------------------
    def _watcher(self) -> None:
        """Long-poll the leader key and wake the loop when its owner changes,
        or it expires or is deleted.  A renewal (same owner, new version) does
        not wake the loop; the lock holder watches the /failover key instead."""
        while not self.stopping.is_set():
            with self._watch_lock:
                target = self._watch_target
                mine = (
                    target is not None
                    and target.leader is not None
                    and self.settings is not None
                    and target.leader.name == self.settings.name
                )
                if target is None:
                    self._watch_lock.wait(1.0)
                    continue
            timeout = self.settings.loop_wait if self.settings else 10.0
            try:
                if mine:
                    # The holder watches /failover instead: a switchover written straight into
                    # the DCS (patronictl's fallback, a request to another member) acts at once.
                    # (Its raw version, read now: a cleared key "{}" decodes to no failover at all.)
                    store = self.watch_dcs.store
                    snap = store.load()
                    node = snap.nodes.get(keys.FAILOVER)
                    changed = store.watch(keys.FAILOVER, node.version if node else None, snap.index, timeout)
                else:
                    changed = self.watch_dcs.watch_leader(target, timeout)
                if changed and not mine:
                    fresh = self.watch_dcs.get_cluster()
                    if _leader_name(fresh) == _leader_name(target):
                        with self._watch_lock:  # a renewal: keep watching from the new version
                            if self._watch_target is target:
                                self._watch_target = fresh
                        continue
            except Exception as exc:
                log.debug("leader watch failed: %s", exc)
                changed = False
                self.stopping.wait(1.0)
            if changed:
                self.wake.set()
                # Wait until the loop has read the new state before watching again.
                with self._watch_lock:
                    if self._watch_target is target:
                        self._watch_lock.wait(timeout)

    def run(self, stop_requested: Callable[[], bool], on_first_cycle: Optional[Callable[[], object]] = None) -> None:
        watcher = threading.Thread(target=self._watcher, name="leader-watch", daemon=True)
        watcher.start()
        self.guard.start()
        try:
            while not stop_requested():
                started = self.clock()
                self.wake.clear()  # a wake-up during the cycle makes the sleep below return at once
                try:
                    self.run_cycle()
                except FatalError:
                    raise
                except Exception:
                    log.exception("Unexpected exception raised, please report it as a BUG")
                if on_first_cycle is not None:
                    on_first_cycle()
                    on_first_cycle = None
                deadline = started + (float(self.settings.loop_wait) if self.settings else 10.0)
                self.board.update(next_cycle_at=deadline)
                remaining = deadline - self.clock()
                due = self._seconds_to_schedule()
                if due is not None and remaining > 0:
                    remaining = min(remaining, due + 0.05)  # a scheduled action fires on time
                if self._recheck_at is not None:
                    remaining = min(remaining, max(0.0, self._recheck_at - self.clock()))
                    self._recheck_at = None
                    if remaining <= 0:
                        continue
                if remaining <= 0:
                    log.info("Loop time exceeded, rescheduling immediately.")
                    continue
                self.wake.wait(remaining)
        finally:
            self.guard.stop()
            self.stopping.set()
            with self._watch_lock:
                self._watch_lock.notify_all()


def _leader_name(cluster: Optional[ClusterView]) -> Optional[str]:
    return cluster.leader.name if cluster is not None and cluster.leader is not None else None
