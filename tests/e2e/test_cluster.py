"""End to end: 3 daemons, real etcd (v2 API), real PostgreSQL 15 behind QHB names.

The tests share one cluster and run in file order, each starting from "all
three members running with one primary": bootstrap, list, kill -9 failover,
rejoin by rewind, SIGTERM handover, etcd outage.
"""
from __future__ import annotations

import json
import os
import time
from typing import Iterator

import pytest

from tests.e2e.harness import LocalCluster, Node, Writer, healthy, in_recovery, patronictl, rows_on, running, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("cluster"))
    with running(LocalCluster(base, etcd.host_port, ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT)) as c:
        yield c


def test_bootstrap_and_list(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    st = primary.status()
    assert st is not None and st["role"] == "master" and st["patroni"]["version"] == "3.0.2"
    replicas = [n for n in cluster.nodes if n is not primary]
    for r in replicas:
        rst = r.status()
        assert rst is not None and rst["role"] == "replica"
        assert rst["database_system_identifier"] == st["database_system_identifier"]
    # QHB naming on disk: qhb.conf includes qhb.base.conf; qhb_hba.conf carries the bootstrap lines.
    conf = open(os.path.join(primary.data_dir, "qhb.conf"), encoding="utf-8").read()
    assert "include 'qhb.base.conf'" in conf
    hba = open(os.path.join(primary.data_dir, "qhb_hba.conf"), encoding="utf-8").read()
    assert "host replication replicator 127.0.0.1/32 md5" in hba

    out = patronictl(cluster, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"+ Cluster: {cluster.scope} ({st['database_system_identifier']})")
    body = [ln for ln in lines if ln.startswith("| node")]
    assert len(body) == 3
    assert sum("| Leader " in ln for ln in body) == 1 and sum("| Replica " in ln for ln in body) == 2
    assert all("| running |" in ln for ln in body)

    out = patronictl(cluster, "list", "-f", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert sorted(r["Member"] for r in rows) == ["node0", "node1", "node2"]
    assert {r["Role"] for r in rows} == {"Leader", "Replica"}


def test_replicas_stream_and_slots(cluster: LocalCluster) -> None:
    import psycopg2

    primary = healthy(cluster)
    writer = Writer(cluster)
    writer.setup()
    with psycopg2.connect(primary.dsn()) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO e2e_rows (id) VALUES (-1) ON CONFLICT DO NOTHING")
        cur.execute("SELECT slot_name FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY 1")
        slots = [r[0] for r in cur.fetchall()]
    assert slots == sorted(n.name for n in cluster.nodes if n is not primary)
    for r in cluster.nodes:
        if r is not primary:
            wait_for(lambda r=r: -1 in rows_on(r), 30, f"row to reach {r.name}")


def test_kill9_failover_keeps_every_replicated_row(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    writer = Writer(cluster).start()
    wait_for(lambda: len(writer.acked) >= 20, 30, "some acknowledged writes")
    # Replication is asynchronous here (test_sync.py covers synchronous mode): a commit
    # acknowledged in the last milliseconds before a kill -9 may never have left the
    # primary.  What must survive is every row the replicas had received before the
    # kill, and every write acknowledged once the new primary is there.
    replicated = list(writer.acked)
    for node in cluster.nodes:
        wait_for(lambda node=node: set(replicated) <= set(rows_on(node)), 60, f"{node.name} to stream")
    old.kill9()
    survivors = [n for n in cluster.nodes if n is not old]
    new = wait_for(
        lambda: next((n for n in survivors if n.is_primary()), None), 60, "a new primary among the survivors"
    )
    acked_before = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= acked_before + 20, 60, "writes on the new primary")
    writer.stop()
    present = set(rows_on(new))
    lost = [i for i in replicated + writer.acked[acked_before:] if i not in present]
    assert not lost, f"acknowledged rows lost: {lost[:10]}"
    other = next(n for n in survivors if n is not new)
    wait_for(lambda: (other.status() or {}).get("role") == "replica", 60, "the other replica to follow")
    # ...and it ends up with what the new primary has: not with every acknowledged write,
    # since one acknowledged by the old primary just before its kill may exist nowhere else
    # (seen in a loaded run: the old primary committed a row and the postmaster died within
    # a millisecond, before its WAL sender had sent it).
    wait_for(lambda: present <= set(rows_on(other)), 60, "the other replica to catch up")
    # The killed node stays down for the next test.
    assert not old.running()


def test_rejoin_by_rewind(cluster: LocalCluster) -> None:
    down = next(n for n in cluster.nodes if not n.running())
    primary = cluster.primary()
    assert primary is not None
    down.start()
    healthy(cluster)
    st = down.status()
    pst = primary.status()
    assert st is not None and pst is not None
    assert st["role"] == "replica" and st["timeline"] == pst["timeline"]
    # Killed with -9 it was not shut down cleanly: recovered in single-user mode (as a
    # background task) before its timeline was compared with the new leader's.
    log_text = open(down.log_path, encoding="utf-8", errors="replace").read()
    assert "doing crash recovery in a single user mode" in log_text
    import psycopg2

    with psycopg2.connect(primary.dsn()) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO e2e_rows (id) VALUES (-2) ON CONFLICT DO NOTHING")
    wait_for(lambda: -2 in rows_on(down), 30, "the rejoined node to stream")


def test_sigterm_hands_over_without_waiting_for_ttl(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    writer = Writer(cluster).start()
    wait_for(lambda: len(writer.acked) >= 10, 30, "some acknowledged writes")
    t0 = time.monotonic()
    assert old.terminate() == 0
    survivors = [n for n in cluster.nodes if n is not old]
    new = wait_for(lambda: next((n for n in survivors if n.is_primary()), None), TTL, "a new primary before ttl")
    # Handing over must not wait for the leader key to expire.
    assert time.monotonic() - t0 < TTL
    acked_before = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= acked_before + 10, 60, "writes on the new primary")
    writer.stop()
    present = set(rows_on(new))
    assert [i for i in writer.acked if i not in present] == []
    assert old.postmaster_pid() is None  # the stopped node's database is down too
    old.start()
    healthy(cluster)
    assert (old.status() or {}).get("role") == "replica"


def _read_only(node: Node) -> bool:
    """Back up read-only (a fenced server is down for a moment: not yet)."""
    try:
        return in_recovery(node)
    except Exception:
        return False


def test_primary_demotes_when_etcd_is_unreachable(cluster: LocalCluster, etcd: EtcdProcess) -> None:
    primary = healthy(cluster)
    writer = Writer(cluster, interval=0.05).start()
    wait_for(lambda: len(writer.acked) >= 5, 30, "some acknowledged writes")
    t0 = time.monotonic()
    etcd.stop()
    try:
        wait_for(lambda: _read_only(primary), TTL + 10, "the primary to demote itself to read-only", 0.2)
        writer.stop()
        # The lease rule (core/lease.py): its last renewal was sent before etcd went away,
        # so no write may succeed ttl after that (another node could hold the lock by
        # then); and it is not cut short at retry_timeout any more, but runs to nearly
        # ttl after the last renewal (at most one loop before etcd went away).
        last_write = max(writer.ack_times) - t0
        assert last_write < TTL, f"a write succeeded {last_write:.2f} s after etcd went away"
        assert last_write > RETRY_TIMEOUT, f"writes stopped {last_write:.2f} s after etcd went away"
        assert not cluster.primaries()
    finally:
        writer.stop()
        etcd.start()
    healthy(cluster)
