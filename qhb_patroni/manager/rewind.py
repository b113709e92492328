"""Divergence check against the leader's timeline history, and rewind."""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from typing import Optional, Tuple

from . import conffiles, sql
from .connection import host_port_from_url, remote_params
from .files import remove_data_directory, write_pgpass
from .process import clean_env, run_tool
from .server import LocalServer
from .settings import ManagerError

_RECORD_LSN = re.compile(r"lsn: ([0-9A-Fa-f]+/[0-9A-Fa-f]+), prev ([0-9A-Fa-f]+/[0-9A-Fa-f]+)")
_INVALID_AT = re.compile(r"invalid record length at ([0-9A-Fa-f]+/[0-9A-Fa-f]+): wanted 24, got 0")


@dataclass(frozen=True)
class LocalPosition:
    timeline: int
    lsn: int
    stopped_primary: bool  # cleanly shut down former primary: lsn is its shutdown checkpoint


@dataclass(frozen=True)
class DivergenceResult:
    needed: Optional[bool]
    detail: str


def local_position(server: LocalServer) -> Tuple[Optional[LocalPosition], str]:
    """Where the local cluster ends: from the running server or from control data."""
    if server.is_running():
        try:
            status = sql.read_status(server.local_params())
        except ManagerError as exc:
            return None, f"local status query failed: {exc}"
        if not status.in_recovery:
            if status.timeline is None or status.wal_location is None:
                return None, "running primary without timeline/LSN"
            return LocalPosition(status.timeline, status.wal_location, False), ""
        timeline = replica_timeline(server) or status.received_tli
        lsn = status.replayed_location
        if timeline is None or lsn is None:
            return None, "running replica without timeline/LSN"
        return LocalPosition(timeline, lsn, False), ""
    data = server.controldata()
    if data is None:
        return None, "control data not readable"
    state = data.state
    if state in ("shut down in recovery", "in archive recovery"):
        position = data.local_position()
        if position is None:
            return None, "control data has no recovery position"
        return LocalPosition(position[0], position[1], False), ""
    if state == "shut down":
        if data.checkpoint_timeline is None or data.checkpoint_lsn is None:
            return None, "control data has no checkpoint"
        return LocalPosition(data.checkpoint_timeline, data.checkpoint_lsn, True), ""
    return None, f"cluster state is {state!r}, not shut down cleanly"


def replica_timeline(server: LocalServer) -> Optional[int]:
    """Timeline of the running replica via IDENTIFY_SYSTEM on a local replication connection."""
    s = server.settings
    for credentials in (s.replication, s.superuser):
        params = remote_params(f"postgres://{_url_host(s.local_host)}:{s.port}/{s.database}", credentials,
                               s.database)
        params["host"] = s.local_replication_host  # the socket directory with use_unix_socket_repl
        try:
            return sql.identify_system(params)[1]
        except ManagerError:
            continue
    return None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def checkpoint_end(server: LocalServer, timeline: int, lsn: int) -> Optional[int]:
    """End of the checkpoint record at `lsn` (start of whatever would follow it)."""
    cmd = [server.bin["waldump"], "-p", server.layout.wal_dir, "-t", str(timeline),
           "-s", conffiles.format_lsn(lsn), "-n", "2"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=clean_env(), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    records = _RECORD_LSN.findall(proc.stdout)
    if len(records) >= 2 and conffiles.parse_lsn(records[1][1]) == lsn:
        return conffiles.parse_lsn(records[1][0])
    match = _INVALID_AT.search(proc.stderr)
    return conffiles.parse_lsn(match.group(1)) if match else None


def check_divergence(server: LocalServer, leader_url: str) -> DivergenceResult:
    s = server.settings
    local, why = local_position(server)
    if local is None:
        return DivergenceResult(None, why)
    params = remote_params(leader_url, s.replication, s.database)
    try:
        _, leader_tl, _ = sql.identify_system(params)
        history = sql.timeline_history(params, leader_tl) if local.timeline < leader_tl else []
    except ManagerError as exc:
        return DivergenceResult(None, f"leader not reachable over replication: {exc}")
    if local.timeline > leader_tl:
        return DivergenceResult(True, f"local timeline {local.timeline} is ahead of the leader's {leader_tl}")
    if local.timeline == leader_tl:
        return DivergenceResult(False, f"same timeline {leader_tl}")
    for parent, switchpoint, _ in history:
        if parent == local.timeline:
            where = f"timeline {local.timeline} lsn {conffiles.format_lsn(local.lsn)}, " \
                    f"switch point {conffiles.format_lsn(switchpoint)}"
            if not local.stopped_primary:
                return DivergenceResult(local.lsn > switchpoint, where)
            if local.lsn >= switchpoint:
                return DivergenceResult(True, where)
            end = checkpoint_end(server, local.timeline, local.lsn)
            return DivergenceResult(end != switchpoint, f"{where}, checkpoint end "
                                    f"{'unknown' if end is None else conffiles.format_lsn(end)}")
        if parent > local.timeline:
            break
    return DivergenceResult(True, f"local timeline {local.timeline} is not in the leader's history")


def rewind_possible(server: LocalServer) -> bool:
    """The rewind tool runs and the cluster keeps hint bits in WAL (or has checksums)."""
    if not os.access(server.bin["rewind"], os.X_OK):
        return False
    data = server.controldata()
    return data is not None and data.rewind_capable


def ensure_clean_shutdown(server: LocalServer) -> None:
    if server.is_running() and not server.stop("fast"):
        raise ManagerError("could not stop the server before rewind")
    data = server.controldata()
    if data is None:
        raise ManagerError("control data not readable")
    if data.clean_shutdown:
        return
    # Crash recovery in single-user mode brings the cluster to a clean state.
    server.remove_recovery_files()
    recovery, server.recovery = server.recovery, None
    try:
        server.write_config()
    finally:
        server.recovery = recovery
    server.postmaster.run_single_user(server.layout.main_conf, timeout=server.settings.pg_ctl_timeout * 10)


def rewind(server: LocalServer, leader_url: str) -> None:
    """Stop cleanly, CHECKPOINT on the leader, run the rewind tool. The caller follows afterwards."""
    s = server.settings
    host, port = host_port_from_url(leader_url)
    ensure_clean_shutdown(server)
    try:
        leader_params = remote_params(leader_url, s.superuser, s.database)
        leader_params.pop("options", None)  # no statement_timeout for CHECKPOINT
        server.checkpoint(leader_params)
    except ManagerError:
        pass  # the rewind tool reports a source that is unusable for it
    write_pgpass(s.pgpass, [(host, port, s.rewind.username, s.rewind.password)])
    dsn_params = {"dbname": s.database, "user": s.rewind.username, "host": host, "port": port,
                  "connect_timeout": 3}
    for key, value in s.rewind.extra.items():
        if key.startswith("ssl") or key in ("gssencmode", "channel_binding"):
            dsn_params[key] = value
    cmd = [server.bin["rewind"], "-D", s.data_dir, f"--source-server={conffiles.build_dsn(dsn_params)}"]
    env = dict(clean_env(), PGPASSFILE=s.pgpass)
    try:
        run_tool(cmd, timeout=24 * 3600, env=env)
    except ManagerError:
        if s.remove_data_directory_on_rewind_failure or s.remove_data_directory_on_diverged_timelines:
            remove_data_directory(s.data_dir)
        raise
