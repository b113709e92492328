"""The chaos harness's clients: each inserts unique, increasing keys into the node it
believes is primary, over its own connection, and records every acknowledged insert.

A client keeps writing to its node while inserts succeed; after an error or a
timeout, and otherwise every `recheck` seconds (like a load balancer's health
check), it asks every node's REST API (`GET /primary`) again and moves to the node
that answers.  A deposed primary that still accepts writes (its daemon stalled)
therefore sees the clients drift away one by one, and the writes that overlap on
two nodes are what the checker reports as a split brain.  Inserts run on
non-blocking connections with a deadline: a write that neither commits nor fails
in time is abandoned by closing the socket, never cancelled (a cancelled wait for
a synchronous standby commits locally and would report success), and counts as
indeterminate, not acknowledged.
"""
from __future__ import annotations

import itertools
import select
import threading
import time
from typing import Any, List, Optional, Sequence

import psycopg2
import psycopg2.extensions as ext
from chaos_check import Ack

from tests.e2e.harness import Node

TABLE = "chaos_rows"


def _wait(conn: Any, deadline: float) -> None:
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline passed")
        if state == ext.POLL_READ:
            select.select([conn.fileno()], [], [], left)
        elif state == ext.POLL_WRITE:
            select.select([], [conn.fileno()], [], left)


class Workload:
    def __init__(self, nodes: Sequence[Node], clients: int = 4, interval: float = 0.02,
                 op_timeout: float = 5.0, recheck: float = 1.0) -> None:
        self.nodes = list(nodes)
        self.recheck = recheck
        self.interval = interval
        self.op_timeout = op_timeout
        self.acks: List[Ack] = []
        self.indeterminate = 0
        self.refused = 0
        self._keys = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(c,), daemon=True) for c in range(clients)]

    def setup(self, primary: Node) -> None:
        with psycopg2.connect(primary.dsn()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, client int NOT NULL, "
                        "at timestamptz NOT NULL DEFAULT now())")

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.op_timeout + 5)

    def _discover(self, client: int) -> Optional[Node]:
        n = len(self.nodes)
        for k in range(n):  # each client starts its scan elsewhere, spreading the clients
            node = self.nodes[(client + k) % n]
            if node.is_primary():
                return node
        return None

    def _client(self, client: int) -> None:
        conn: Any = None
        node: Optional[Node] = None
        checked = time.monotonic()
        while not self._stop.is_set():
            if conn is not None and time.monotonic() - checked >= self.recheck:
                checked = time.monotonic()
                found = self._discover(client)
                if found is not None and found is not node:
                    self._close(conn)
                    conn = None
            if conn is None:
                node = self._discover(client)
                checked = time.monotonic()
                if node is None:
                    self._stop.wait(0.1)
                    continue
                try:
                    conn = psycopg2.connect(node.dsn(), async_=1)
                    _wait(conn, time.monotonic() + self.op_timeout)
                except Exception:
                    self._close(conn)
                    conn = None
                    self._stop.wait(0.1)
                    continue
            with self._lock:
                key = next(self._keys)
            send = time.monotonic()
            try:
                cur = conn.cursor()
                cur.execute(f"INSERT INTO {TABLE} (id, client) VALUES (%s, %s)", (key, client))
                _wait(conn, send + self.op_timeout)
                assert node is not None
                self.acks.append(Ack(client, key, node.name, send, time.monotonic()))
            except TimeoutError:
                self.indeterminate += 1
                self._close(conn)
                conn = None
            except psycopg2.Error as exc:
                # A refusal (read-only, shutting down) did not commit; a broken connection may have.
                if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
                    self.indeterminate += 1
                else:
                    self.refused += 1
                self._close(conn)
                conn = None
            self._stop.wait(self.interval)
        self._close(conn)

    @staticmethod
    def _close(conn: Any) -> None:
        try:
            if conn is not None:
                conn.close()
        except Exception:
            pass


def keys_on(node: Node) -> set[int]:
    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {TABLE}")
        return {int(r[0]) for r in cur.fetchall()}


def wal_position(node: Node) -> int:
    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_current_wal_lsn() - '0/0'")
        row = cur.fetchone()
        return int(row[0]) if row else 0
