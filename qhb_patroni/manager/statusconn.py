"""One kept connection for the status query (the refresher runs it every second and the
loop every cycle): a new password-authenticated connection each time was most of the
daemon's idle CPU.  Every wait on it is bounded (non-blocking libpq and select), so a
stopped or hung server never holds the caller longer than `timeout`; on any error the
connection is dropped, and a kept one that fails is retried once on a fresh one (a
restarted server must not read as a failed status query)."""
from __future__ import annotations

import select
import threading
import time
from typing import Any, List, Mapping, Optional, Tuple

import psycopg2
import psycopg2.extensions

from .connection import ServerUnresponsive, query, query_within
from .settings import ManagerError

TIMEOUT = 3.0


class StatusConnection:
    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self._conn: Any = None
        self._key: Optional[Tuple[Tuple[str, str], ...]] = None
        self._lock = threading.Lock()
        self.paused = False  # while the server stops: a kept session would hold a smart shutdown

    def query(self, params: Mapping[str, Any], sql: str, deadline: Optional[float] = None, args: Any = None,
              wait: float = 0.0) -> List[Any]:
        """Rows of `sql` (with `args`); `deadline`: seconds for the whole call (default
        `timeout`), after which ServerUnresponsive (a stalled server is not retried on a
        fresh connection).  `wait`: seconds to wait for the kept connection while another
        thread uses it, before falling back to a one-off connection."""
        if self.paused or not (self._lock.acquire(timeout=wait) if wait > 0 else self._lock.acquire(blocking=False)):
            # the other thread has it, or the server stops: a one-off connection as before
            return query(params, sql, args) if deadline is None else query_within(params, sql, deadline, args)
        try:
            end = time.monotonic() + (self.timeout if deadline is None else deadline)
            key = tuple(sorted((k, str(v)) for k, v in params.items()))
            kept = self._conn is not None and self._key == key and not self._conn.closed
            try:
                return self._run(params, key, sql, args, kept, end)
            except ServerUnresponsive:
                raise
            except ManagerError:
                if not kept:
                    raise
                return self._run(params, key, sql, args, False, end)
        finally:
            self._lock.release()

    def pause(self) -> None:
        """Close the kept connection (after any query in flight, bounded by `timeout`) and keep
        none until resume(): the server is about to stop."""
        self.paused = True
        with self._lock:
            self.close()

    def resume(self) -> None:
        self.paused = False

    def close(self) -> None:
        conn, self._conn, self._key = self._conn, None, None
        if conn is not None:
            try:
                conn.close()
            except psycopg2.Error:
                pass

    def _run(self, params: Mapping[str, Any], key: Tuple[Tuple[str, str], ...], sql: str, args: Any,
             kept: bool, end: float) -> List[Any]:
        try:
            if not kept:
                self.close()
                self._conn = psycopg2.connect(async_=1, **dict(params))
                self._key = key
                self._wait(end)
            cur = self._conn.cursor()
            cur.execute(sql, args)
            self._wait(end)
            return list(cur.fetchall()) if cur.description is not None else []
        except ServerUnresponsive:
            self.close()
            raise
        except (psycopg2.Error, OSError, ManagerError) as exc:
            self.close()
            raise ManagerError(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__) from exc

    def _wait(self, end: float) -> None:
        while True:
            state = self._conn.poll()
            if state == psycopg2.extensions.POLL_OK:
                return
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise ServerUnresponsive("no answer from the server within the status query's deadline")
            fd = self._conn.fileno()
            if state == psycopg2.extensions.POLL_READ:
                select.select([fd], [], [], remaining)
            elif state == psycopg2.extensions.POLL_WRITE:
                select.select([], [fd], [], remaining)
            else:
                raise ManagerError(f"unexpected poll state {state}")
