"""The local server: config files, start/stop/reload/promote, connection parameters.

Bootstrap, clone, rewind and observe build on this class; it also keeps the
2.6 state string and the internal role, which the methods update.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ..core.local import (
    STATE_RUNNING,
    STATE_START_FAILED,
    STATE_STARTING,
    STATE_STOPPED,
    STATE_STOPPING,
)
from ..core.model import ROLE_UNINITIALIZED
from . import conffiles, durable
from .connection import connect, local_params, query
from .controldata import ControlData, read_controldata, shut_down_on_disk
from .files import major_version, write_file, write_pgpass
from .process import STOP_SIGNALS, Postmaster, pm_status, run_tool, writers_left
from .settings import ManagerError, PgSettings
from .statusconn import StatusConnection

DEFAULT_MAJOR = 15
# Statements over the kept local connection (local_query): how long one may take, and how
# long to wait for the connection while the status refresher uses it.
KEPT_DEADLINE = 3.0
# A standby that streams is woken this many seconds into its start (Postmaster.wait_ready).
STANDBY_WAKE_FOR = 10.0
KEPT_WAIT = 0.2
# Replica start safety (7.2): these must not be below the primary's values.
_CONTROLDATA_MINIMUMS = {
    "max_connections": "max_connections setting",
    "max_prepared_transactions": "max_prepared_xacts setting",
    "max_locks_per_transaction": "max_locks_per_xact setting",
    "max_worker_processes": "max_worker_processes setting",
    "max_wal_senders": "max_wal_senders setting",
}


class LocalServer:
    def __init__(self, settings: PgSettings) -> None:
        self.settings = settings
        self.layout = settings.layout
        self.bin = settings.binaries
        self.postmaster = Postmaster(self.bin["server"], settings.data_dir, self.layout.postmaster_pid)
        self.state = STATE_STOPPED
        self.role = ROLE_UNINITIALIZED
        self.status_conn = StatusConnection()  # kept for the status query (manager/statusconn.py)
        # Recovery section of the main config while following (None: no section).
        self.recovery: Optional[Dict[str, str]] = None
        self.pending_restart = False
        self.timeline_cache: Optional[int] = None
        # (postmaster start time, replay position) the cached replica timeline was read at
        self.timeline_mark: Optional[Tuple[Optional[str], Optional[int]]] = None
        # (postmaster pid, monotonic time, answer) of the last controldata read while running
        self.control_cache: Optional[Tuple[int, float, ControlData]] = None
        self.recovery = self._recovery_on_disk()
        # synchronous_standby_names chosen by the HA loop in synchronous mode (None: as configured).
        self.sync_standby_names: Optional[str] = None
        # A custom bootstrap starts the restored cluster with its own hba file, maybe
        # hot_standby off, and archive recovery (recovery.signal) instead of standby mode.
        self.hba_override: Optional[str] = None
        self.parameter_overrides: Dict[str, str] = {}
        self.archive_recovery = False
        # The data directory is a fresh copy the clone already put on disk (replica.py):
        # its first start need not fsync every file again (see _startup_sync_options).
        self.synced_copy = False
        # Per tool binary: syncfs may stand in for its own sync (manager/durable.py; asked once).
        self._flush_instead: Dict[str, bool] = {}
        # hot_standby_feedback forced on: a replica keeping copies of permanent logical slots.
        self.enforce_feedback = False
        # Copied logical slots not yet safe after a failover -> their catalog_xmin on the
        # primary once this replica's physical slot there had one (None: not read yet).
        self.unready_slots: Dict[str, Optional[int]] = {}

    def _recovery_on_disk(self) -> Optional[Dict[str, str]]:
        """Recovery settings of a standby left by an earlier daemon run."""
        if not os.path.exists(self.layout.standby_signal):
            return None
        try:
            with open(self.layout.main_conf) as f:
                return conffiles.parse_recovery_section(f.read())
        except OSError:
            return None

    # ---- facts ---------------------------------------------------------------

    @property
    def major(self) -> int:
        return major_version(self.layout) or DEFAULT_MAJOR

    def is_running(self) -> bool:
        return self.postmaster.pid() is not None

    def controldata(self) -> Optional[ControlData]:
        return read_controldata(self.bin["controldata"], self.settings.data_dir)

    def local_params(self, statement_timeout_ms: Optional[int] = 2000) -> Dict[str, Any]:
        return local_params(self.settings, statement_timeout_ms)

    def query(self, sql: str, args: Any = None, statement_timeout_ms: Optional[int] = 2000) -> List[Any]:
        return query(self.local_params(statement_timeout_ms), sql, args)

    def effective_parameters(self) -> Dict[str, str]:
        s = self.settings
        params = conffiles.effective_parameters(s.parameters, s.scope, s.listen_addresses, s.port, self.major)
        if self.sync_standby_names is not None:
            params["synchronous_standby_names"] = self.sync_standby_names
        if self.enforce_feedback:
            params["hot_standby_feedback"] = "on"
        params.update(self.parameter_overrides)
        return params

    # ---- config files --------------------------------------------------------

    def write_config(self) -> Dict[str, str]:
        """Write the main config (and standby.signal when following); returns the
        effective parameters (after the replica safety bumps)."""
        params = self.effective_parameters()
        if self.recovery is not None or os.path.exists(self.layout.standby_signal):
            self._apply_controldata_minimums(params)
        text = conffiles.render_main_conf(
            self.settings.custom_conf or self.layout.base_conf_name,
            params,
            self.hba_override or self.layout.hba_file,
            self.layout.ident_file,
            self.recovery,
        )
        write_file(self.layout.main_conf, text, 0o600)
        for lines, path in ((self.settings.pg_hba, self.layout.hba_file),
                            (self.settings.pg_ident, self.layout.ident_file)):
            if lines is not None:
                write_file(path, conffiles.render_lines_file(lines), 0o600)
        if self.recovery is not None:
            signal_file = self.layout.recovery_signal if self.archive_recovery else self.layout.standby_signal
            write_file(signal_file, "", 0o600)
        return params

    def _apply_controldata_minimums(self, params: Dict[str, str]) -> None:
        data = self.controldata()
        if data is None:
            return
        for guc, label in _CONTROLDATA_MINIMUMS.items():
            value = data.get(label)
            if value is None or not value.isdigit():
                continue
            if int(value) > int(params.get(guc, "0")):
                params[guc] = value
                self.pending_restart = True

    def set_following(self, host_port: Optional[Tuple[str, int]]) -> None:
        """Set the recovery section for following host:port (None = nobody)."""
        s = self.settings
        conninfo = None
        if host_port is not None:
            conninfo = conffiles.primary_conninfo(
                host_port[0], host_port[1], s.replication, s.name, s.pgpass, self.major
            )
            self.write_replication_pgpass(host_port)
        slot = conffiles.slot_name_from_member(s.name) if s.use_slots else None
        recovery_conf = dict(s.recovery_conf)
        sc = s.standby_cluster
        if sc is not None:
            # Standby cluster: its archive settings override recovery_conf on every member;
            # following the remote primary uses its slot (none when not configured) and delay.
            for key in ("restore_command", "archive_cleanup_command"):
                if getattr(sc, key):
                    recovery_conf[key] = getattr(sc, key)
            if self.follows_remote(host_port):
                slot = sc.primary_slot_name
                if sc.recovery_min_apply_delay:
                    recovery_conf["recovery_min_apply_delay"] = sc.recovery_min_apply_delay
        self.recovery = conffiles.recovery_parameters(conninfo, slot, recovery_conf)

    def follows_remote(self, host_port: Optional[Tuple[str, int]]) -> bool:
        """Is `host_port` the standby cluster's remote primary (None: the archive only)?"""
        sc = self.settings.standby_cluster
        return sc is not None and host_port == sc.host_port

    def write_replication_pgpass(self, host_port: Tuple[str, int]) -> None:
        s = self.settings
        write_pgpass(s.pgpass, [(host_port[0], host_port[1], s.replication.username, s.replication.password)])

    def remove_recovery_files(self) -> None:
        for path in (self.layout.standby_signal, self.layout.recovery_signal):
            if os.path.exists(path):
                os.unlink(path)

    # ---- process ---------------------------------------------------------------

    def isready_cmd(self) -> List[str]:
        s = self.settings
        return [self.bin["isready"], "-h", s.local_connect_host, "-p", str(s.port), "-d", s.database,
                "-U", s.superuser.username, "-t", "2"]

    def start(self, timeout: Optional[float] = None) -> bool:
        """Write the config and start; True once it accepts connections."""
        self.status_conn.resume()
        if self.is_running():
            self.state = STATE_RUNNING
            return True
        params = self.write_config()
        options = conffiles.cmdline_options(params) + self._startup_sync_options(params)
        self.state = STATE_STARTING
        self.pending_restart = False
        self.timeline_cache = self.timeline_mark = self.control_cache = None
        self.postmaster.spawn(self.layout.main_conf, options, self.settings.server_log)
        streams = bool(self.recovery and self.recovery.get("primary_conninfo"))
        ready = self.postmaster.wait_ready(self.isready_cmd(), self.settings.pg_ctl_timeout if timeout is None
                                           else timeout, wake_for=STANDBY_WAKE_FOR if streams else 0.0)
        if ready:
            self.state = STATE_RUNNING
            return True
        if ready is None and self.is_running():
            return False  # still starting; observe() will see it become ready
        self.state = STATE_START_FAILED
        return False

    def flush_instead_of_sync(self, tool: str) -> bool:
        """Run `tool` (initdb, basebackup) with --no-sync and flush its output with syncfs."""
        binary = self.bin[tool]  # keyed by path: a reload may point at other binaries
        if binary not in self._flush_instead:
            self._flush_instead[binary] = durable.usable() and durable.tool_has_no_sync(binary)
        return self._flush_instead[binary]

    def _startup_sync_options(self, params: Mapping[str, str]) -> List[str]:
        """A server whose control file does not say "shut down" - a base backup never
        does - fsyncs every file of its data directory before recovery, one by one
        (0.06-0.3 s for an empty cluster on the bench machine).  For the first start of a
        copy the clone already put on disk that is a second pass over clean files: one
        syncfs does (PG 14+ on Linux, and only when the operator did not choose
        recovery_init_sync_method).  Later starts use the configured method."""
        synced, self.synced_copy = self.synced_copy, False
        if not synced or self.major < 14 or not sys.platform.startswith("linux") \
                or "recovery_init_sync_method" in params:
            return []
        return ["--recovery_init_sync_method=syncfs"]

    def stop(self, mode: str = "fast", timeout: Optional[float] = None,
             on_safepoint: Optional[Callable[[], None]] = None) -> bool:
        """`on_safepoint()` is called once, as soon as the server can acknowledge no write
        (_takes_no_write: no client backend left, or the control file says shut down; WAL
        senders may still wait for their standbys) or it is gone, whichever comes first;
        at once when it is not running."""
        if mode not in STOP_SIGNALS:
            raise ManagerError(f"unknown stop mode {mode!r}")
        self.status_conn.pause()  # resumed by the next start()
        if not self.is_running():
            self.state = STATE_STOPPED
            if on_safepoint is not None:
                on_safepoint()
            return True
        self.state = STATE_STOPPING
        self.postmaster.stop(mode, self.settings.pg_ctl_timeout if timeout is None else timeout,
                             None if on_safepoint is None else self._safepoint_watch(on_safepoint))
        gone = not self.is_running()
        self.state = STATE_STOPPED if gone else "stop failed"
        self.timeline_cache = self.timeline_mark = self.control_cache = None
        return gone

    def _safepoint_watch(self, on_safepoint: Callable[[], None]) -> Callable[[bool], None]:
        fired = False

        def watch(gone: bool) -> None:
            nonlocal fired
            if not fired and (gone or self._takes_no_write()):
                fired = True
                on_safepoint()
        return watch

    def _takes_no_write(self) -> bool:
        """A stopping server can acknowledge no write: its shutdown checkpoint is on disk,
        or the postmaster has taken the shutdown request (pid file says stopping: no new
        backend) and no child that could write is left (WAL senders may still wait for
        standbys, and the shutdown checkpoint itself waits for them)."""
        if shut_down_on_disk(self.layout.pg_control):
            return True
        pid = self.postmaster.pid()
        return pid is not None and pm_status(self.postmaster.pidfile) == "stopping" and writers_left(pid) is False

    def reload(self) -> bool:
        if not self.is_running():
            return False
        self.write_config()
        return self.postmaster.signal(signal.SIGHUP)

    def local_query(self, sql: str, args: Any = None, deadline: float = KEPT_DEADLINE) -> List[Any]:
        """One statement over the kept local connection (the status query's, see
        statusconn.py), waiting a moment for it rather than paying for a new
        password-authenticated connection: the promotion runs its statements this way."""
        return self.status_conn.query(self.local_params(), sql, deadline, args=args, wait=KEPT_WAIT)

    def promote(self) -> bool:
        """Ask the server to promote, without waiting (wait_recovery_state does); False when
        it is not in recovery (nothing to promote).  Over the local connection (no process
        to spawn), the check and the request in one statement; with the ctl tool when that
        fails."""
        try:
            # NULL: not in recovery (CASE evaluates the branch only when taken).
            rows = self.local_query("SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(false) END")
            if rows and rows[0][0] is None:
                return False
            if rows and rows[0][0]:
                return True
        except ManagerError:
            pass
        run_tool([self.bin["ctl"], "promote", "-W", "-D", self.settings.data_dir], timeout=30)
        return True

    def in_recovery(self, dbname: Optional[str] = None) -> Optional[bool]:
        try:
            if dbname:
                rows = query(dict(self.local_params(), dbname=dbname), "SELECT pg_is_in_recovery()")
            else:
                rows = self.local_query("SELECT pg_is_in_recovery()")
        except ManagerError:
            return None
        return bool(rows[0][0]) if rows else None

    def wait_recovery_state(self, in_recovery: bool, timeout: float, dbname: Optional[str] = None,
                            interval: float = 0.2, first: float = 0.01, wake_every: float = 0.0) -> bool:
        """Poll until pg_is_in_recovery() equals `in_recovery`: every `first` s during the
        first second (a promotion mostly ends within a few tenths of one), then every
        `interval` s; over the kept local connection (`dbname`: one of its own while it
        lasts): a new connection per look costs more than the look.  `wake_every`: send
        the postmaster SIGHUP this often meanwhile (see facade.PROMOTE_WAKE_EVERY)."""
        started = time.monotonic()
        deadline = started + timeout
        woke = [started]

        def pause() -> None:
            now = time.monotonic()
            if wake_every and now - woke[0] >= wake_every:
                woke[0] = now
                self.postmaster.signal(signal.SIGHUP)
            time.sleep(min(interval, first) if now - started < 1.0 else interval)

        if dbname:
            return self._wait_recovery_own(in_recovery, dbname, deadline, pause)
        while True:
            try:
                rows = self.local_query("SELECT pg_is_in_recovery()",
                                        deadline=max(0.05, min(KEPT_DEADLINE, deadline - time.monotonic())))
                if rows and bool(rows[0][0]) is in_recovery:
                    return True
            except ManagerError:
                if not self.is_running():
                    return False
            if time.monotonic() >= deadline:
                return False
            pause()

    def _wait_recovery_own(self, in_recovery: bool, dbname: str, deadline: float,
                           pause: Callable[[], None]) -> bool:
        params = dict(self.local_params(), dbname=dbname)
        while True:
            try:
                with connect(params) as conn, conn.cursor() as cur:
                    while True:
                        cur.execute("SELECT pg_is_in_recovery()")
                        row = cur.fetchone()
                        if row is not None and bool(row[0]) is in_recovery:
                            return True
                        if time.monotonic() >= deadline:
                            return False
                        pause()
            except ManagerError:
                pass
            if time.monotonic() >= deadline or not self.is_running():
                return False
            pause()

    def checkpoint(self, params: Optional[Mapping[str, Any]] = None) -> None:
        with connect(dict(params or self.local_params(statement_timeout_ms=None))) as conn:
            with conn.cursor() as cur:
                cur.execute("CHECKPOINT")
