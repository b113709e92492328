"""End to end: custom bootstrap and replica creation methods, real etcd and PostgreSQL 15.

A "source" cluster (its own scope) is the backup every other cluster here restores.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator

import pytest

from tests.e2e.harness import LocalCluster, Node, etcd_key, healthy, running, sql, wait_for
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.pgbin import PG_BIN_DIR
from tests.fixtures.scripts import write_script

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("source"))
    with running(LocalCluster(base, etcd.host_port, nodes=1, scope="qhb-source")) as c:
        primary = healthy(c)
        sql(primary, "CREATE TABLE from_source (id int)")
        sql(primary, "INSERT INTO from_source VALUES (42)")
        yield c


def _restorewrite_script(directory: str, source: LocalCluster) -> str:
    """`restore.sh --scope=.. --datadir=..`: a base backup of the source cluster."""
    node = source.nodes[0]
    return write_script(os.path.join(directory, "restore.sh"), (
        'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; esac; done\n'
        f'exec {PG_BIN_DIR}/pg_basebackup -D "$D" -X stream '
        f'-d "host=127.0.0.1 port={node.pg_port} user=replicator password=rep-pass dbname=qhb"\n'
    ))


def test_custom_bootstrap_restores_another_clusters_backup(
        tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess, source: LocalCluster) -> None:
    base = str(tmp_path_factory.mktemp("restored"))
    restore = _restorewrite_script(base, source)
    broken = write_script(os.path.join(base, "broken.sh"), "echo 'backup catalog unreachable' >&2\nexit 2\n")
    post = write_script(os.path.join(base, "post.sh"), (
        f'exec {PG_BIN_DIR}/psql "$1" -v ON_ERROR_STOP=1 -c "CREATE TABLE made_by_post_bootstrap (id int)"\n'))

    def configure(node: Node, config: Dict[str, Any]) -> None:
        # node0 tries first with a command that fails; node1's works.
        config["bootstrap"].update(method="restore", post_bootstrap=post, restore={
            "command": broken if node.index == 0 else restore,
            "recovery_conf": {"restore_command": "false", "recovery_target": "immediate",
                              "recovery_target_action": "promote"},
        })

    cluster = LocalCluster(base, etcd.host_port, nodes=2, scope="qhb-restored", configure=configure)
    first, second = cluster.nodes
    try:
        first.start()
        assert first.proc is not None
        rc = first.proc.wait(120)
        log = first.log_tail(200)
        assert rc != 0, log
        assert "bootstrap.restore.command" in log and "backup catalog unreachable" in log, log
        assert "removing initialize key after failed attempt to bootstrap the cluster" in log, log
        assert "Failed to bootstrap cluster" in log, log
        # /initialize is free for another member; nothing half-made is left as the data directory.
        assert etcd_key(cluster, "initialize") is None
        assert not os.path.exists(os.path.join(first.data_dir, "global"))

        second.start()
        assert healthy(cluster, members=[second]) is second
        first.start()  # a leader exists now: it clones from it instead of bootstrapping
        primary = healthy(cluster)
        assert primary is second
        source_sysid = source.nodes[0].status()["database_system_identifier"]  # type: ignore[index]
        for node in cluster.nodes:
            st = node.status()
            assert st is not None and st["database_system_identifier"] == source_sysid
            wait_for(lambda node=node: sql(node, "SELECT id FROM from_source") == [(42,)], 30,
                     f"the restored row on {node.name}")
            assert sql(node, "SELECT count(*) FROM made_by_post_bootstrap") == [(0,)]
        assert etcd_key(cluster, "initialize") == source_sysid
        assert sql(primary, "SELECT pg_is_in_recovery()") == [(False,)]
    except AssertionError:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.stop()
        assert not [n.name for n in cluster.nodes if n.postmaster_pid() is not None or n.running()]


def _put_etcd_key(cluster: LocalCluster, key: str, value: str) -> None:
    import urllib.parse
    import urllib.request

    data = urllib.parse.urlencode({"value": value}).encode()
    url = f"http://{cluster.etcd_host}/v2/keys/service/{cluster.scope}/{key}"
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="PUT"), timeout=5) as resp:
        assert resp.status in (200, 201)


def test_no_leader_replica_method_restores_a_cluster_that_lost_every_member(
        tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess, source: LocalCluster) -> None:
    """The DCS still knows the cluster (/initialize) but no member has data: the first
    member restores the backup with a no_leader method, becomes the leader, and the next
    one clones it with the first method that works with a leader (basebackup)."""
    base = str(tmp_path_factory.mktemp("noleader"))
    restore = _restorewrite_script(base, source)

    def configure(node: Node, config: Dict[str, Any]) -> None:
        config["postgresql"].update(create_replica_methods=["basebackup", "restore"],
                                    restore={"command": restore, "no_leader": True})

    cluster = LocalCluster(base, etcd.host_port, nodes=2, scope="qhb-noleader", configure=configure)
    first, second = cluster.nodes
    source_sysid = source.nodes[0].status()["database_system_identifier"]  # type: ignore[index]
    _put_etcd_key(cluster, "initialize", source_sysid)
    try:
        first.start()
        primary = healthy(cluster, members=[first])
        assert primary is first
        log = first.log_tail(400)
        assert "trying to bootstrap (without leader)" in log and "replica has been created using restore" in log, log
        assert sql(first, "SELECT id FROM from_source") == [(42,)]
        sql(first, "CREATE TABLE after_restore (id int)")
        sql(first, "INSERT INTO after_restore VALUES (1)")

        second.start()
        healthy(cluster)
        assert "replica has been created using basebackup" in second.log_tail(400)
        wait_for(lambda: sql(second, "SELECT id FROM after_restore") == [(1,)], 30, "the new row on the replica")
        assert second.status()["role"] == "replica"  # type: ignore[index]
    except AssertionError:
        print(cluster.dump_logs())
        raise
    finally:
        cluster.stop()
        assert not [n.name for n in cluster.nodes if n.postmaster_pid() is not None or n.running()]
