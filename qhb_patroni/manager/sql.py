"""SQL statements the manager runs and the helpers that run them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from psycopg2 import sql as pgsql

from ..core.local import SlotState
from .conffiles import RECOVERY_GUCS, parse_history
from .connection import connect, query, query_within
from .settings import ManagerError

# One round trip with everything observe() and the status document need (PG 10+).
STATUS_QUERY = """
SELECT pg_postmaster_start_time(),
       current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint END,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0')::bigint,
       pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint,
       pg_last_xact_replay_timestamp(),
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       (SELECT json_agg(r) FROM (SELECT usename, application_name, client_addr, state, sync_state,
                                        sync_priority
                                   FROM pg_stat_replication ORDER BY application_name) r),
       (SELECT coalesce(bool_or(pending_restart), false) FROM pg_settings
         WHERE name <> ALL (ARRAY[{recovery_gucs}])),
       (SELECT system_identifier::text FROM pg_control_system()),
       (SELECT coalesce(array_agg(slot_name::text ORDER BY slot_name), '{}')
          FROM pg_replication_slots WHERE slot_type = 'physical'),
       current_setting('primary_conninfo', true),
       current_setting('primary_slot_name', true),
       (SELECT received_tli FROM pg_stat_wal_receiver LIMIT 1),
       (SELECT json_agg(s) FROM (SELECT slot_name, slot_type, database, plugin, temporary,
                                        pg_wal_lsn_diff(restart_lsn, '0/0')::bigint AS restart_lsn,
                                        pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint AS confirmed_flush_lsn
                                   FROM pg_replication_slots ORDER BY slot_name) s),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver)
""".replace(
    # The recovery settings are the daemon's to manage (a promotion removes them, which the
    # server reports as "pending restart"): they never make a restart pending for the DBA.
    "{recovery_gucs}", ", ".join(f"'{name}'" for name in sorted(RECOVERY_GUCS))
)


@dataclass(frozen=True)
class StatusRow:
    postmaster_start_time: Optional[str]
    server_version: int
    in_recovery: bool
    wal_location: Optional[int]
    received_location: Optional[int]
    replayed_location: Optional[int]
    replayed_timestamp: Optional[str]
    replay_paused: bool
    timeline: Optional[int]
    replication: List[Dict[str, Any]] = field(default_factory=list)
    pending_restart: bool = False
    sysid: Optional[str] = None
    slots: Tuple[str, ...] = ()
    primary_conninfo: str = ""
    primary_slot_name: str = ""
    received_tli: Optional[int] = None
    slot_details: Tuple[SlotState, ...] = ()
    wal_receiver: bool = False  # a WAL receiver process runs (standby)


def _int_or_none(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def read_status(params: Mapping[str, Any], deadline: Optional[float] = None,
                run: Optional[Callable[[Mapping[str, Any], str, Optional[float]], List[Any]]] = None) -> StatusRow:
    """The status row; with `deadline` (seconds) ServerUnresponsive when it takes longer.
    `run(params, sql, deadline)`: how to run the query (default: a connection of its own)."""
    if run is not None:
        rows = run(params, STATUS_QUERY, deadline)
    else:
        rows = query(params, STATUS_QUERY) if deadline is None else query_within(params, STATUS_QUERY, deadline)
    if not rows:
        raise ManagerError("status query returned no row")
    r = rows[0]
    replication = r[9]
    if isinstance(replication, str):
        replication = json.loads(replication)
    return StatusRow(
        postmaster_start_time=None if r[0] is None else str(r[0]),
        server_version=int(r[1]),
        in_recovery=bool(r[2]),
        wal_location=_int_or_none(r[3]),
        received_location=_int_or_none(r[4]),
        replayed_location=_int_or_none(r[5]),
        replayed_timestamp=None if r[6] is None else str(r[6]),
        replay_paused=bool(r[7]),
        timeline=_int_or_none(r[8]),
        replication=list(replication or []),
        pending_restart=bool(r[10]),
        sysid=r[11],
        slots=tuple(r[12] or ()),
        primary_conninfo=r[13] or "",
        primary_slot_name=r[14] or "",
        received_tli=_int_or_none(r[15]),
        slot_details=_slot_details(r[16]),
        wal_receiver=bool(r[17]),
    )


def _slot_details(raw: Any) -> Tuple[SlotState, ...]:
    rows = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(
        SlotState(
            name=str(row["slot_name"]), type=str(row["slot_type"]), database=row.get("database"),
            plugin=row.get("plugin"), temporary=bool(row.get("temporary")),
            restart_lsn=_int_or_none(row.get("restart_lsn")),
            confirmed_flush_lsn=_int_or_none(row.get("confirmed_flush_lsn")),
        )
        for row in rows or ()
    )


def identify_system(params: Mapping[str, Any]) -> Tuple[str, int, int]:
    """IDENTIFY_SYSTEM over a replication connection -> (sysid, timeline, xlogpos)."""
    from .conffiles import parse_lsn

    rows = query(params, "IDENTIFY_SYSTEM", replication=True)
    if not rows:
        raise ManagerError("IDENTIFY_SYSTEM returned no row")
    sysid, timeline, xlogpos = rows[0][0], rows[0][1], rows[0][2]
    return str(sysid), int(timeline), parse_lsn(str(xlogpos))


def timeline_history(params: Mapping[str, Any], timeline: int) -> List[Tuple[int, int, str]]:
    """TIMELINE_HISTORY <tl> over a replication connection, parsed."""
    if timeline <= 1:
        return []
    rows = query(params, f"TIMELINE_HISTORY {int(timeline)}", replication=True)
    if not rows:
        return []
    content = rows[0][1]
    if isinstance(content, (bytes, bytearray, memoryview)):
        content = bytes(content).decode("utf-8")
    return parse_history(str(content))


QUIET_SESSION = (
    "SET log_statement TO 'none'",
    "SET log_min_duration_statement TO -1",
    "SET log_min_error_statement TO 'log'",
    "SET synchronous_commit TO 'local'",
)


def _role_options(options: Sequence[str]) -> List[str]:
    result = [str(o).strip().upper() for o in options]
    if "LOGIN" not in result and "NOLOGIN" not in result:
        result.append("LOGIN")
    return result


def quiet_session(cur: Any) -> None:
    """No statement logging (passwords follow) and local commits, in one round trip."""
    cur.execute("; ".join(QUIET_SESSION))


def create_or_alter_role(cur: Any, name: str, password: Optional[str], options: Sequence[str]) -> None:
    """CREATE ROLE or ALTER ROLE with options and password, on a cursor of a session made
    quiet by quiet_session() (the post-bootstrap steps share one connection)."""
    opts = _role_options(options)
    for opt in opts:
        if not opt.replace(" ", "").isalnum():
            raise ManagerError(f"bad role option {opt!r}")
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    text = pgsql.SQL("{} ROLE {} WITH {}").format(
        pgsql.SQL(verb), pgsql.Identifier(name), pgsql.SQL(" ".join(opts))
    )
    if password is not None:
        text = pgsql.SQL("{} PASSWORD {}").format(text, pgsql.Literal(password))
    cur.execute(text)


REWIND_GRANTS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)


def grant_rewind(cur: Any, name: str) -> None:
    """The functions the rewind tool needs, granted to `name` in one statement."""
    cur.execute(pgsql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
        pgsql.SQL(", ").join(pgsql.SQL(function) for function in REWIND_GRANTS), pgsql.Identifier(name)))


def ensure_database(params: Mapping[str, Any], name: str) -> bool:
    """CREATE DATABASE when missing; True when it was created."""
    with connect(params) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone():
                return False
            cur.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
            return True


def physical_slots(params: Mapping[str, Any]) -> List[str]:
    rows = query(params, "SELECT slot_name::text FROM pg_replication_slots WHERE slot_type = 'physical'")
    return sorted(str(r[0]) for r in rows)


def create_physical_slots(params: Mapping[str, Any], names: Sequence[str],
                          run: Optional[Callable[[str, Any], List[Any]]] = None) -> List[str]:
    """Create the physical slots among `names` that do not exist yet, in one round trip;
    the names created, sorted.  `run(sql, args)`: how to run it (default: a connection
    of its own)."""
    rows = (run or (lambda text, args: query(params, text, args)))(
        "WITH missing AS MATERIALIZED (SELECT n FROM unnest(%s::text[]) AS n "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = n)) "
        "SELECT s.slot_name::text FROM missing, LATERAL pg_create_physical_replication_slot(missing.n, true) AS s "
        "ORDER BY 1",
        (sorted(set(names)),),
    )
    return [str(r[0]) for r in rows]


def create_physical_slot(params: Mapping[str, Any], name: str) -> None:
    query(
        params,
        "SELECT pg_create_physical_replication_slot(%s, true) "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
        (name, name),
    )


def drop_slot(params: Mapping[str, Any], name: str) -> Tuple[bool, bool]:
    """Drop the slot unless a consumer is connected: (active, dropped)."""
    rows = query(
        params,
        "WITH s AS (SELECT slot_name, active FROM pg_replication_slots WHERE slot_name = %s), "
        "d AS (SELECT pg_drop_replication_slot(slot_name), true AS dropped FROM s WHERE NOT active) "
        "SELECT s.active, coalesce(d.dropped, false) FROM s LEFT JOIN d ON true",
        (name,),
    )
    return (bool(rows[0][0]), bool(rows[0][1])) if rows else (False, False)


def create_logical_slot(params: Mapping[str, Any], name: str, plugin: str) -> None:
    query(
        params,
        "SELECT pg_create_logical_replication_slot(%s, %s) "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
        (name, plugin, name),
    )


def advance_slot(params: Mapping[str, Any], name: str, lsn: str) -> None:
    query(params, "SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (name, lsn))


def logical_slot_files(params: Mapping[str, Any], names: Sequence[str]) -> List[Tuple[str, str, str, str, bytes]]:
    """(name, type, database, plugin, state file) of these slots on a primary."""
    rows = query(
        params,
        "SELECT slot_name::text, slot_type, datname::text, plugin::text, "
        "pg_read_binary_file('pg_replslot/' || slot_name || '/state') "
        "FROM pg_get_replication_slots() JOIN pg_database ON datoid = oid "
        "WHERE NOT pg_is_in_recovery() AND slot_name = ANY(%s)",
        (list(names),),
    )
    return [(str(r[0]), str(r[1]), str(r[2]), str(r[3]), bytes(r[4])) for r in rows]


def catalog_xmins(params: Mapping[str, Any], names: Sequence[str]) -> Dict[str, Optional[int]]:
    """catalog_xmin of these slots (None when not set); a missing slot is absent."""
    rows = query(params, "SELECT slot_name::text, catalog_xmin::text::bigint FROM pg_get_replication_slots() "
                         "WHERE slot_name = ANY(%s)", (list(names),))
    return {str(r[0]): _int_or_none(r[1]) for r in rows}
