"""End to end: behaviours operators see as in Patroni 3.0.2 (issue 15): pg_hba
lists written into QHB's file names, pause with a manual switchover, a crashed
primary with primary_start_timeout 0. One 3-member cluster, tests in file order."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
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


def _role(node: Node) -> str:
    return str((node.status() or {}).get("role", ""))


def test_switchover_in_pause_is_performed_and_nothing_else_moves(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    candidate = next(n for n in cluster.nodes if n is not old)
    other = next(n for n in cluster.nodes if n not in (old, candidate))
    out = patronictl(cluster, "pause", "--wait")
    assert out.returncode == 0 and "Success: cluster management is paused" in out.stdout, out.stdout + out.stderr
    try:
        when = "2999-01-01T00:00:00+00:00"
        out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", candidate.name,
                         "--scheduled", when, "--force")
        assert out.returncode != 0 and "Can't schedule switchover in the paused state" in out.stderr + out.stdout
        out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", candidate.name, "--force")
        assert out.returncode == 0, out.stderr + out.stdout
        assert f'Successfully switched over to "{candidate.name}"' in out.stdout, out.stdout
        wait_for(candidate.is_primary, 60, "the candidate to be the primary while paused")
        wait_for(lambda: _role(old) == "replica", 60, "the old primary to run as a replica")
        assert cluster.primaries() == [candidate]
        # Paused: a replica whose server dies is not started again by its daemon.
        pm = other.postmaster_pid()
        assert pm is not None
        os.kill(pm, signal.SIGKILL)
        wait_for(lambda: other.postmaster_pid() is None, 20, f"{other.name}'s postmaster to be gone")
        for _ in range(3):  # three HA cycles (loop_wait 2 s) and it is still down
            wait_for(lambda: (other.status() or {}).get("state") == "stopped", 20, f"{other.name} to read stopped")
            time.sleep(2)
            assert other.postmaster_pid() is None, f"{other.name} was restarted in pause"
        assert cluster.primaries() == [candidate]
        # ... and back through the REST API, still paused.
        body = json.dumps({"leader": candidate.name, "candidate": old.name}).encode()
        req = urllib.request.Request(candidate.api + "/switchover", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert (resp.status, resp.read().decode()) == (200, f'Successfully switched over to "{old.name}"')
        wait_for(old.is_primary, 60, "the old primary to be primary again while paused")
        wait_for(lambda: _role(candidate) == "replica", 60, "the candidate to run as a replica again")
        assert cluster.primaries() == [old]
    finally:
        out = patronictl(cluster, "resume", "--wait")
        assert out.returncode == 0, out.stdout + out.stderr
    healthy(cluster)  # resumed: the stopped replica is started again


def test_crashed_primary_with_start_timeout_0_fails_over(cluster: LocalCluster) -> None:
    out = patronictl(cluster, "edit-config", "--force", "-s", "primary_start_timeout=0")
    assert out.returncode == 0, out.stderr + out.stdout
    old = healthy(cluster)
    wait_for(lambda: all((n.status() or {}).get("state") == "running" for n in cluster.nodes), 30, "all running")
    pm = old.postmaster_pid()
    assert pm is not None
    os.kill(pm, signal.SIGKILL)
    survivors = [n for n in cluster.nodes if n is not old]
    new = wait_for(lambda: next((n for n in survivors if n.is_primary()), None), 60, "a replica to take over")
    wait_for(lambda: "Primary crashed. Failing over." in old.log_tail(400), 30, "the crash failover log line")
    assert "stopped PostgreSQL to fail over after a crash" in old.log_tail(400)
    # The crashed primary was not started again as the primary: it comes back as a replica.
    wait_for(lambda: _role(old) == "replica", 120, "the crashed primary to follow the new one")
    assert cluster.primaries() == [new]
    out = patronictl(cluster, "edit-config", "--force", "-s", "primary_start_timeout=null")
    assert out.returncode == 0, out.stderr + out.stdout
    healthy(cluster)
