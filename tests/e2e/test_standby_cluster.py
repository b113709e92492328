"""End to end: a standby cluster following a primary cluster (two scopes on one etcd),
real PostgreSQL 15: its standby leader follows the remote through a slot there and
never promotes, another member takes over when it is killed, and removing
standby_cluster promotes it into a normal primary."""
from __future__ import annotations

import os
from typing import Iterator, List, Optional

import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, http_get, in_recovery, patronictl, running, sql, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


def _code(node: Node, path: str) -> int:
    try:
        return int(http_get(node.api + path, timeout=1.0)[0])
    except OSError:
        return 0


def _standby_leader(cluster: LocalCluster) -> Optional[Node]:
    found = [n for n in cluster.nodes if n.running() and _code(n, "/standby-leader") == 200]
    return found[0] if len(found) == 1 else None


def _upstream_port(node: Node) -> Optional[int]:
    rows = sql(node, "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    return int(rows[0][0]) if rows else None


def _ids(node: Node) -> List[int]:
    return [r[0] for r in sql(node, "SELECT id FROM dr_rows ORDER BY id")]


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("main"))
    dynamic = {"slots": {"dr_slot": {"type": "physical"}}}
    with running(LocalCluster(base, etcd.host_port, nodes=1, scope="qhb-main", dynamic=dynamic)) as c:
        primary = healthy(c)
        sql(primary, "CREATE TABLE dr_rows (id int)")
        sql(primary, "INSERT INTO dr_rows VALUES (1)")
        yield c


def test_standby_cluster_follows_survives_and_is_promoted(
        tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess, main: LocalCluster) -> None:
    source = main.nodes[0]
    base = str(tmp_path_factory.mktemp("dr"))
    remote = {"host": "127.0.0.1", "port": source.pg_port, "primary_slot_name": "dr_slot"}
    dr = LocalCluster(base, etcd.host_port, nodes=2, scope="qhb-dr", dynamic={"standby_cluster": remote})
    try:
        dr.start()
        leader = wait_for(lambda: _standby_leader(dr), 150, "a standby leader")
        other = next(n for n in dr.nodes if n is not leader)
        wait_for(lambda: (other.status() or {}).get("state") == "running", 120, "the other member to run")
        st = leader.status()
        assert st is not None and st["role"] == "standby_leader"
        assert st["database_system_identifier"] == source.status()["database_system_identifier"]  # type: ignore
        assert "trying to bootstrap a new standby leader" in leader.log_tail(400)
        assert all(_code(n, "/primary") == 503 for n in dr.nodes)
        assert _code(other, "/replica") == 200 and (other.status() or {}).get("role") == "replica"
        # The standby leader streams from the remote through its slot; the other member from it.
        wait_for(lambda: _upstream_port(leader) == source.pg_port, 60, "the standby leader to stream")
        assert sql(source, "SELECT active FROM pg_replication_slots WHERE slot_name = 'dr_slot'") == [(True,)]
        wait_for(lambda: _upstream_port(other) == leader.pg_port, 60, "the replica to stream from the standby leader")
        sql(source, "INSERT INTO dr_rows VALUES (2)")
        for node in dr.nodes:
            wait_for(lambda node=node: _ids(node) == [1, 2], 60, f"row 2 on {node.name}")
        out = patronictl(dr, "list")
        assert out.returncode == 0 and "| Standby Leader |" in out.stdout, out.stdout + out.stderr

        # The standby leader is lost: the other member takes the lock and follows the remote.
        leader.kill9()
        wait_for(lambda: _standby_leader(dr) is other, 90, "the other member to become standby leader")
        wait_for(lambda: _upstream_port(other) == source.pg_port, 60, "the new standby leader to stream")
        assert in_recovery(other) and _code(other, "/primary") == 503
        sql(source, "INSERT INTO dr_rows VALUES (3)")
        wait_for(lambda: _ids(other) == [1, 2, 3], 60, "row 3 on the new standby leader")
        leader.start()
        wait_for(lambda: (leader.status() or {}).get("role") == "replica"
                 and _upstream_port(leader) == other.pg_port, 120, "the old standby leader to follow")

        # Removing standby_cluster makes the standby leader a normal primary.
        out = patronictl(dr, "edit-config", "-s", "standby_cluster=null", "--force")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: _code(other, "/primary") == 200 and not in_recovery(other), 90, "the promotion")
        sql(other, "INSERT INTO dr_rows VALUES (100)")
        wait_for(lambda: 100 in _ids(leader), 60, "the promoted cluster's row on its replica")
        assert 100 not in _ids(source)
    except AssertionError:
        print(dr.dump_logs())
        raise
    finally:
        dr.stop()
        assert not [n.name for n in dr.nodes if n.postmaster_pid() is not None or n.running()]
        assert os.path.isdir(base)
