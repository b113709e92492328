"""End to end: cascading replication and clone source, real etcd and PostgreSQL 15.

node1 is tagged clonefrom, node2 replicatefrom node1: node2 is cloned from the
replica node1, streams from it through a slot on node1 (none on the primary),
and falls back to the leader once node1 is gone.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Set

import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, sql, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


def _configure(node: Node, config: Dict[str, Any]) -> None:
    if node.index == 1:
        config["tags"]["clonefrom"] = True
    if node.index == 2:
        config["tags"]["replicatefrom"] = "node1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("cascade"))
    c = LocalCluster(base, etcd.host_port, scope="qhb-cascade", configure=_configure)
    first, second, third = c.nodes
    try:
        first.start()
        healthy(c, members=[first])
        second.start()
        healthy(c, members=[first, second])
        third.start()
        healthy(c)
        yield c
    except AssertionError:
        print(c.dump_logs())
        raise
    finally:
        c.stop()
        assert not [n.name for n in c.nodes if n.postmaster_pid() is not None or n.running()]


def _upstream_port(node: Node) -> Optional[int]:
    rows = sql(node, "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return int(rows[0][0]) if rows else None


def _slots(node: Node) -> Set[str]:
    return {r[0] for r in sql(node, "SELECT slot_name FROM pg_replication_slots")}


def test_cascading_replica_cloned_from_a_replica_streams_through_it(cluster: LocalCluster) -> None:
    primary, intermediate, cascading = cluster.nodes
    assert cluster.primary() is primary
    assert "trying to bootstrap from replica 'node1'" in cascading.log_tail(400)
    wait_for(lambda: _upstream_port(cascading) == intermediate.pg_port, 60, "node2 to stream from node1")
    wait_for(lambda: "node2" in _slots(intermediate), 30, "node2's slot on node1")
    assert sql(intermediate, "SELECT active FROM pg_replication_slots WHERE slot_name = 'node2'") == [(True,)]
    # The leader creates a member's slot at its first cycle after the member key appears;
    # the cluster can be healthy before that (a replica retries its slot meanwhile).
    wait_for(lambda: "node1" in _slots(primary), 30, "node1's slot on the leader")
    assert "node2" not in _slots(primary)
    wait_for(lambda: _upstream_port(intermediate) == primary.pg_port, 30, "node1 to stream from the leader")
    sql(primary, "CREATE TABLE IF NOT EXISTS cascade_rows (id int)")
    sql(primary, "INSERT INTO cascade_rows VALUES (1)")
    wait_for(lambda: sql(cascading, "SELECT id FROM cascade_rows") == [(1,)], 30, "the row on node2")


def test_cascading_replica_falls_back_to_the_leader(cluster: LocalCluster) -> None:
    primary, intermediate, cascading = cluster.nodes
    assert intermediate.terminate() == 0
    # Once node1's member key is gone, node2 follows the leader, with a slot there.
    wait_for(lambda: _upstream_port(cascading) == primary.pg_port, 90, "node2 to stream from the leader")
    wait_for(lambda: "node2" in _slots(primary), 30, "node2's slot on the leader")
    sql(primary, "INSERT INTO cascade_rows VALUES (2)")
    wait_for(lambda: sql(cascading, "SELECT id FROM cascade_rows ORDER BY id") == [(1,), (2,)], 30,
             "the new row on node2")
    intermediate.start()
    healthy(cluster)
    # Back: node2 returns to node1, and the leader drops the slot it no longer needs.
    wait_for(lambda: _upstream_port(cascading) == intermediate.pg_port, 90, "node2 to stream from node1 again")
    wait_for(lambda: "node2" not in _slots(primary), 30, "node2's slot on the leader to go")
