"""`Manager`: the one object the runtime uses to drive the local QHB server."""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..core.local import STATE_RUNNING, STATE_STARTING, STATE_STOPPED, LocalState, ReplicationState
from ..core.model import ROLE_DEMOTED, ROLE_MASTER, ROLE_PROMOTED, ROLE_UNINITIALIZED
from ..runtime.status import ServerStatus
from . import bootstrap as _bootstrap
from . import observe as _observe
from . import replica as _replica
from . import rewind as _rewind
from . import slots as _slots
from . import syncrep as _syncrep
from .callbacks import Callbacks
from .files import local_history, remove_data_directory
from .server import LocalServer
from .settings import ManagerError, PgSettings, load_settings

_DEMOTE_STOP_MODES = {"offline": "fast", "graceful": "fast", "immediate": "immediate", "immediate-nolock": "immediate"}

log = logging.getLogger(__name__)

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
        if self.server.is_running():
            self.server.state = STATE_RUNNING  # joined an already running postmaster (7.6)

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

    def observe(self) -> LocalState:
        self._last = _observe.observe(self.server)
        return self._last

    def server_status(self) -> ServerStatus:
        return _observe.server_status(self.server)

    def member_data(self) -> Dict[str, Any]:
        """Member key fields owned by the manager (api_url/version/tags come from the runtime)."""
        data: Dict[str, Any] = {"conn_url": self.conn_url, "state": self.state, "role": self.role}
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
                raise ManagerError(f"bootstrap failed: {exc}") from exc
            self.callbacks.fire("on_start", self.role)
            return True

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
        if ok and (was_primary or previous_role in (ROLE_MASTER, ROLE_PROMOTED, ROLE_DEMOTED)):
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

    def fence(self) -> bool:
        """Stop acknowledging writes at once (the lease guard; see Postmaster.fence).
        Deliberately without the operations lock: it must not wait for a slow action."""
        return self.server.postmaster.fence()

    def stop(self, mode: str = "fast", timeout: Optional[float] = None) -> bool:
        with self._ops:
            was_running = self.server.is_running()
            ok = self.server.stop(mode, timeout)
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

    def promote(self, wait_seconds: float) -> bool:
        with self._ops:
            if self.server.in_recovery() is False:
                self.server.role = ROLE_MASTER
                return True
            self.server.role = ROLE_PROMOTED
            self.server.promote()
            if not self.server.wait_recovery_state(False, wait_seconds):
                return False
            self.server.recovery = None
            self.server.role = ROLE_MASTER
            self.server.write_config()
            self.callbacks.fire("on_role_change", ROLE_MASTER)
            return True

    def follow(self, leader_conn_url: Optional[str]) -> bool:
        with self._ops:
            return self._follow(leader_conn_url)

    def demote(self, mode: str, leader_conn_url: Optional[str]) -> bool:
        """Stop per mode, then start read-only following the leader (or nobody).
        standby.signal is written before the start, so it never comes up writable."""
        if mode not in _DEMOTE_STOP_MODES:
            raise ManagerError(f"unknown demote mode {mode!r}")
        with self._ops:
            if mode == "graceful" and self.server.is_running():
                try:
                    self.server.checkpoint()
                except ManagerError:
                    pass  # the shutdown checkpoint follows anyway
            if not self.server.stop(_DEMOTE_STOP_MODES[mode]):
                raise ManagerError("server did not stop")
            self.server.sync_standby_names = None  # a replica waits for nobody
            self.server.role = ROLE_DEMOTED
            return self._follow(leader_conn_url if mode != "offline" else None)

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
        """Single-user crash recovery of a stopped server that did not shut down cleanly."""
        with self._ops:
            log.info("doing crash recovery in a single user mode")
            _rewind.ensure_clean_shutdown(self.server)
            data = self.server.controldata()
            return data is not None and data.clean_shutdown

    def rewind_possible(self) -> bool:
        return _rewind.rewind_possible(self.server)

    def rewind(self, leader_conn_url: str) -> bool:
        with self._ops:
            _rewind.rewind(self.server, leader_conn_url)
            return self._follow(leader_conn_url)

    def remove_data_directory(self) -> None:
        with self._ops:
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

    def checkpoint(self) -> None:
        self.server.checkpoint()

    def timeline_history(self) -> List[List[Any]]:
        return local_history(self.server.layout, self.settings.name)

    def data_dir_exists(self) -> bool:
        return os.path.isdir(self.settings.data_dir)
