"""The HA loop: observe -> decide -> act -> publish, once per loop_wait.

The loop sleeps on an event that is set by the leader-key watcher, by the end
of the background task, by signals and (later) by operator commands, so a
failover or a finished promote is acted on at once rather than at the next
loop_wait.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, Optional, Tuple

from ..core import actions as A
from ..core.decide import decide
from ..core.local import DATA_INACCESSIBLE, STATE_STARTING, Divergence, LocalState, ReplicationState
from ..core.model import ClusterView, Member
from ..core.observation import Decision, FailedAction, Memory, Observation, Settings
from ..dcs.base import DCSError
from ..messages import render
from .commands import CommandQueue
from .executor import ExecutionResult, Executor, FatalError, LeaseTracker
from .ports import Clock, ClusterDCSPort, ManagerPort, ProberPort, SystemClock, TaskPort
from .probe import PeerProber
from .status import StatusBoard
from .tasks import TaskRunner

log = logging.getLogger(__name__)

MAX_DECISIONS_PER_CYCLE = 6
# Actions after which the lock holder's key says it leads, and actions that leave the
# server as it was (after any other, the board is refreshed before the member key).
_ANNOUNCES_LEADERSHIP = (A.AcquireLock, A.TakeLock)
_KEEPS_SERVER = (A.RenewLock, A.WriteInitialize, A.WriteConfig, A.ClearFailover, A.WriteHistory,
                 A.WriteSync, A.DeleteSync, A.RejectCommand)
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
        """`tasks`: the background task runner (default: a TaskRunner that wakes this
        loop when a task ends; whoever passes another one wakes the loop itself).
        `decide_fn`: the decision core (tests and the simulation may wrap it)."""
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
        self.lease = LeaseTracker(on_change=self._publish_lease)
        self.memory = Memory()
        self.settings: Optional[Settings] = None
        self.cluster: Optional[ClusterView] = None
        self.executor = Executor(
            dcs, manager, self.tasks, self.lease, self.clock, self._promote_wait, self.commands
        )
        self._watch_target: Optional[ClusterView] = None
        self._watch_lock = threading.Condition()
        self._last_reason: Optional[str] = None
        self._recheck_at: Optional[float] = None
        self.failed_cycles = 0  # HA cycles in a row that raised
        self.shutdown_requested = False  # the planned stop (SIGTERM): decide() takes it from here
        self.exited = False  # decide() said Exit: the planned stop is complete
        # How the last cycle's final decision was executed (None: it only probed).
        self.last_result: Optional[ExecutionResult] = None

    def _publish_lease(self, written_at: Optional[float]) -> None:
        ttl = self.settings.ttl if self.settings else 30.0
        self.board.update(lease_until=None if written_at is None else written_at + ttl)

    def _promote_wait(self) -> float:
        return self.loop_wait()

    # ---- observe ------------------------------------------------------------
    def _read_cluster(self) -> Tuple[Optional[ClusterView], Optional[str]]:
        try:
            cluster = self.dcs.get_cluster()
        except DCSError as exc:
            log.error("Error communicating with DCS: %s", exc)
            return None, str(exc)
        self.board.update(
            cluster=cluster, cluster_read_at=self.clock.monotonic(), dcs_last_seen=int(self.clock.wall())
        )
        return cluster, None

    def _refresh_server(self) -> None:
        """Publish the server's state of this moment on the board (one bounded query),
        so that no DCS key announces a role or state the REST API does not show yet."""
        try:
            self.board.publish_server(self.manager.server_status(), self.clock.monotonic())
        except Exception as exc:
            log.debug("could not refresh the server status: %s", exc)

    def _observe_local(self) -> LocalState:
        try:
            return self.manager.observe()
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
        task = self.tasks.status()
        peers = None
        streaming: Optional[Tuple[str, ...]] = None
        divergence = None
        replication: Optional[ReplicationState] = None
        failed: Optional[FailedAction] = None
        decision: Optional[Decision] = None
        changed_server = task is not None and task.done  # a promote, start, rewind... just ended
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
                            streaming = self._streaming()
                    elif isinstance(probe, A.ProbeDivergence):
                        divergence = self._check_divergence(probe.leader)
                    elif isinstance(probe, A.ProbeReplication):
                        replication = self._replication(probe.confirm)
                if peers is None and any(isinstance(p, A.ProbePeers) for p in probes):
                    peers = {}
                continue
            if any(isinstance(a, _ANNOUNCES_LEADERSHIP) for a in decision.actions):
                self._refresh_server()  # the REST API says what the leader key will announce
            result: ExecutionResult = self.executor.execute(decision.actions, cluster)
            changed_server = changed_server or any(not isinstance(a, _KEEPS_SERVER) for a in decision.actions)
            self.last_result = result
            if any(isinstance(a, A.Demote) for a in decision.actions):
                self.wake.set()  # look again at once: follow the new leader without waiting loop_wait
            if result.replication_changed:
                self._look_again(SYNC_RECHECK_DELAY)
            if result.recheck_after is not None:
                self._look_again(result.recheck_after)
            if result.exit:
                self.exited = True
            if result.task_cancelled and result.failed is None:
                local, task, failed = self._observe_local(), None, None  # decide again without it
                continue
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
        if cluster is not None and cluster.paused and not local.running and local.state != STATE_STARTING:
            self.manager.note_paused_not_running()  # 3.0.2: a database that is down reads `stopped`
        self._log_reason(decision, cluster)
        if changed_server:
            self._refresh_server()  # before the member key announces the new role or state
        self._publish_member(cluster)
        self.cluster = cluster
        with self._watch_lock:
            self._watch_target = cluster
            self._watch_lock.notify_all()
        return decision

    def _look_again(self, seconds: float) -> None:
        at = self.clock.monotonic() + seconds
        self._recheck_at = at if self._recheck_at is None else min(self._recheck_at, at)

    def _replication(self, confirm: Tuple[str, ...]) -> ReplicationState:
        """The local primary's pg_stat_replication / synchronous_standby_names."""
        try:
            return self.manager.replication_state(confirm)
        except Exception as exc:
            log.warning("could not read the replication state: %s", exc)
            return ReplicationState(error=str(exc) or type(exc).__name__)

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
        wall = self.clock.wall()
        upcoming = [t - wall for t in times]
        upcoming = [t for t in upcoming if t > 0]
        return min(upcoming) if upcoming else None

    def _check_divergence(self, leader: Member) -> Divergence:
        if not leader.conn_url:
            return Divergence(leader=leader.name, needed=None, detail="no connection URL")
        try:
            needed = self.manager.check_divergence(leader.conn_url)
        except Exception as exc:
            log.warning("could not check timeline divergence against %s: %s", leader.name, exc)
            needed = None
        return Divergence(leader=leader.name, needed=needed)

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
        if args.get("note"):
            log.info("%s", args["note"])
        if args.get("alert"):
            log.warning("%s", args["alert"])
        log.info("%s", text)
        self._last_reason = text

    def _publish_member(self, cluster: Optional[ClusterView]) -> None:
        self.board.update(
            last_reason=self._last_reason or "",
            ttl=self.settings.ttl if self.settings else 30,
            loop_wait=self.settings.loop_wait if self.settings else 10,
            paused=bool(cluster and cluster.paused),
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
                    changed = self.watch_dcs.watch_failover(timeout)
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
        """(how long to sleep after a cycle that started at `started` (<= 0: at once),
        whether that is an early look asked for by the cycle itself)."""
        remaining = started + self.loop_wait() - self.clock.monotonic()
        try:
            due = self._seconds_to_schedule()
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
        watcher = threading.Thread(target=self._watcher, name="leader-watch", daemon=True)
        watcher.start()
        # /liveness counts from the start: a first cycle that never completes fails it too.
        self.board.update(next_cycle_at=self.clock.monotonic())
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
            self.stopping.set()
            with self._watch_lock:
                self._watch_lock.notify_all()


def _leader_name(cluster: Optional[ClusterView]) -> Optional[str]:
    return cluster.leader.name if cluster is not None and cluster.leader is not None else None
