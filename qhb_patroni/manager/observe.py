"""What the local server looks like right now, as core.local.LocalState and
runtime.status.ServerStatus.  Every probe here has a short timeout."""
from __future__ import annotations

import os
import time
from typing import Optional

from ..core.local import (
    DATA_PRESENT,
    STATE_CRASHED,
    STATE_RUNNING,
    STATE_STARTING,
    STATE_STOPPED,
    STATE_STOPPING,
    LocalState,
)
from ..core.model import ROLE_MASTER, ROLE_REPLICA, ROLE_STANDBY_LEADER
from ..runtime.status import ServerStatus
from . import conffiles, sql
from .controldata import ControlData
from .files import data_dir_state
from .rewind import replica_timeline
from .server import LocalServer
from .settings import ManagerError

CONTROLDATA_REUSE = 10.0  # seconds a running server's controldata answer is used again


def following_from_conninfo(conninfo: str) -> Optional[str]:
    """'host:port' a standby follows according to its primary_conninfo."""
    if not conninfo:
        return None
    try:
        values = conffiles.parse_conninfo(conninfo)
    except ValueError:
        return None
    host = values.get("host") or values.get("hostaddr")
    if not host:
        return None
    return f"{host}:{values.get('port') or '5432'}"


def _note_not_running(server: LocalServer, control: Optional[ControlData] = None) -> None:
    """The postmaster is gone: `stopped` after a clean shutdown by somebody else
    (`qhb_ctl stop` by the DBA, e.g. in maintenance mode), `crashed` when it went
    away without one (kill -9, immediate stop, a crash) or died while starting.
    The control file says which: a clean shutdown writes "shut down" ("shut down
    in recovery" on a standby) before the postmaster exits."""
    if server.state == STATE_RUNNING:
        if control is None:
            control = server.controldata()  # once, on the transition only
        server.state = STATE_STOPPED if control is not None and control.clean_shutdown else STATE_CRASHED
    elif server.state == STATE_STARTING:
        server.state = STATE_CRASHED
    elif server.state == STATE_STOPPING:
        server.state = STATE_STOPPED


def _role_from_recovery(server: LocalServer, in_recovery: bool) -> str:
    if in_recovery:
        return ROLE_STANDBY_LEADER if server.role == ROLE_STANDBY_LEADER else ROLE_REPLICA
    return ROLE_MASTER


def observe(server: LocalServer, deadline: Optional[float] = None,
            cluster_timeline: Optional[int] = None) -> LocalState:
    """`deadline`: seconds the status query may take (None: the connection's own timeouts).
    `cluster_timeline`: the cluster's timeline as the DCS tells it (see _replica_timeline).
    A server that was running and does not answer in time (or fails the query) while its
    postmaster lives is reported running with an unknown role: the core keeps the leader
    key renewed without waiting for it (core/running.py, PG_UNKNOWN_HOLDER)."""
    s = server.settings
    dstate, derr = data_dir_state(s.data_dir)
    if dstate != DATA_PRESENT or derr is not None:
        if not server.is_running():
            _note_not_running(server)
        return LocalState(data_dir=dstate, data_dir_error=derr, state=server.state, role=server.role)
    running = server.is_running()
    status: Optional[sql.StatusRow] = None
    if running:
        try:
            status = sql.read_status(server.local_params(), deadline, server.status_conn.query)
        except ManagerError:
            pass
    # A server that answers is the postmaster the cached answer was read from, still running:
    # what is taken from it then cannot have changed (see _controldata).
    control = _controldata(server, None if status is None else float("inf"))
    sysid = control.sysid if control else None
    cstate = control.state if control else None
    rewind_ok = bool(control and control.rewind_capable) and _rewind_binary_ok(server)
    if not running:
        _note_not_running(server, control)
        position = control.local_position() if control else None
        return LocalState(
            data_dir=dstate,
            state=server.state,
            role=server.role,
            running=False,
            timeline=position[0] if position else None,
            lsn=position[1] if position else None,
            sysid=sysid,
            controldata_state=cstate,
            pending_restart=server.pending_restart,
            rewind_possible=rewind_ok,
        )
    if status is None:
        if server.state == STATE_RUNNING:
            return LocalState(data_dir=dstate, state=server.state, role=server.role, running=True, in_recovery=None,
                              postmaster_alive=True, sysid=sysid, controldata_state=cstate,
                              pending_restart=server.pending_restart, rewind_possible=rewind_ok)
        if server.state == STATE_STOPPED:
            server.state = STATE_STARTING  # a postmaster that does not answer yet
        return LocalState(data_dir=dstate, state=server.state, role=server.role, running=False,
                          postmaster_alive=True, sysid=sysid, controldata_state=cstate,
                          rewind_possible=rewind_ok)
    if server.state != STATE_STOPPING:
        server.state = STATE_RUNNING
    server.role = _role_from_recovery(server, status.in_recovery)
    if status.in_recovery:
        timeline = _replica_timeline(server, status, cluster_timeline)
        receive = status.received_location or 0
        replay = status.replayed_location or 0
        lsn: Optional[int] = max(receive, replay) or None
    else:
        timeline = status.timeline
        lsn = status.wal_location
    return LocalState(
        data_dir=dstate,
        state=server.state,
        role=server.role,
        running=True,
        postmaster_alive=True,
        in_recovery=status.in_recovery,
        timeline=timeline,
        lsn=lsn,
        sysid=status.sysid or sysid,
        controldata_state=cstate,
        following=following_from_conninfo(status.primary_conninfo) if status.in_recovery else None,
        slot_name=(status.primary_slot_name or None) if status.in_recovery else None,
        wal_receiver=status.wal_receiver if status.in_recovery else None,
        pending_restart=status.pending_restart or server.pending_restart,
        rewind_possible=rewind_ok,
        postmaster_start_time=status.postmaster_start_time,
        slots=status.slots,
        slot_details=status.slot_details,
        feedback_enforced=server.enforce_feedback,
        unready_slots=tuple(sorted(list(server.unready_slots))),
    )


def _controldata(server: LocalServer, reuse: Optional[float] = None) -> Optional[ControlData]:
    """pg_control through the controldata tool: a new process each time, 5-15 ms of every
    cycle under load and on the failover's path.  While the same postmaster runs, an
    answer younger than `reuse` seconds is used again: what a running server's
    observation takes from it (system id, whether a rewind is possible) does not change
    while it runs (wal_log_hints and checksums change only with a restart), and the
    control file's state is read afresh once it no longer runs or answers.  The caller
    passes an unlimited `reuse` for a server whose status query has just answered (an
    idle daemon then starts no process per cycle), None (CONTROLDATA_REUSE) otherwise."""
    reuse = CONTROLDATA_REUSE if reuse is None else reuse
    pid = server.postmaster.pid()
    now = time.monotonic()
    cached = server.control_cache
    if pid is not None and cached is not None and cached[0] == pid and 0 <= now - cached[1] < reuse:
        return cached[2]
    control = server.controldata()
    server.control_cache = (pid, now, control) if pid is not None and control is not None else None
    return control


def _replica_timeline(server: LocalServer, status: sql.StatusRow,
                      cluster_timeline: Optional[int] = None) -> Optional[int]:
    """The timeline a replica replays.  IDENTIFY_SYSTEM needs a new (password-authenticated)
    replication connection, which under load costs more than the whole rest of the look and
    sits on the failover's path; a replica's timeline changes only by replaying WAL, so the
    last answer stands while the postmaster and the replay position are the ones it was
    read at (a standby whose primary is gone replays nothing).  It stands too, for the same
    postmaster, while it equals `cluster_timeline` (Patroni's rule): a replica's timeline
    never goes back, and one beyond the cluster's is only possible after a promotion the DCS
    does not show yet, so no comparison with the cluster's timeline comes out differently;
    this spares the connection when the replay position moves (writes, the old primary's
    shutdown checkpoint on a switchover's path)."""
    mark = (status.postmaster_start_time, status.replayed_location)
    cached, seen = server.timeline_cache, server.timeline_mark
    if cached is not None and seen == mark and mark[1] is not None:
        return cached
    if (cached is not None and seen is not None and mark[0] is not None and seen[0] == mark[0]
            and cluster_timeline is not None and cached == cluster_timeline):
        server.timeline_mark = mark
        return cached
    identified = replica_timeline(server)
    server.timeline_cache = identified or status.received_tli
    server.timeline_mark = mark if identified else None
    return server.timeline_cache


def _rewind_binary_ok(server: LocalServer) -> bool:
    return os.access(server.bin["rewind"], os.X_OK)


def server_status(server: LocalServer, deadline: Optional[float] = None) -> ServerStatus:
    """The status document's database part: one SQL round trip when the postmaster runs
    (bounded by `deadline` seconds when given)."""
    pid = server.postmaster.pid()
    if pid is None:
        _note_not_running(server)
        return ServerStatus(state=server.state, role=server.role)
    try:
        status = sql.read_status(server.local_params(), deadline, server.status_conn.query)
    except ManagerError:
        return ServerStatus(state=server.state, role=server.role, query_ok=False, postmaster_pid=pid)
    if server.state in (STATE_STOPPED, STATE_STARTING, STATE_CRASHED):
        server.state = STATE_RUNNING
    if status.in_recovery:
        timeline = server.timeline_cache
        if timeline is None:
            timeline = replica_timeline(server) or status.received_tli
            server.timeline_cache = timeline
    else:
        timeline = status.timeline
    received = status.received_location if status.received_location is not None else status.replayed_location
    return ServerStatus(
        state=server.state,
        role=_role_from_recovery(server, status.in_recovery),
        query_ok=True,
        in_recovery=status.in_recovery,
        postmaster_start_time=status.postmaster_start_time,
        server_version=status.server_version,
        wal_location=None if status.in_recovery else status.wal_location,
        received_location=received if status.in_recovery else None,
        replayed_location=status.replayed_location if status.in_recovery else None,
        replayed_timestamp=status.replayed_timestamp if status.in_recovery else None,
        replay_paused=status.replay_paused,
        timeline=timeline,
        replication=status.replication,
        pending_restart=status.pending_restart or server.pending_restart,
        sysid=status.sysid,
        postmaster_pid=pid,
    )
