"""The HA loop: observe -> decide -> act -> publish, once per loop_wait.

The loop sleeps on an event set by the leader-key watcher (watcher.py), the end of the
background task, signals and operator commands, so a failover or a finished promote is
acted on at once rather than at the next loop_wait.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional, Tuple

from ..core import actions as A
from ..core.decide import decide
from ..core.lease import fence_at, fence_margin
from ..core.local import DATA_INACCESSIBLE, STATE_STARTING, LocalState, ReplicationState
from ..core.model import ClusterView
from ..core.observation import Decision, FailedAction, Memory, Observation, Settings
from ..dcs.base import DCSError
from ..messages import render
from . import local_probes
from .commands import CommandQueue, seconds_to_schedule
from .executor import ExecutionResult, Executor, FatalError, LeaseTracker
from .failsafe import FailsafeInbox, call_failsafe
from .leaseguard import LeaseGuard
from .ports import Clock, ClusterDCSPort, ManagerPort, ProberPort, SystemClock, TaskPort
from .probe import PeerProber
from .status import StatusBoard, WatchdogStatus
from .tasks import TaskRunner
from .watchdog import Watchdog
from .watcher import LeaderWatcher

log = logging.getLogger(__name__)

MAX_DECISIONS_PER_CYCLE = 6
# Actions after which the lock holder's key says it leads, and actions that leave the server
# as it was (after any other, the board is refreshed before the member key; Promote's task
# publishes the server itself as soon as it is out of recovery).
_ANNOUNCES_LEADERSHIP = (A.AcquireLock, A.TakeLock)
_KEEPS_SERVER = (A.RenewLock, A.AcquireLock, A.TakeLock, A.WriteInitialize, A.WriteConfig, A.ClearFailover,
                 A.WriteHistory, A.WriteSync, A.DeleteSync, A.RejectCommand, A.Promote,
                 A.WakeWalReceiver) + A.WATCHDOG_ACTIONS
# After synchronous_standby_names changed, look again this soon to confirm the new
# standbys (every server process has reloaded by then).
SYNC_RECHECK_DELAY = 1.0
# A planned stop whose cycles keep failing ends the loop anyway after this many.
MAX_FAILED_STOPPING_CYCLES = 3

DecideFn = Callable[[Observation, Memory, Settings], Decision]


class HALoop:
    def __init__(
        self,
        *,
        dcs: ClusterDCSPort,
        watch_dcs: ClusterDCSPort,
        manager: ManagerPort,
        board: StatusBoard,
        settings_provider: Callable[[Optional[ClusterView]], Settings],
        member_extra: Callable[[], Dict[str, Any]],
        clock: Optional[Clock] = None,
        prober: Optional[ProberPort] = None,
        commands: Optional[CommandQueue] = None,
        on_reload: Optional[Callable[[], object]] = None,
        tasks: Optional[TaskPort] = None,
        decide_fn: DecideFn = decide,
    ) -> None:
        """`tasks`: the background task runner (default: a TaskRunner waking this loop when a task
        ends; whoever passes another one wakes the loop itself). `decide_fn`: the decision core."""
        self.dcs = dcs
        self.watch_dcs = watch_dcs
        self.manager = manager
        self.board = board
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.decide = decide_fn
        self.settings_provider = settings_provider
        self.member_extra = member_extra
        self.prober: ProberPort = prober if prober is not None else PeerProber()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.tasks: TaskPort = tasks if tasks is not None else TaskRunner(on_done=self.wake.set)
        self.commands = commands or CommandQueue()
        self.commands.wake = self.wake.set
        self.on_reload = on_reload
        self.guard = LeaseGuard(self._fence, self.clock.monotonic, on_fenced=self._after_fence)
        self.lease = LeaseTracker(on_change=self._publish_lease)
        self.memory = Memory()
        self.settings: Optional[Settings] = None
        self.cluster: Optional[ClusterView] = None
        self.executor = Executor(dcs, manager, self.tasks, self.lease, self.clock, self.loop_wait, self.commands)
        self.watcher = LeaderWatcher(watch_dcs, self.wake.set, self.stopping,
                                     lambda: self.settings.name if self.settings else None,
                                     self.loop_wait, self.clock.monotonic)
        self._cycle_ended_at: Optional[float] = None  # the watcher's view is used only if read after
        self._last_reason: Optional[str] = None
        self._recheck_at: Optional[float] = None
        self.failed_cycles = 0  # HA cycles in a row that raised
        self.shutdown_requested = False  # the planned stop (SIGTERM): decide() takes it from here
        self.exited = False  # decide() said Exit: the planned stop is complete
        # How the last cycle's final decision was executed (None: it only probed).
        self.last_result: Optional[ExecutionResult] = None
        self.failsafe_inbox = FailsafeInbox()  # POST /failsafe (api/failsafe.py) writes it
        self.failsafe_headers: Dict[str, str] = {}  # e.g. the REST API's basic auth, for POST /failsafe
        self._failsafe_sent_at: Optional[float] = None
        self._dcs_failing = False  # the last read of the DCS failed
        self.executor.on_failsafe = self._publish_failsafe
        self.executor.on_promoted = self._refresh_server  # GET /primary answers as soon as it can

    def _publish_lease(self, written_at: Optional[float]) -> None:
        ttl = self.settings.ttl if self.settings else 30.0
        self.board.update(lease_until=fence_at(written_at, ttl))  # GET /primary stops with the writes
        self._guard_update()

    def _guard_update(self) -> None:
        """The lease guard's deadline: the lease's fence_at, or later while failsafe mode holds
        (earlier if the watchdog would fire first); none in pause or without a lease."""
        view = self.board.get()
        ttl = self.settings.ttl if self.settings else 30.0
        # without the DCS an armed watchdog is no longer pinged and fires `timeout` after its
        # ping (before the renewal, after the failsafe call): fence first (and close it then)
        dog = self.watchdog.timeout if self.watchdog.armed and self._dcs_failing else None
        cut = ttl - dog if dog is not None and dog < ttl else 0.0
        candidates = [fence_at(self.lease.written_at, ttl - cut)]
        if view.failsafe_until is not None:
            candidates.append(view.failsafe_until - cut - fence_margin(ttl))
        known = [c for c in candidates if c is not None]
        self.guard.set(None if view.paused or not known else max(known))

    def _after_fence(self) -> None:  # no writes now: no lease, and no watchdog reset needed
        self.lease.lost()
        self.watchdog.disarm()

    def _fence(self) -> bool:
        fenced = bool(self.manager.fence())
        if fenced:  # GET /patroni and the peers' probes see it at once, not at the next refresh
            self._refresh_server()
        return fenced

    # ---- observe ------------------------------------------------------------
    def _read_cluster(self, fresh: Optional[ClusterView] = None) -> Tuple[Optional[ClusterView], Optional[str]]:
        """The cluster from the DCS, or `fresh` (just read by the watcher) when given."""
        try:
            cluster = fresh if fresh is not None else self.dcs.get_cluster()
        except DCSError as exc:
            log.error("Error communicating with DCS: %s", exc)
            self._dcs_failing = True
            return None, str(exc)
        self._dcs_failing = False
        self.board.update(
            cluster=cluster, cluster_read_at=self.clock.monotonic(), dcs_last_seen=int(self.clock.wall())
        )
        if cluster.leader is not None and cluster.leader.name != self.board.get().last_leader:
            self.board.update(last_leader=cluster.leader.name)
        return cluster, None

    def _refresh_server(self) -> None:
        """Publish the server's state of this moment on the board (one bounded query),
        so that no DCS key announces a role or state the REST API does not show yet."""
        try:
            self.board.publish_server(local_probes.server_status(self.manager, self.settings), self.clock.monotonic())
        except Exception as exc:
            log.debug("could not refresh the server status: %s", exc)

    def _observe_local(self, cluster: Optional[ClusterView] = None) -> LocalState:
        try:
            return local_probes.observe(self.manager, self.settings, cluster)
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
        cluster, dcs_error = self._read_cluster(self.watcher.take_fresh(self._cycle_ended_at))
        settings = self.settings = self.settings_provider(cluster)
        if cluster is not None and (cluster.leader is None or cluster.leader.name != settings.name):
            self.lease.lost()
        local = self._observe_local(cluster)
        self.watchdog.check()
        task = self.tasks.status()
        peers = None
        streaming: Optional[Tuple[str, ...]] = None
        divergence = None
        replication: Optional[ReplicationState] = None
        failsafe_answers: Optional[Dict[str, bool]] = None
        failed: Optional[FailedAction] = None
        decision: Optional[Decision] = None
        if (changed_server := task is not None and task.done):  # a promote, start, rewind... just ended:
            self._refresh_server()  # the REST API shows it now, not after this cycle's DCS round trips
        for _ in range(MAX_DECISIONS_PER_CYCLE):
            obs = Observation(
                now=self.clock.monotonic(),
                wall_time=self.clock.wall(),
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
                stopping=self.shutdown_requested,
                watchdog=self.watchdog.state(),
                failsafe_answers=failsafe_answers,
                failsafe_leader=self.failsafe_inbox.leader(self.clock.monotonic(), settings.ttl),
            )
            decision = self.decide(obs, self.memory, settings)
            self.memory = decision.memory
            self.last_result = None
            probes = [a for a in decision.actions if isinstance(a, A.PROBE_ACTIONS)]
            if probes:
                for probe in probes:
                    if isinstance(probe, A.ProbePeers) and cluster is not None:
                        members = [m for m in cluster.members if m.name in probe.names]
                        peers = self.prober.probe(members)
                        if local.is_primary:
                            streaming = local_probes.streaming(self.manager)
                    elif isinstance(probe, A.ProbeDivergence):
                        divergence = local_probes.divergence(self.manager, probe.leader)
                    elif isinstance(probe, A.ProbeReplication):
                        replication = local_probes.replication(self.manager, probe.confirm)
                    elif isinstance(probe, A.CallFailsafe):
                        failsafe_answers = self._call_failsafe(probe.members)
                if peers is None and any(isinstance(p, A.ProbePeers) for p in probes):
                    peers = {}
                continue
            keeps_failsafe = any(isinstance(a, A.FailsafeActive) for a in decision.actions)
            if not keeps_failsafe and any(isinstance(a, (A.Demote, A.ReleaseLock)) for a in decision.actions):
                self._publish_failsafe(None)  # before a demotion, not after it
            if any(isinstance(a, _ANNOUNCES_LEADERSHIP) for a in decision.actions) and not any(
                    isinstance(a, A.Promote) for a in decision.actions):  # promoted: on_promoted refreshes
                self._refresh_server()  # the REST API says what the leader key will announce
            result: ExecutionResult = self.executor.execute(decision.actions, cluster)
            changed_server = changed_server or any(not isinstance(a, _KEEPS_SERVER) for a in decision.actions)
            self.last_result = result
            if not keeps_failsafe:
                self._publish_failsafe(None)  # after a renewal: the new lease takes over
            if any(isinstance(a, A.Demote) for a in decision.actions):
                self.wake.set()  # look again at once: follow the new leader without waiting loop_wait
            if result.replication_changed:
                self._look_again(SYNC_RECHECK_DELAY)
            if result.recheck_after is not None:
                self._look_again(result.recheck_after)
            if result.exit:
                self.exited = True
            if result.task_cancelled and result.failed is None:
                local, task, failed = self._observe_local(cluster), None, None  # decide again without it
                continue
            if result.failed is None:
                if result.lock_changed:
                    cluster, dcs_error = self._read_cluster()
                break
            failed = result.failed
            # Something changed under us (lost race, CAS conflict...): look again.
            cluster, dcs_error = self._read_cluster()
            local = self._observe_local(cluster)
            if task is not None and task.done:
                task = None
        assert decision is not None
        self._publish_fencing(settings)
        if cluster is not None and cluster.paused and not local.running and local.state != STATE_STARTING:
            self.manager.note_paused_not_running()  # 3.0.2: a database that is down reads `stopped`
        self._log_reason(decision, cluster)
        if changed_server:
            self._refresh_server()  # before the member key announces the new role or state
        self._publish_member(cluster)
        self._guard_update()  # a pause may have begun or ended
        self.cluster = cluster
        self.watcher.seen(cluster)
        return decision

    def _look_again(self, seconds: float) -> None:
        at = self.clock.monotonic() + seconds
        self._recheck_at = at if self._recheck_at is None else min(self._recheck_at, at)

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
        self._failsafe_sent_at = self.clock.monotonic()
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

    def _log_reason(self, decision: Decision, cluster: Optional[ClusterView]) -> None:
        note = decision.reason.args.get("note")
        if note:  # a sentence 3.0.2 logs before the cycle result (e.g. "Primary crashed. Failing over.")
            log.info("%s", note)
        text = render(decision.reason)
        if cluster is not None and cluster.paused:
            text = "PAUSE: " + text
        if cluster is not None:
            owner = cluster.leader.name if cluster.leader else None
            log.info("Lock owner: %s; I am %s", owner, self.settings.name if self.settings else "?")
        args = decision.reason.args
        if args.get("alert"):
            log.warning("%s", args["alert"])
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
            if self.executor.nosync:  # handing synchronous standby duty over (PublishNoSync)
                data["tags"] = dict(data.get("tags") or {}, nosync=True)
            self.dcs.touch_member(data)
        except DCSError as exc:
            log.warning("could not update my member key: %s", exc)
        except Exception:
            log.exception("could not build my member data")

    # ---- a cycle that never takes the daemon down ---------------------------------
    def cycle(self) -> Optional[Decision]:
        """One HA cycle.  Any exception (but the core's Fatal) is logged and counted, and
        the core decides once more on what is left (the local server, the lease, the
        number of failed cycles in a row), so a primary whose cycles keep failing
        demotes before its lease runs out instead of the daemon exiting.  Only a
        completed cycle is published as such (`next_cycle_at`, read by /liveness)."""
        started = self.clock.monotonic()
        try:
            decision = self.run_cycle()
        except FatalError:
            raise
        except Exception:
            self.failed_cycles += 1
            log.exception("Unexpected exception raised, please report it as a BUG (%d failed HA cycle(s) in a row)",
                          self.failed_cycles)
            self._after_failed_cycle()
            return None
        finally:
            self._cycle_ended_at = self.clock.monotonic()
        self.failed_cycles = 0
        self.board.update(next_cycle_at=started + self.loop_wait())
        return decision

    def _after_failed_cycle(self) -> None:
        try:
            settings = self.settings if self.settings is not None else self.settings_provider(None)
            obs = Observation(
                now=self.clock.monotonic(),
                wall_time=self.clock.wall(),
                cluster=None,
                local=self._observe_local(),
                lock_written_at=self.lease.written_at,
                failed_cycles=self.failed_cycles,
            )
            decision = self.decide(obs, self.memory, settings)
            self.memory = decision.memory
            actions = tuple(a for a in decision.actions if not isinstance(a, A.PROBE_ACTIONS))
            if actions:
                self.executor.execute(actions, None)
            self._log_reason(decision, None)
        except FatalError:
            raise
        except Exception:
            log.exception("could not act on the failed HA cycle")

    def loop_wait(self) -> float:
        return float(self.settings.loop_wait) if self.settings else 10.0

    def sleep_seconds(self, started: float) -> Tuple[float, bool]:
        """(seconds to sleep after a cycle started at `started` (<= 0: none), whether the cycle asked for it)."""
        remaining = started + self.loop_wait() - self.clock.monotonic()
        try:
            due = seconds_to_schedule(self.cluster, self.commands, self.clock.wall())
        except Exception:  # a value that cannot be a time (the decoders should catch it first)
            log.exception("could not compute the time of the next scheduled action")
            due = None
        if due is not None and remaining > 0:
            remaining = min(remaining, due + 0.05)  # a scheduled action fires on time
        early = self._recheck_at is not None
        if self._recheck_at is not None:
            remaining = min(remaining, max(0.0, self._recheck_at - self.clock.monotonic()))
            self._recheck_at = None
        return remaining, early

    def run(self, stop_requested: Callable[[], bool], on_first_cycle: Optional[Callable[[], object]] = None) -> None:
        watcher = threading.Thread(target=self.watcher.run, name="leader-watch", daemon=True)
        watcher.start()
        # /liveness counts from the start: a first cycle that never completes fails it too.
        self.board.update(next_cycle_at=self.clock.monotonic())
        self.guard.start()
        try:
            while not self.exited:
                if stop_requested() and not self.shutdown_requested:
                    log.info("Shutting down: the next cycles hand over, stop the server and release the lock")
                    self.shutdown_requested = True
                started = self.clock.monotonic()
                self.wake.clear()  # a wake-up during the cycle makes the sleep below return at once
                self.cycle()
                if on_first_cycle is not None:
                    on_first_cycle()
                    on_first_cycle = None
                if self.exited:
                    break
                if self.shutdown_requested and self.failed_cycles >= MAX_FAILED_STOPPING_CYCLES:
                    log.error("Shutting down without a completed cycle after %d failed cycles", self.failed_cycles)
                    break
                try:
                    remaining, early = self.sleep_seconds(started)
                except Exception:
                    log.exception("could not compute the next cycle's time")
                    remaining, early = self.loop_wait(), False
                if remaining <= 0 and self.failed_cycles:
                    remaining = 1.0  # a failing cycle is not retried in a busy loop
                elif remaining <= 0:
                    if not early:
                        log.info("Loop time exceeded, rescheduling immediately.")
                    continue
                self.wake.wait(remaining)
        finally:
            self.guard.stop()
            self.stopping.set()
            self.watcher.stop()

