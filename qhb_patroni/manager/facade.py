"""`Manager`: the one object the runtime uses to drive the local QHB server."""
from __future__ import annotations

import logging
import os
import shlex
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core.local import (
    CRASH_RECOVERY_RAN_ERROR,
    PRE_PROMOTE_FAILED_ERROR,
    STATE_RUNNING,
    STATE_STARTING,
    STATE_STOPPED,
    LocalState,
    ReplicationState,
)
from ..core.model import ROLE_DEMOTED, ROLE_MASTER, ROLE_PROMOTED, ROLE_STANDBY_LEADER, ROLE_UNINITIALIZED
from ..core.slots import SlotSpec
from ..runtime.status import ServerStatus
from . import bootstrap as _bootstrap
from . import clonesource as _clonesource
from . import observe as _observe
from . import replica as _replica
from . import rewind as _rewind
from . import slots as _slots
from . import syncrep as _syncrep
from .callbacks import Callbacks
from .controldata import shutdown_checkpoint_on_disk
from .files import local_history, remove_data_directory
from .process import run_watched
from .server import LocalServer
from .settings import ManagerError, PgSettings, load_settings
from .wipe import plan_removal

_DEMOTE_STOP_MODES = {"offline": "fast", "graceful": "fast", "immediate": "immediate", "immediate-nolock": "immediate"}

log = logging.getLogger(__name__)

# How often a promote looks whether the server left recovery (one short local query):
# the new primary takes writes, and says so, this much after it can at the latest.
PROMOTE_POLL_INTERVAL = 0.01
PROMOTE_FIRST_POLL = 0.005  # during the first second: a promotion mostly ends within 0.1 s
# A promote request that finds the startup process retrying a lost primary is acted on
# only after wal_retrieve_retry_interval (PG 15: it waits out that interval after taking
# the request); SIGHUP ends the wait, sent this often while the promotion has not ended.
PROMOTE_WAKE_EVERY = 0.1
# 3.0.2 waits for the fencing command without a limit; ours ends it after an hour.
PRE_PROMOTE_TIMEOUT = 3600.0

# Control data states of a cluster that stopped without a shutdown checkpoint.
_CRASHED_STATES = ("in production", "shutting down", "in crash recovery")


class Manager:
    """Local server operations. Every method is synchronous; long ones
    (bootstrap, clone, rewind, promote) are meant for the background task
    thread. Failures raise ManagerError with a one-line reason."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.settings: PgSettings = load_settings(config)
        self.server = LocalServer(self.settings)
        self._last: Optional[LocalState] = None
        self._ops = threading.RLock()  # one state-changing operation at a time
        self.last_divergence_detail = ""
        self.callbacks = Callbacks(self.settings.callbacks, self.settings.scope)
        # Promoted, and the CHECKPOINT that writes the new timeline into pg_control is not done
        # yet: the member key says checkpoint_after_promote: false, and Patroni 3.0.2 members
        # wait for it before they rewind from this node (a rewind before it breaks them).
        self.checkpoint_pending = False
        if self.server.is_running():
            self.server.state = STATE_RUNNING  # joined an already running postmaster (7.6)
        for warning in self.settings.method_warnings:
            log.warning("%s", warning)

    def update_config(self, config: Mapping[str, Any]) -> bool:
        """Take a new effective configuration (dynamic config changed).

        File names, data_dir and the config base name stay as read at start;
        when the rendered parameters or managed hba/ident lines change, the
        main config is rewritten and the server reloaded. Returns True when a
        reload was sent."""
        new = load_settings(config)
        with self._ops:
            old_params = self.server.effective_parameters()
            old = self.settings
            # Where the files are and which programs run stay as read at start (a restart of
            # the daemon applies them; see config/reloadable.py).
            self.settings = replace(new, data_dir=old.data_dir, config_dir=old.config_dir, layout=old.layout,
                                    binaries=old.binaries)
            self.server.settings = self.settings
            self.callbacks = Callbacks(self.settings.callbacks, self.settings.scope)
            changed = (
                self.server.effective_parameters() != old_params
                or (new.pg_hba, new.pg_ident) != (old.pg_hba, old.pg_ident)
            )
            if changed and self.server.is_running():
                return self.reload()
            return False

    # ---- state -----------------------------------------------------------------

    @property
    def state(self) -> str:
        return self.server.state

    @property
    def role(self) -> str:
        return self.server.role

    @property
    def conn_url(self) -> str:
        return self.settings.conn_url

    @property
    def binaries(self) -> Mapping[str, str]:
        return self.settings.binaries

    def observe(self, deadline: Optional[float] = None, cluster_timeline: Optional[int] = None) -> LocalState:
        """`deadline`: seconds the status query may take, `cluster_timeline`: the cluster's
        timeline (see observe.observe)."""
        self._last = _observe.observe(self.server, deadline, cluster_timeline)
        return self._last

    def stopped_position(self) -> Optional[int]:
        """The last position of the stopped server: a cleanly shut down primary's shutdown
        checkpoint read from the control file directly, else what observe() finds."""
        if not self.server.is_running():
            lsn = shutdown_checkpoint_on_disk(self.server.layout.pg_control)
            if lsn is not None:
                return lsn
        return self.observe().lsn

    def server_status(self, deadline: Optional[float] = None) -> ServerStatus:
        return _observe.server_status(self.server, deadline)

    def member_data(self) -> Dict[str, Any]:
        """Member key fields owned by the manager (api_url/version/tags come from the runtime)."""
        data: Dict[str, Any] = {"conn_url": self.conn_url, "state": self.state, "role": self.role}
        if self.settings.proxy_url:
            data["proxy_url"] = self.settings.proxy_url
        if self.checkpoint_pending and self.role == ROLE_MASTER:
            data["checkpoint_after_promote"] = False
        last = self._last
        if last is not None:
            if last.pending_restart:
                data["pending_restart"] = True
            if self.state in (STATE_RUNNING, STATE_STARTING, "restarting") and last.lsn is not None:
                data["xlog_location"] = last.lsn
                if last.timeline is not None:
                    data["timeline"] = last.timeline
        return data

    # ---- lifecycle -------------------------------------------------------------

    def bootstrap(self) -> bool:
        with self._ops:
            try:
                _bootstrap.bootstrap(self.server)
            except (ManagerError, OSError) as exc:
                state = self.server.state
                if self.server.is_running():
                    self.server.stop("immediate")
                self.server.state = state if state != STATE_RUNNING else STATE_STOPPED
                if not self.server.is_running():
                    # Never adopted later as if it were a cluster: kept aside for a look, not wiped.
                    _bootstrap.move_data_directory_aside(self.server)
                raise ManagerError(f"bootstrap failed: {exc}") from exc
            self.callbacks.fire("on_start", self.role)
            return True

    def check_clone_source(self, source_conn_url: Optional[str]) -> None:
        """ManagerError unless the source accepts connections (asked before a wipe)."""
        _clonesource.check_clone_source(self.server, source_conn_url)

    def clone(self, source_conn_url: Optional[str], leader_conn_url: Optional[str]) -> bool:
        with self._ops:
            if self.server.is_running():
                raise ManagerError("cannot clone over a running server")
            try:
                _replica.clone(self.server, source_conn_url or leader_conn_url)
            except OSError as exc:
                raise ManagerError(f"clone failed: {exc}") from exc
            return self._follow(leader_conn_url or source_conn_url)

    def _follow(self, leader_conn_url: Optional[str]) -> bool:
        """follow() plus the callback Patroni fires: on_role_change when a
        primary (or a demoted/promoted node) becomes a replica, on_start when
        a stopped replica was started."""
        was_running = self.server.is_running()
        previous_role = self.server.role
        was_primary = was_running and self.server.in_recovery() is False
        ok = _replica.follow(self.server, leader_conn_url)
        became_standby_leader = (self.server.role == ROLE_STANDBY_LEADER) != (previous_role == ROLE_STANDBY_LEADER)
        if ok and (was_primary or previous_role in (ROLE_MASTER, ROLE_PROMOTED, ROLE_DEMOTED)
                   or (became_standby_leader and was_running)):
            self.callbacks.fire("on_role_change", self.role)
        elif ok and not was_running:
            self.callbacks.fire("on_start", self.role)
        return ok

    def start(self, follow_conn_url: Optional[str] = None, read_only: bool = False) -> bool:
        """Start the server. With a leader url or read_only it starts as a standby;
        otherwise as what the data directory says (standby.signal present or not)."""
        with self._ops:
            if follow_conn_url or read_only:
                return self._follow(follow_conn_url)
            was_running = self.server.is_running()
            ok = self.server.start()
            if ok and not was_running:
                self.callbacks.fire("on_start", self.role)
            return ok

    def _primary_stop_timeout(self, timeout: Optional[float]) -> Optional[float]:
        """primary_stop_timeout bounds the stop of a primary (synchronous mode only)."""
        if timeout is None and self.settings.primary_stop_timeout and self.role == ROLE_MASTER:
            return self.settings.primary_stop_timeout
        return timeout
    def fence(self) -> bool:
        """Stop acknowledging writes at once (the lease guard; see Postmaster.fence).
        Deliberately without the operations lock: it must not wait for a slow action."""
        return self.server.postmaster.fence()

    def stop(self, mode: str = "fast", timeout: Optional[float] = None,
             on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        """`on_safepoint`: see LocalServer.stop."""
        with self._ops:
            was_running = self.server.is_running()
            ok = self.server.stop(mode, self._primary_stop_timeout(timeout), on_safepoint)
            if ok and was_running:
                self.callbacks.fire("on_stop", self.role)
            return ok

    def restart(self, mode: str = "fast", timeout: Optional[float] = None) -> bool:
        with self._ops:
            if not self.server.stop(mode, timeout):
                return False
            ok = self.server.start(timeout)
            if ok:
                self.callbacks.fire("on_restart", self.role)
            return ok

    def reload(self) -> bool:
        with self._ops:
            ok = self.server.reload()
            if ok:
                self.callbacks.fire("on_reload", self.role)
            return ok

    def promote(self, wait_seconds: float, on_promoted: Optional[Callable[[], None]] = None,
                slots: Sequence[str] = ()) -> bool:
        """Promote and wait up to `wait_seconds` for the end of recovery; `on_promoted` is
        called as soon as the server is out of recovery (before the config is rewritten and
        the callbacks fire), so the REST API can say so at once.  `slots`: the members'
        physical slots, created once the promotion is asked for, while the server ends its
        recovery (10-90 ms of fsyncs that no longer delay it), before the server accepts
        writes in the usual case, and within the same few milliseconds after the new leader
        key as when they were created first: the replicas that re-point at once need them."""
        with self._ops:
            # The fencing command runs only for a server in recovery; without one, the request
            # itself tells (one round trip less on the failover's path).
            if self.settings.pre_promote and self.server.in_recovery() is False:
                return self._already_primary(slots)
            self._pre_promote()
            role = self.server.role
            self.server.role = ROLE_PROMOTED
            if not self.server.promote():
                self.server.role = role
                return self._already_primary(slots)
            if self.server.unready_slots:
                log.warning("Logical replication slots that might be unsafe to use after promote: %s",
                            sorted(self.server.unready_slots))
                self.server.unready_slots.clear()
            log.debug("promotion requested")
            if slots:
                try:
                    self.create_slots(slots)
                except Exception as exc:  # the leader's next cycle creates them anyway
                    log.warning("could not create replication slots while promoting: %s", exc)
            log.debug("waiting for the end of recovery")
            if not self.server.wait_recovery_state(False, wait_seconds, interval=PROMOTE_POLL_INTERVAL,
                                                   first=PROMOTE_FIRST_POLL, wake_every=PROMOTE_WAKE_EVERY):
                return False
            log.debug("recovery ended")
            self.server.recovery = None
            self.server.role = ROLE_MASTER
            self.checkpoint_pending = True
            if on_promoted is not None:
                on_promoted()
            threading.Thread(target=self._checkpoint_after_promote, name="checkpoint-after-promote",
                             daemon=True).start()
            self.server.write_config()
            self.callbacks.fire("on_role_change", ROLE_MASTER)
            return True

    def _already_primary(self, slots: Sequence[str]) -> bool:
        self.server.role = ROLE_MASTER
        if slots:
            self.create_slots(slots)
        return True

    def mark_demoted(self) -> None:
        """A primary whose server is down gives the role up (crash failover): member key
        and REST API say `demoted`, not `master`, until it starts as a replica."""
        with self._ops:
            if not self.server.is_running():
                self.server.role = ROLE_DEMOTED

    def _checkpoint_after_promote(self) -> None:
        """CHECKPOINT right after a promote (3.0.2 does it too), retried while still the primary."""
        pause = 1.0
        while self.checkpoint_pending:
            if self.server.role != ROLE_MASTER:
                self.checkpoint_pending = False
                return
            try:
                self.server.checkpoint()
                self.checkpoint_pending = False
                return
            except ManagerError as exc:
                log.warning("CHECKPOINT after promote failed: %s", exc)
            time.sleep(pause)
            pause = min(10.0, pause * 2)

    def _pre_promote(self) -> None:
        """postgresql.pre_promote: run the fencing command; a non-zero exit (or one that
        cannot run) refuses the promotion and the core gives the lock up."""
        command = self.settings.pre_promote
        if not command:
            return
        try:
            rc, _out, err = run_watched(shlex.split(command), PRE_PROMOTE_TIMEOUT)
        except ManagerError as exc:
            log.error("pre_promote script `%s` failed: %s", command, exc)
            raise ManagerError(PRE_PROMOTE_FAILED_ERROR) from exc
        log.info("pre_promote script `%s` exited with %s", command, rc)
        if rc != 0:
            raise ManagerError(PRE_PROMOTE_FAILED_ERROR)

    def follow(self, leader_conn_url: Optional[str]) -> bool:
        with self._ops:
            return self._follow(leader_conn_url)

    def demote(self, mode: str, leader_conn_url: Optional[str],
               on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        """Stop per mode, then start read-only following the leader (or nobody).
        standby.signal is written before the start, so it never comes up writable.
        `on_safepoint`: see LocalServer.stop."""
        if mode not in _DEMOTE_STOP_MODES:
            raise ManagerError(f"unknown demote mode {mode!r}")
        with self._ops:
            if mode == "graceful" and self.server.is_running():
                try:
                    self.server.checkpoint()
                except ManagerError:
                    pass  # the shutdown checkpoint follows anyway
            if not self.server.stop(_DEMOTE_STOP_MODES[mode], self._primary_stop_timeout(None), on_safepoint):
                raise ManagerError("server did not stop")
            self.server.sync_standby_names = None  # a replica waits for nobody
            self.server.role = ROLE_DEMOTED
            return self._follow(leader_conn_url if mode != "offline" else None)

    def wake_wal_receiver(self) -> bool:
        """A reload of the running standby: its startup process, waiting
        wal_retrieve_retry_interval after a failed attempt to stream, tries again at once.
        Not an operator reload: no on_reload callback."""
        with self._ops:
            return self.server.is_running() and self.server.reload()

    def set_synchronous_standby_names(self, value: Optional[str]) -> bool:
        """Synchronous mode: the standbys the primary waits for (None: the configured
        value).  Rewrites the config and reloads a running server; True if it changed."""
        with self._ops:
            if value == self.server.sync_standby_names:
                return False
            self.server.sync_standby_names = value
            if self.server.is_running():
                self.server.reload()  # not an operator reload: no on_reload callback
            return True

    def replication_state(self, confirm: Sequence[str] = ()) -> ReplicationState:
        """pg_stat_replication and synchronous_standby_names of the running primary."""
        return _syncrep.replication_state(self.server.local_params(), confirm)

    def check_divergence(self, leader_conn_url: str) -> Optional[bool]:
        return self.divergence(leader_conn_url)[0]

    def divergence(self, leader_conn_url: str) -> Tuple[Optional[bool], str]:
        """Compare with the leader's history.  A stopped server that was not shut
        down cleanly (a crashed primary) first gets single-user crash recovery, as
        Patroni does before deciding on a rewind: only a cleanly shut down cluster
        says where its WAL ends."""
        with self._ops:
            if not self.server.is_running():
                data = self.server.controldata()
                if data is not None and not data.clean_shutdown and data.state in _CRASHED_STATES:
                    log.info("doing crash recovery in a single user mode")
                    _rewind.ensure_clean_shutdown(self.server)
            result = _rewind.check_divergence(self.server, leader_conn_url)
        self.last_divergence_detail = result.detail
        return result.needed, result.detail

    def note_paused_not_running(self) -> None:
        """Maintenance mode: a database that is not running reads `stopped`, whatever
        took it down (as 3.0.2 does; nobody is going to start it)."""
        with self._ops:
            if not self.server.is_running() and self.server.state != STATE_STOPPED:
                self.server.state = STATE_STOPPED

    def crash_recovery(self) -> bool:
        """Single-user crash recovery of a stopped server that did not shut down cleanly.
        Raises ManagerError naming CRASH_RECOVERY_RAN_ERROR when recovery ran and the
        cluster is still not cleanly shut down (the core then stops retrying)."""
        with self._ops:
            log.info("doing crash recovery in a single user mode")
            _rewind.ensure_clean_shutdown(self.server)
            data = self.server.controldata()
            if data is None:
                raise ManagerError("control data not readable after crash recovery")
            if not data.clean_shutdown:
                raise ManagerError(f"{CRASH_RECOVERY_RAN_ERROR}: the cluster state is still {data.state!r}")
            return True

    def rewind_possible(self) -> bool:
        return _rewind.rewind_possible(self.server)

    def rewind(self, leader_conn_url: str) -> bool:
        with self._ops:
            _rewind.rewind(self.server, leader_conn_url)
            return self._follow(leader_conn_url)

    def remove_data_directory(self) -> None:
        with self._ops:
            plan_removal(self.settings.data_dir)  # refused (ManagerError) before the server is stopped
            if self.server.is_running():
                self.server.stop("immediate")
            remove_data_directory(self.settings.data_dir)
            self.server.state = STATE_STOPPED
            self.server.role = ROLE_UNINITIALIZED
            self.server.recovery = None

    def create_slots(self, names: Sequence[str]) -> None:
        created = _slots.create_slots(self.server, names)
        if created:
            log.info("created replication slots %s", ", ".join(created))

    def sync_slots(self, names: Sequence[str]) -> None:
        _slots.sync_slots(self.server, names)

    def manage_slots(self, drop: Sequence[str], create: Sequence[SlotSpec],
                     advance: Sequence[Tuple[str, str, int]], feedback: Optional[bool],
                     readiness_leader_url: Optional[str] = None) -> None:
        """What core.slots decided; each slot on its own (failures are logged, retried next cycle)."""
        with self._ops:
            if readiness_leader_url:
                _slots.check_readiness(self.server, readiness_leader_url)
            if drop:
                _slots.drop(self.server, drop, [s.name for s in create])
            if create:
                _slots.create(self.server, create)
            if advance:
                _slots.advance(self.server, advance)
            if feedback is not None and feedback != self.server.enforce_feedback:
                self.server.enforce_feedback = feedback
                if self.server.is_running():
                    self.server.reload()

    def copy_logical_slots(self, names: Sequence[str], leader_conn_url: Optional[str]) -> bool:
        """Background task: copy the primary's permanent logical slots, then start again
        (below PostgreSQL 17 a standby loads slots only at start)."""
        if not leader_conn_url:
            raise ManagerError("no leader to copy logical replication slots from")
        with self._ops:
            try:
                copied = _slots.copy_logical(self.server, names, leader_conn_url)
            finally:
                started = self.server.start() if not self.server.is_running() else True
            if copied:
                log.info("Copied logical replication slots %s from the primary and restarted", copied)
                for name in copied:
                    self.server.unready_slots[name] = None
            return started and bool(copied)

    def checkpoint(self) -> None:
        self.server.checkpoint()

    def timeline_history(self) -> List[List[Any]]:
        return local_history(self.server.layout, self.settings.name)

    def data_dir_exists(self) -> bool:
        return os.path.isdir(self.settings.data_dir)
