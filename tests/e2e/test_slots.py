"""End to end: permanent slots and ignore_slots on 3 daemons, real etcd, PostgreSQL 15.

A logical slot (test_decoding) consumer reads changes before and after a
switchover and after a kill -9 failover: every change committed (and replicated)
reaches it, whatever it had not confirmed is delivered again by the new primary.
A foreign physical slot is dropped on primary and replica, an ignored one kept.
"""
from __future__ import annotations

import re
import time
from typing import Iterator, List, Set

import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, in_recovery, patronictl, running, sql, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e

CDC = {"type": "logical", "database": "qhb", "plugin": "test_decoding"}
DYNAMIC = {
    "postgresql": {"use_pg_rewind": True, "use_slots": True, "parameters": {"wal_level": "logical"}},
    "slots": {"cdc": CDC, "backup_tool": {"type": "physical"}},
    "ignore_slots": [{"name": "keep_me", "type": "physical"}],
}
_REACHED = "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'"
_INSERT = re.compile(r"table public\.cdc_rows: INSERT: id\[bigint\]:(\d+)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("slots"))
    with running(LocalCluster(base, etcd.host_port, scope="qhb-slots", dynamic=DYNAMIC)) as c:
        yield c


def _slots(node: Node) -> Set[str]:
    return {r[0] for r in sql(node, "SELECT slot_name FROM pg_replication_slots")}


def _insert(primary: Node, ids: range) -> None:
    for i in ids:
        sql(primary, "INSERT INTO cdc_rows (id) VALUES (%s)", i)


def _replicated(cluster: LocalCluster, ids: range) -> None:
    for node in cluster.nodes:
        if node.running():
            wait_for(lambda node=node: {r[0] for r in sql(node, "SELECT id FROM cdc_rows")} >= set(ids), 60,
                     f"rows {ids} on {node.name}")


def _consume(primary: Node) -> List[int]:
    """What the consumer reads (and thereby confirms) from the slot on the primary."""
    rows = sql(primary, "SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL)")
    return [int(m.group(1)) for (data,) in rows for m in [_INSERT.search(data)] if m]


def _copies_ready(cluster: LocalCluster, primary: Node) -> None:
    """Every replica has its copy of the slot, advanced to what the leader published."""
    for node in cluster.nodes:
        if node is primary or not node.running():
            continue
        wait_for(lambda node=node: "cdc" in _slots(node), 90, f"the copy of 'cdc' on {node.name}")
        flushed = sql(primary, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")[0][0]
        wait_for(lambda node=node, flushed=flushed: sql(node, _REACHED, flushed) == [(True,)],
                 60, f"the copy on {node.name} to reach {flushed}")


def test_permanent_slots_on_primary_and_replicas(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    replicas = [n for n in cluster.nodes if n is not primary]
    wait_for(lambda: {"cdc", "backup_tool"} <= _slots(primary), 60, "the permanent slots on the primary")
    assert sql(primary, "SELECT slot_type, database, plugin FROM pg_replication_slots WHERE slot_name = 'cdc'") \
        == [("logical", "qhb", "test_decoding")]
    for r in replicas:  # member slots for the other members, logical copy; no permanent physical on replicas
        wait_for(lambda r=r: "cdc" in _slots(r), 90, f"the copy of 'cdc' on {r.name}")
        assert sql(r, "SHOW hot_standby_feedback") == [("on",)]
        assert "backup_tool" not in _slots(r)
    assert "Copying logical slots ['cdc'] from the primary" in replicas[0].log_tail(400) + replicas[1].log_tail(400)
    for r in replicas:
        wait_for(lambda r=r: "Logical slot cdc is safe to be used after a failover" in r.log_tail(400), 60,
                 f"the copy on {r.name} to be safe")


def test_foreign_slots_dropped_and_ignored_kept(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not primary)
    for name in ("foreign_slot", "keep_me"):
        sql(primary, "SELECT pg_create_physical_replication_slot(%s)", name)
    sql(replica, "SELECT pg_create_physical_replication_slot('foreign_on_replica')")
    wait_for(lambda: "foreign_slot" not in _slots(primary), 30, "the foreign slot to be dropped")
    wait_for(lambda: "foreign_on_replica" not in _slots(replica), 30, "the replica's foreign slot to be dropped")
    assert "Trying to drop unknown replication slot 'foreign_slot'" in primary.log_tail(400)
    # Two more cycles later the ignored one is still there.
    time.sleep(2 * cluster.loop_wait + 1)
    assert "keep_me" in _slots(primary)
    assert {"cdc", "backup_tool"} <= _slots(primary)


def test_logical_consumer_survives_switchover_and_failover(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    sql(primary, "CREATE TABLE IF NOT EXISTS cdc_rows (id bigint PRIMARY KEY)")
    consumed: List[int] = []
    consumed += _consume(primary)  # the CREATE TABLE and anything earlier
    _insert(primary, range(1, 21))
    consumed += _consume(primary)
    assert set(range(1, 21)) <= set(consumed)
    # Changes committed but not yet read when the primary changes.
    _insert(primary, range(21, 31))
    _replicated(cluster, range(1, 31))
    _copies_ready(cluster, primary)

    candidate = next(n for n in cluster.nodes if n is not primary)
    out = patronictl(cluster, "switchover", "--leader", primary.name, "--candidate", candidate.name, "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    new = wait_for(lambda: candidate if candidate.is_primary() else None, 60, "the candidate to lead")
    healthy(cluster)
    # /primary answers from the lock (as 3.0.2 does); the promotion may still be finishing.
    wait_for(lambda: not in_recovery(new), 60, "the new primary to be writable")
    assert "cdc" in _slots(new)
    _insert(new, range(31, 41))
    consumed += _consume(new)
    assert set(range(1, 41)) <= set(consumed), sorted(set(range(1, 41)) - set(consumed))

    _insert(new, range(41, 51))
    _replicated(cluster, range(1, 51))
    _copies_ready(cluster, new)
    new.kill9()
    survivors = [n for n in cluster.nodes if n is not new]
    after = wait_for(lambda: next((n for n in survivors if n.is_primary()), None), 90, "a primary after kill -9")
    wait_for(lambda: not in_recovery(after), 60, "the new primary to be writable")
    wait_for(lambda: "cdc" in _slots(after), 30, "the slot on the new primary")
    _insert(after, range(51, 61))
    consumed += _consume(after)
    missing = sorted(set(range(1, 61)) - set(consumed))
    assert not missing, f"changes never delivered: {missing}"
    new.start()  # back as a replica for whoever runs next
    healthy(cluster)
