"""End to end: behaviours operators see as in Patroni 3.0.2 (issue 15): pg_hba
lists written into QHB's file names, pause with a manual switchover, a crashed
primary with primary_start_timeout 0. One 3-member cluster, tests in file order."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, List

import psycopg2
import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, patronictl, running, wait_for
from tests.fixtures.api import dcs_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


def _with_compat_keys(node: Node) -> Callable[[], Dict[str, Any]]:
    """The node's configuration plus 3.0.2 keys this module checks: local connections
    through the socket directory, a proxy address, a custom base configuration file."""
    plain = node.config

    def config() -> Dict[str, Any]:
        c = plain()
        c["postgresql"].update(use_unix_socket=True, use_unix_socket_repl=True,
                               proxy_address=f"127.0.0.1:{node.pg_port + 1}",
                               custom_conf=os.path.join(node.dir, "custom.conf"))
        return c

    return config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("compat-cluster"))
    c = LocalCluster(base, etcd.host_port, ttl=10, loop_wait=2, retry_timeout=4, scope="qhb-compat")
    for node in c.nodes:
        node.config = _with_compat_keys(node)  # type: ignore[method-assign]
        os.makedirs(node.dir, exist_ok=True)
        with open(os.path.join(node.dir, "custom.conf"), "w", encoding="utf-8") as f:
            f.write("work_mem = '7MB'\n")
    with running(c):
        yield c


def _sql(node: Node, query: str) -> List[Any]:
    with psycopg2.connect(node.dsn() + " application_name=compat-test") as conn, conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def test_socket_connections_proxy_url_and_custom_conf(cluster: LocalCluster, etcd: EtcdProcess) -> None:
    healthy(cluster)
    for node in cluster.nodes:
        assert _sql(node, "SHOW work_mem") == [("7MB",)]  # custom_conf is the included base file
    primary = healthy(cluster)
    # The daemon's own connections come through the socket directory (no client address).
    wait_for(lambda: _sql(primary, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'Patroni' "
                                   "AND client_addr IS NULL AND backend_type = 'client backend'")[0][0] > 0,
             30, "a connection of the daemon through the socket", interval=0.02)
    view = dcs_for(etcd, cluster.scope, "reader").get_cluster()
    proxies = {m.name: m.data.get("proxy_url") for m in view.members}
    assert proxies == {n.name: f"postgres://127.0.0.1:{n.pg_port + 1}/qhb" for n in cluster.nodes}


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
