"""Direct write probes: a connection per member, opened beforehand, that writes as soon as
(and for as long as) its member takes writes.

The benchmarks' writer (tests/e2e/harness.py) finds the primary through the members'
REST API and writes every 50 ms, so its figures carry up to 50 ms of its own period on
each side of a gap, plus its reconnect.  A probe asks its member every PERIOD seconds
whether it is in recovery and, when it is not, inserts a row: its first and last
acknowledged writes time the cluster, not a client's routing.  It is the earliest a
client already connected to a member could write there.
"""
from __future__ import annotations

import threading
import time
from typing import Any, List, Optional

PERIOD = 0.005


class WriteProbe(threading.Thread):
    """Writes into `node` every PERIOD seconds while it is a primary; `acks` holds the
    (monotonic) times of acknowledged inserts.  `once`: stop after the first one.
    `async_commit`: synchronous_commit off for the probe's session, so that a probe on a
    busy primary does not add a WAL flush every PERIOD (a clean switchover flushes them
    all with its shutdown checkpoint)."""

    def __init__(self, node: Any, once: bool = False, async_commit: bool = False) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.once = once
        self.async_commit = async_commit
        self.acks: List[float] = []
        self.stop = False
        self.ready = threading.Event()

    @property
    def first(self) -> Optional[float]:
        return self.acks[0] if self.acks else None

    def run(self) -> None:
        import psycopg2

        conn = None
        while not self.stop and not (self.once and self.acks):
            try:
                if conn is None:
                    conn = psycopg2.connect(self.node.dsn())
                    conn.autocommit = True
                    if self.async_commit:
                        with conn.cursor() as cur:
                            cur.execute("SET synchronous_commit = off")
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_is_in_recovery()")
                    row = cur.fetchone()
                    if row and not row[0] and self.ready.is_set():
                        cur.execute("INSERT INTO bench_probe DEFAULT VALUES")
                        self.acks.append(time.monotonic())
                self.ready.set()
            except Exception:
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(PERIOD)
        if conn is not None:
            conn.close()


def start_probes(nodes: List[Any], primary: Any, once: bool = False, async_commit: bool = False) -> List[WriteProbe]:
    """One probe per node in `nodes`, each connected and answering before this returns;
    the probes' table is created on `primary`."""
    import psycopg2

    with psycopg2.connect(primary.dsn()) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
    probes = [WriteProbe(n, once=once, async_commit=async_commit) for n in nodes]
    for p in probes:
        p.start()
    for p in probes:
        p.ready.wait(10)
    return probes


def stop_probes(probes: List[WriteProbe]) -> None:
    for p in probes:
        p.stop = True
    for p in probes:
        p.join(5)
