"""The local primary's synchronous replication: what pg_stat_replication and
synchronous_standby_names say (for the core's ProbeReplication)."""
from __future__ import annotations

import time
from typing import Any, Callable, List, Mapping, Sequence

from ..core.local import ReplicationRow, ReplicationState
from ..core.syncrep import standby_position
from .connection import query

_POSITION = """SELECT pg_catalog.pg_current_wal_lsn() - '0/0'::pg_catalog.pg_lsn,
       pg_catalog.current_setting('synchronous_standby_names'),
       pg_catalog.current_setting('synchronous_commit')"""

_ROWS = """SELECT application_name, state, sync_state,
       COALESCE(write_lsn - '0/0'::pg_catalog.pg_lsn, 0),
       COALESCE(flush_lsn - '0/0'::pg_catalog.pg_lsn, 0),
       COALESCE(replay_lsn - '0/0'::pg_catalog.pg_lsn, 0)
  FROM pg_catalog.pg_stat_replication
 ORDER BY application_name"""

CONFIRM_TIMEOUT = 2.0  # seconds a confirmation waits for candidates (as Patroni's 2 s)


def _rows(params: Mapping[str, Any]) -> List[ReplicationRow]:
    return [
        ReplicationRow(name=str(r[0] or ""), state=str(r[1] or ""), sync_state=str(r[2] or ""),
                       write_lsn=int(r[3]), flush_lsn=int(r[4]), replay_lsn=int(r[5]))
        for r in query(params, _ROWS)
    ]


def _reached(rows: Sequence[ReplicationRow], names: Sequence[str], lsn: int, commit: str) -> bool:
    by_name = {r.name: r for r in rows}
    for name in names:
        row = by_name.get(name)
        if row is None or row.sync_state != "sync" or standby_position(row, commit) < lsn:
            return False
    return True


def replication_state(
    params: Mapping[str, Any],
    confirm: Sequence[str] = (),
    timeout: float = CONFIRM_TIMEOUT,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplicationState:
    """Rows and settings of the running primary.  With `confirm`: the WAL position
    is read first, then the rows are re-read (every 0.1 s, up to `timeout`) until
    every named standby is synchronous and has reached that position."""
    position = query(params, _POSITION)[0]
    lsn, names, commit = int(position[0]), str(position[1]), str(position[2])
    rows = _rows(params)
    if confirm:
        deadline = time.monotonic() + timeout
        while not _reached(rows, confirm, lsn, commit) and time.monotonic() < deadline:
            sleep(0.1)
            rows = _rows(params)
    return ReplicationState(rows=tuple(rows), standby_names=names, synchronous_commit=commit, lsn=lsn,
                            confirm_lsn=lsn if confirm else None)
