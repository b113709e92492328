"""End to end: a standby cluster fed from the WAL archive only (standby_cluster with
restore_command and no host), real etcd and PostgreSQL 15, two scopes on one etcd.

The primary cluster archives its WAL into a directory (archive_command); a base backup
of it is the only other thing the standby cluster gets.  Its first member restores that
backup with a no_leader replica method named in standby_cluster.create_replica_methods
and becomes the standby leader: it replays the archive with restore_command, streams from
nobody and never promotes, also when the archive has nothing more to give; the other
member streams from it; rows written on the primary show up on both.  When the standby
leader is lost, the other member takes over and restores from the archive in turn."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from typing import Any, Dict, Iterator

import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, in_recovery, running, sql, wait_for
from tests.e2e.test_standby_cluster import _code, _ids, _standby_leader, _upstream_port
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.pgbin import PG_BIN_DIR
from tests.fixtures.scripts import write_script

pytestmark = pytest.mark.e2e


def _switch_wal(node: Node) -> None:
    """Close the current WAL segment so that archive_command copies it."""
    sql(node, "SELECT pg_switch_wal()")


def _timeline(node: Node) -> int:
    return int(sql(node, "SELECT timeline_id FROM pg_control_checkpoint()")[0][0])


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("wal_archive"))


@pytest.fixture(scope="module")
def main(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess, archive: str) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("arch_main"))
    command = f"test ! -f {archive}/%f && cp %p {archive}/%f"

    def configure(node: Node, config: Dict[str, Any]) -> None:
        config["postgresql"]["parameters"].update(archive_mode="on", archive_command=command)

    with running(LocalCluster(base, etcd.host_port, nodes=1, scope="qhb-arch-main", configure=configure)) as c:
        primary = healthy(c)
        sql(primary, "CREATE TABLE dr_rows (id int)")
        sql(primary, "INSERT INTO dr_rows VALUES (1)")
        yield c


def _base_backup(source: Node, directory: str) -> None:
    """A base backup without WAL (-X none): what it needs to become consistent comes
    from the archive."""
    env = dict(os.environ, PGPASSWORD="rep-pass")
    done = subprocess.run(
        [f"{PG_BIN_DIR}/pg_basebackup", "-D", directory, "-X", "none", "-c", "fast",
         "-d", f"host=127.0.0.1 port={source.pg_port} user=replicator dbname=qhb"],
        env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_standby_cluster_restores_from_the_archive_and_never_promotes(
        tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess, main: LocalCluster, archive: str) -> None:
    source = main.nodes[0]
    base = str(tmp_path_factory.mktemp("arch_dr"))
    backup = os.path.join(base, "backup")
    _base_backup(source, backup)
    _switch_wal(source)  # the backup's last segment reaches the archive
    restore = write_script(os.path.join(base, "restore_backup.sh"), (
        'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; esac; done\n'
        f'mkdir -p "$D" && cp -a {shlex.quote(backup)}/. "$D"/ && chmod 700 "$D"\n'
    ))
    restore_command = f"cp {archive}/%f %p"
    standby = {"restore_command": restore_command, "create_replica_methods": ["restore_backup"]}

    def configure(node: Node, config: Dict[str, Any]) -> None:
        config["postgresql"]["restore_backup"] = {"command": restore, "no_leader": True}

    dr = LocalCluster(base, etcd.host_port, nodes=2, scope="qhb-arch-dr", dynamic={"standby_cluster": standby},
                      configure=configure)
    try:
        dr.start()
        leader = wait_for(lambda: _standby_leader(dr), 180, "a standby leader")
        other = next(n for n in dr.nodes if n is not leader)
        wait_for(lambda: (other.status() or {}).get("state") == "running", 150, "the other member to run")
        st = leader.status()
        assert st is not None and st["role"] == "standby_leader"
        assert st["database_system_identifier"] == source.status()["database_system_identifier"]  # type: ignore
        assert "replica has been created using restore_backup" in leader.log_tail(400), leader.log_tail(400)
        assert all(_code(n, "/primary") == 503 for n in dr.nodes)
        # The standby leader restores from the archive: it streams from nobody.
        assert sql(leader, "SHOW restore_command") == [(restore_command,)]
        assert sql(leader, "SHOW primary_conninfo") == [("",)]
        assert _upstream_port(leader) is None
        wait_for(lambda: _ids(leader) == [1], 90, "the backup's row on the standby leader")
        wait_for(lambda: _upstream_port(other) == leader.pg_port, 90, "the replica to stream from the standby leader")

        sql(source, "INSERT INTO dr_rows VALUES (2)")
        _switch_wal(source)
        for node in dr.nodes:
            wait_for(lambda node=node: _ids(node) == [1, 2], 90, f"row 2 on {node.name}")

        # The archive has nothing more: the standby leader keeps waiting for WAL and does
        # not promote, across several HA cycles.
        for _ in range(4 * dr.loop_wait):
            assert in_recovery(leader) and _code(leader, "/primary") == 503
            assert (leader.status() or {}).get("role") == "standby_leader"
            time.sleep(0.5)
        assert _timeline(leader) == 1 and _upstream_port(leader) is None

        # New WAL in the archive is replayed again.
        sql(source, "INSERT INTO dr_rows VALUES (3)")
        _switch_wal(source)
        for node in dr.nodes:
            wait_for(lambda node=node: _ids(node) == [1, 2, 3], 90, f"row 3 on {node.name}")
        assert in_recovery(leader) and _timeline(leader) == 1
        assert "restored log file" in leader.log_tail(2000, server=True)

        # The standby leader is lost: the other member takes the lock and restores from
        # the archive in turn (it streamed from the lost one until then).
        leader.kill9()
        wait_for(lambda: _standby_leader(dr) is other, 90, "the other member to become standby leader")
        wait_for(lambda: sql(other, "SHOW primary_conninfo") == [("",)], 60, "the new standby leader to unfollow")
        assert sql(other, "SHOW restore_command") == [(restore_command,)]
        sql(source, "INSERT INTO dr_rows VALUES (4)")
        _switch_wal(source)
        wait_for(lambda: _ids(other) == [1, 2, 3, 4], 90, "row 4 on the new standby leader")
        assert in_recovery(other) and _timeline(other) == 1 and _code(other, "/primary") == 503
    except AssertionError:
        print(dr.dump_logs())
        raise
    finally:
        dr.stop()
        assert not [n.name for n in dr.nodes if n.postmaster_pid() is not None or n.running()]
