"""Perform a decision's actions in order, stopping at the first failure.

Stopping at the first failure is what makes `[AcquireLock(), Promote()]` safe:
the promote is never reached when the compare-and-swap was lost.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from ..core import actions as A
from ..core.model import ClusterView, Member
from ..core.observation import FailedAction
from ..dcs.base import DCSError
from .commands import CommandQueue
from .ports import Clock, ClusterDCSPort, ManagerPort, TaskPort
from .watchdog import MODE_OFF, Watchdog, WatchdogSettings

log = logging.getLogger(__name__)


class LeaseTracker:
    """Local notion of holding the lock: the (monotonic) time, taken *before*
    the request was sent, of our last successful leader-key write.

    `on_change` is told at once (the REST API must stop answering 200 on
    /primary the moment we stop believing we hold the lock, not after the cycle)."""

    def __init__(self, on_change: Optional[Callable[[Optional[float]], None]] = None) -> None:
        self._written_at: Optional[float] = None
        self._on_change = on_change

    @property
    def written_at(self) -> Optional[float]:
        return self._written_at

    @written_at.setter
    def written_at(self, value: Optional[float]) -> None:
        self._written_at = value
        if self._on_change is not None:
            self._on_change(value)

    def lost(self) -> None:
        if self._written_at is not None:
            self.written_at = None


class FatalError(Exception):
    """The core asked the daemon to exit (Fatal action)."""


@dataclass
class ExecutionResult:
    failed: Optional[FailedAction] = None
    lock_changed: bool = False  # the leader key was written or deleted: re-read the cluster
    replication_changed: bool = False  # synchronous_standby_names changed: look again soon
    task_cancelled: bool = False  # the background task was cancelled: observe and decide again now
    recheck_after: Optional[float] = None  # run the next cycle this soon (seconds)
    exit: bool = False  # the planned stop is complete: the loop ends after this cycle


def _conn_url(member: Optional[Member]) -> Optional[str]:
    return member.conn_url if member is not None else None


class Executor:
    def __init__(
        self,
        dcs: ClusterDCSPort,
        manager: ManagerPort,
        tasks: TaskPort,
        lease: LeaseTracker,
        clock: Clock,
        promote_wait: Callable[[], float],
        commands: Optional[CommandQueue] = None,
    ) -> None:
        self.dcs = dcs
        self.manager = manager
        self.tasks = tasks
        self.lease = lease
        self.clock = clock
        self._promote_wait = promote_wait
        self.commands = commands or CommandQueue()
        # Publish the nosync tag in my member key (PublishNoSync): handing synchronous
        # standby duty over before this node stops.
        self.nosync = False
        self.watchdog = Watchdog(WatchdogSettings(mode=MODE_OFF))  # the daemon sets the configured one
        # FailsafeActive: told the time it was confirmed (the loop publishes it); None = over.
        self.on_failsafe: Callable[[Optional[float]], None] = lambda at: None
        # Called by the promote task once the server is out of recovery, before the loop
        # hears the task ended: the loop publishes the server's new state at once.
        self.on_promoted: Callable[[], None] = lambda: None
        # The version of the leader key our last successful write of it left: a release
        # without a version (a switchover's, a planned stop's) is a CAS on it, not a read first.
        self._leader_version: Optional[int] = None

    def execute(self, actions: Sequence[A.Action], cluster: Optional[ClusterView]) -> ExecutionResult:
        result = ExecutionResult()
        for action in actions:
            try:
                ok = self._perform(action, cluster, result)
                error = "" if ok else "condition failed"
            except FatalError:
                raise
            except DCSError as exc:
                ok, error = False, f"DCS error: {exc}"
            except Exception as exc:  # the manager raises ManagerError and friends
                log.exception("%s failed", type(action).__name__)
                ok, error = False, str(exc) or type(exc).__name__
            if not ok:
                log.info("%s did not succeed: %s", type(action).__name__, error)
                result.failed = FailedAction(action=action, error=error)
                return result
        return result

    # One method per action kind; each returns True on success.
    def _perform(self, action: A.Action, cluster: Optional[ClusterView], result: ExecutionResult) -> bool:
        dcs, mgr = self.dcs, self.manager
        if isinstance(action, A.AcquireLock):
            t0 = self.clock.monotonic()
            self._leader_version = dcs.attempt_to_acquire_leader()
            ok = self._leader_version is not None
            log.debug("leader key create-only write: %s", "won" if ok else "lost")
            if ok:
                self.lease.written_at = t0
                result.lock_changed = True
            return ok
        if isinstance(action, A.RenewLock):
            t0 = self.clock.monotonic()
            slots = dict(action.slots) if action.slots else None
            self._leader_version = dcs.update_leader(action.version, last_lsn=action.last_lsn, slots=slots)
            ok = self._leader_version is not None
            if ok:
                self.lease.written_at = t0
            else:
                self.lease.lost()
            return ok
        if isinstance(action, A.TakeLock):
            t0 = self.clock.monotonic()
            ok = bool(dcs.take_leader())
            self._leader_version = None  # unknown: a release reads the key first
            if ok:
                self.lease.written_at = t0
                result.lock_changed = True
            return ok
        if isinstance(action, A.ReleaseLock):
            self.lease.lost()
            result.lock_changed = True
            if action.demoted:
                mgr.mark_demoted()
            last_lsn = self._stopped_position() if action.stopped_position else action.last_lsn
            version = action.version if action.version is not None else self._leader_version
            self._leader_version = None
            released = bool(dcs.delete_leader(version, last_lsn=last_lsn))
            if not released and version is not None and action.version is None:
                released = bool(dcs.delete_leader(None))  # changed since my write: by name, as before
            log.debug("leader key released: %s", released)
            return released
        if isinstance(action, A.StopServer):
            self.lease.lost()  # stop answering as the primary before it stops being one
            if action.checkpoint:
                try:
                    mgr.checkpoint()
                except Exception as exc:  # the shutdown checkpoint follows anyway
                    log.debug("checkpoint before stopping failed: %s", exc)
            stopped = bool(mgr.stop(action.mode, on_safepoint=self._safepoint(action.disarm_at_safepoint)))
            log.debug("server stopped (%s): %s", action.mode, stopped)
            return stopped
        if isinstance(action, A.WriteInitialize):
            return bool(dcs.initialize(action.value, create=action.create, version=action.version))
        if isinstance(action, A.CancelInitialize):
            log.info("removing initialize key after failed attempt to bootstrap the cluster")
            return bool(dcs.cancel_initialization())
        if isinstance(action, A.WriteConfig):
            return bool(dcs.set_config(dict(action.data), version=action.version))
        if isinstance(action, A.ClearFailover):
            return bool(dcs.set_failover({}, version=action.version))
        if isinstance(action, A.WriteHistory):
            history = mgr.timeline_history()
            return bool(dcs.set_history(history[-action.keep:] if action.keep > 0 else history))
        if isinstance(action, (A.WriteSync, A.DeleteSync, A.SetSyncStandbyNames)):
            return self._sync(action, result)
        if isinstance(action, A.Demote):
            self.lease.lost()  # the lock itself is released by a ReleaseLock after this action
            return bool(mgr.demote(action.mode, _conn_url(action.leader), self._safepoint(action.disarm_at_safepoint)))
        if isinstance(action, A.Follow):
            return bool(mgr.follow(_conn_url(action.leader)))
        if isinstance(action, A.StartReadOnlyLeader):
            return bool(mgr.start(None, read_only=True))
        if isinstance(action, A.ManageSlots):
            for problem in action.problems:
                log.error("%s", problem)
            mgr.manage_slots(action.drop, action.create, action.advance, action.feedback,
                             _conn_url(action.readiness_leader))
            return True
        if isinstance(action, A.CopyLogicalSlots):
            names, leader = action.names, action.leader
            return bool(self.tasks.start(action.kind, "copy logical slots",
                                         lambda: mgr.copy_logical_slots(names, leader.conn_url)))
        if isinstance(action, A.RemoveDataDir):
            mgr.remove_data_directory()
            return True
        if isinstance(action, A.Bootstrap):
            return bool(self.tasks.start(action.kind, "bootstrap", mgr.bootstrap))
        if isinstance(action, A.Clone):
            src = action.source or action.leader
            who = "leader" if src is None or (action.leader and src.name == action.leader.name) else "replica"
            name = f"bootstrap from {who} '{src.name}'" if src else "bootstrap (without leader)"
            return bool(
                self.tasks.start(action.kind, name, lambda: mgr.clone(_conn_url(src), _conn_url(action.leader)))
            )
        if isinstance(action, A.Promote):
            wait, members = self._promote_wait(), list(action.slots)

            def promote() -> bool:
                told: List[bool] = []

                def promoted() -> None:  # as soon as the server is out of recovery
                    told.append(True)
                    self.on_promoted()
                ok = bool(mgr.promote(wait, promoted, members))
                if ok and not told:
                    self.on_promoted()
                return ok
            return bool(self.tasks.start(action.kind, "promote", promote))
        if isinstance(action, A.CrashRecovery):
            return bool(self.tasks.start(action.kind, "crash recovery", mgr.crash_recovery))
        if isinstance(action, A.Rewind):
            leader, url = action.leader, action.leader.conn_url
            if not url:
                raise ValueError(f"no connection URL for {leader.name}")
            return bool(self.tasks.start(action.kind, f"running pg_rewind from {leader.name}", lambda: mgr.rewind(url)))
        if isinstance(action, (A.Restart, A.Reinitialize, A.RejectCommand)):
            return self._operator(action)
        if isinstance(action, A.CancelTask):
            return self._cancel_task(result)
        if isinstance(action, A.PublishNoSync):
            if action.on and not self.nosync:
                log.info("Withdrawing from synchronous standby duty before stopping")
            self.nosync = action.on
            return True
        if isinstance(action, A.WakeWalReceiver):
            if not mgr.wake_wal_receiver():  # best effort: the next cycle looks again
                log.debug("could not reload the standby to wake its WAL receiver")
            return True
        if isinstance(action, A.Recheck):
            now = action.seconds
            result.recheck_after = now if result.recheck_after is None else min(result.recheck_after, now)
            return True
        if isinstance(action, A.Exit):
            result.exit = True
            return True
        if isinstance(action, A.Fatal):
            raise FatalError(action.message)
        if isinstance(action, A.WATCHDOG_ACTIONS):
            return self._watchdog(action)
        if isinstance(action, A.FailsafeActive):
            self.on_failsafe(self.clock.monotonic())
            return True
        if isinstance(action, A.WriteFailsafe):
            # the core asks only when the key it read differs: never skip as "unchanged"
            return bool(dcs.write_failsafe(dict(action.members), force=True))
        if isinstance(action, A.DeleteFailsafe):
            return bool(dcs.delete_failsafe())
        if isinstance(action, A.PROBE_ACTIONS):
            return True  # answered by the loop before execution
        raise TypeError(f"unknown action {action!r}")

    def _cancel_task(self, result: ExecutionResult) -> bool:
        running = self.tasks.peek()
        name = running.name if running is not None else "the task"
        log.info("Cancelling %s for a forced reinitialize", name)
        if not self.tasks.cancel():
            log.warning("%s did not end after being cancelled", name)
            return False
        finished = self.tasks.status()  # dropped: what replaces it is decided next
        log.info("%s ended: %s", name, (finished.error or "done") if finished else "done")
        result.task_cancelled = True
        return True

    def _safepoint(self, disarm: bool) -> Optional[Callable[[], None]]:
        """What a stop calls once the server can acknowledge no write (A.StopServer)."""
        return self.watchdog.disarm if disarm else None

    def _watchdog(self, action: A.Action) -> bool:
        dog = self.watchdog
        if isinstance(action, A.ArmWatchdog):
            loop_wait = self._promote_wait()
            before = dog.error
            armed = dog.arm_with(action.timeout, loop_wait) and dog.keepalive()
            if not armed and not action.required and dog.error != before:
                log.warning("leading without a watchdog (watchdog.mode automatic): %s", dog.error)
            return armed or not action.required
        if isinstance(action, A.PingWatchdog):
            dog.keepalive()  # a failure is in dog.error / the next observation
            return True
        dog.disarm()
        return True

    def _operator(self, action: A.Action) -> bool:
        """Operator commands: a refusal answers the waiting API thread at once; a
        restart / reinitialize runs as the background task and answers when done."""
        mgr, cmds = self.manager, self.commands
        if isinstance(action, A.RejectCommand):
            cmds.finish(action.ident, False, action.message)
            return True
        if isinstance(action, A.Restart):
            ident, timeout = action.ident, action.timeout

            def restart() -> bool:
                ok = False
                try:
                    ok = bool(mgr.restart("fast", timeout))
                finally:
                    cmds.finish(ident, ok, "restarted successfully" if ok else "restart failed")
                return ok

            started = bool(self.tasks.start(action.kind, "restart", restart))
        elif isinstance(action, A.Reinitialize):
            ident, leader, source = action.ident, action.leader, action.source or action.leader

            def reinitialize() -> bool:
                url = _conn_url(source)
                mgr.check_clone_source(url)  # before the wipe: nothing to clone from = keep the data
                mgr.remove_data_directory()  # stops the server first
                return bool(mgr.clone(url, _conn_url(leader)))

            started = bool(self.tasks.start(action.kind, "reinitialize", reinitialize))
        else:
            raise TypeError(f"not an operator action: {action!r}")
        if not started:
            cmds.finish(ident, False, f"{'restart' if isinstance(action, A.Restart) else 'reinitialize'} failed")
        elif isinstance(action, A.Reinitialize):
            cmds.finish(ident, True, "reinitialize started")  # answered once the task runs, like 3.0.2
        else:
            cmds.started(ident)
        return started

    def _sync(self, action: A.Action, result: ExecutionResult) -> bool:
        """Synchronous replication bookkeeping (spec 5.11), logged as Patroni does."""
        if isinstance(action, A.WriteSync):
            ok = bool(self.dcs.set_sync(action.leader, action.standbys, version=action.version))
            if ok:
                log.info("Synchronous standby status assigned to %s", list(action.standbys))
            else:
                log.info("Synchronous replication key updated by someone else")
            return ok
        if isinstance(action, A.DeleteSync):
            ok = bool(self.dcs.delete_sync(version=action.version))
            if ok:
                log.info("Disabled synchronous replication")
            return ok
        assert isinstance(action, A.SetSyncStandbyNames)
        changed = bool(self.manager.set_synchronous_standby_names(action.value))
        if changed:
            if action.value == "*":
                log.warning("No standbys available!")
            elif action.value:
                log.info("Assigning synchronous standby status to %s", action.value)
            result.replication_changed = True
        return True

    def _stopped_position(self) -> Optional[int]:
        """The local server's last position once stopped (its shutdown checkpoint)."""
        try:
            return self.manager.stopped_position()
        except Exception as exc:
            log.debug("could not read the shutdown position: %s", exc)
            return None
