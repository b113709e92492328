"""End to end: behaviours operators see as in Patroni 3.0.2 (issue 15): pg_hba
lists written into QHB's file names, pause with a manual switchover, a crashed
primary with primary_start_timeout 0. One 3-member cluster, tests in file order."""
from __future__ import annotations

import os
from typing import Iterator, List

import psycopg2
import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, patronictl, running, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("compat-cluster"))
    c = LocalCluster(base, etcd.host_port, ttl=10, loop_wait=2, retry_timeout=4, scope="qhb-compat")
    with running(c):
        yield c


def _connects_as_admin(node: Node) -> bool:
    try:
        psycopg2.connect(f"host=127.0.0.1 port={node.pg_port} dbname=qhb user=admin password=admin "
                         "connect_timeout=3").close()
        return True
    except psycopg2.OperationalError as exc:
        assert "rejects connection" in str(exc), exc
        return False


def _hba_lines(node: Node) -> List[str]:
    with open(os.path.join(node.data_dir, "qhb_hba.conf"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


HBA = [
    "local all all trust",
    "host replication replicator 127.0.0.1/32 md5",
    "host all admin 127.0.0.1/32 reject",
    "host all all 127.0.0.1/32 md5",
]


def test_pg_hba_from_edit_config_lands_in_qhb_hba_conf_and_takes_effect(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    before = {n.name: _hba_lines(n) for n in cluster.nodes}
    assert all("host all admin 127.0.0.1/32 reject" not in lines for lines in before.values())
    wait_for(lambda: _connects_as_admin(primary), 30, "the bootstrap user admin to connect")
    yaml_text = "postgresql:\n  pg_hba:\n" + "".join(f"  - {line}\n" for line in HBA)
    out = patronictl(cluster, "edit-config", "--apply", "-", "--force", stdin=yaml_text)
    assert out.returncode == 0, out.stderr + out.stdout
    for node in cluster.nodes:
        wait_for(lambda node=node: _hba_lines(node) == HBA, 30, f"{node.name}'s qhb_hba.conf to hold the list")
    # The daemons reloaded the servers: the new reject line is in force on every member.
    for node in cluster.nodes:
        wait_for(lambda node=node: not _connects_as_admin(node), 30, f"{node.name} to reject admin")
    out = patronictl(cluster, "edit-config", "--force", "-s", "postgresql.pg_hba=null")
    assert out.returncode == 0, out.stderr + out.stdout
    healthy(cluster)
    assert _hba_lines(primary) == HBA  # unset: the file is left as it is
