"""End to end on the other DCS backends: the same 3-node cluster on etcd through
the v3 API (etcd3 section) and on Consul (consul section).  One cluster per
backend: bootstrap + list, the keys as Patroni writes them, switchover, the
primary demoting while the DCS is down, kill -9 failover; and a daemon on a
misconfigured DCS.
(test_cluster.py covers etcd through the v2 API in depth.)
"""
from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from tests.e2e.harness import LocalCluster, Writer, healthy, in_recovery, patronictl, rows_on, running, wait_for
from tests.fixtures.consul import ConsulProcess, consul_available
from tests.fixtures.etcd import ETCD_BIN, EtcdProcess
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.e2e

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4


class _Etcd3:
    def __init__(self, work_dir: str) -> None:
        self.server = EtcdProcess(work_dir, free_port(), free_port())

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def section(self) -> Dict[str, Any]:
        return {"etcd3": {"hosts": [self.server.host_port]}}

    def get(self, key: str) -> Optional[str]:
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        with urllib.request.urlopen(self.server.url + "/v3/kv/range", data=body, timeout=5) as resp:
            kvs = json.loads(resp.read().decode()).get("kvs") or []
        return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


class _Consul:
    def __init__(self, work_dir: str) -> None:
        # keeps its data across the outage test; session_ttl_min 1s as docs/dcs.md recommends,
        # so that sessions get ttl/2 and a dead leader's key lives about ttl
        self.server = ConsulProcess(work_dir, persistent=True, extra_hcl=['session_ttl_min = "1s"'])

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def section(self) -> Dict[str, Any]:
        return {"consul": {"host": self.server.host_port}}

    def get(self, key: str) -> Optional[str]:
        try:
            with urllib.request.urlopen(self.server.url + "/v1/kv/" + key.lstrip("/") + "?raw", timeout=5) as resp:
                return str(resp.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def _available(kind: str) -> bool:
    return consul_available() if kind == "consul" else os.path.exists(ETCD_BIN)


@pytest.fixture(scope="module", params=["etcd3", "consul"])
def backend_cluster(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, Any, LocalCluster]]:
    kind = str(request.param)
    if not _available(kind):
        pytest.skip(f"no {kind} server binary")
    dcs: Any = _Etcd3(str(tmp_path_factory.mktemp(kind))) if kind == "etcd3" else _Consul(
        str(tmp_path_factory.mktemp(kind)))
    dcs.start()
    try:
        base = str(tmp_path_factory.mktemp(f"cluster-{kind}"))
        cluster = LocalCluster(base, "", ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT,
                               scope=f"qhb-{kind}", dcs=dcs.section)
        with running(cluster):
            yield kind, dcs, cluster
    finally:
        dcs.stop()


def test_bootstrap_list_and_keys(backend_cluster: Tuple[str, Any, LocalCluster]) -> None:
    kind, dcs, cluster = backend_cluster
    primary = healthy(cluster)
    sysid = primary.status()["database_system_identifier"]
    out = patronictl(cluster, "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"+ Cluster: {cluster.scope} ({sysid})")
    body = [ln for ln in lines if ln.startswith("| node")]
    assert len(body) == 3 and sum("| Leader " in ln for ln in body) == 1
    # The keys as Patroni 3.0.2 writes them (same layout on every backend).
    base = f"/service/{cluster.scope}/"
    assert dcs.get(base + "leader") == primary.name
    assert dcs.get(base + "initialize") == sysid
    member = json.loads(dcs.get(base + f"members/{primary.name}") or "{}")
    assert member["role"] == "master" and member["api_url"] == primary.api + "/patroni"
    assert json.loads(dcs.get(base + "config") or "{}")["ttl"] == TTL


def test_switchover(backend_cluster: Tuple[str, Any, LocalCluster]) -> None:
    kind, dcs, cluster = backend_cluster
    old = healthy(cluster)
    candidate = next(n for n in cluster.nodes if n is not old)
    writer = Writer(cluster).start()
    try:
        wait_for(lambda: len(writer.acked) >= 20, 30, "some acknowledged writes")
        out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", candidate.name, "--force")
        assert out.returncode == 0, out.stderr + out.stdout
        assert f'Successfully switched over to "{candidate.name}"' in out.stdout, out.stdout
        wait_for(candidate.is_primary, 30, f"the candidate to be the primary ({kind})")
        acked_before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked_before + 20, 60, "writes on the new primary")
    finally:
        writer.stop()
    present = set(rows_on(candidate))
    assert not [i for i in writer.acked if i not in present]
    assert dcs.get(f"/service/{cluster.scope}/leader") == candidate.name
    wait_for(lambda: (old.status() or {}).get("role") == "replica", 60, "the old primary to follow")
    healthy(cluster)
    for node in cluster.nodes:  # every member streams from the new primary again
        wait_for(lambda node=node: set(writer.acked) <= set(rows_on(node)), 60, f"{node.name} to catch up")


def _read_only(node: Any) -> bool:
    try:
        return in_recovery(node)
    except Exception:
        return False


def test_primary_demotes_while_the_dcs_is_down(backend_cluster: Tuple[str, Any, LocalCluster]) -> None:
    kind, dcs, cluster = backend_cluster
    primary = healthy(cluster)
    writer = Writer(cluster, interval=0.05).start()
    wait_for(lambda: len(writer.acked) >= 5, 30, "some acknowledged writes")
    t0 = time.monotonic()
    dcs.stop()
    try:
        wait_for(lambda: _read_only(primary), TTL + 10, f"the primary to demote itself to read-only ({kind})", 0.2)
        # it kept its lease instead of giving up at retry_timeout ...
        assert time.monotonic() - t0 > RETRY_TIMEOUT
        writer.stop()
        # ... and stopped writes before it could run out: its last renewal was before the
        # DCS went away, so the lease ended less than ttl after that (another node could
        # hold the lock from then on).
        last_write = max(writer.ack_times) - t0
        assert last_write < TTL, f"a write succeeded {last_write:.2f} s after the DCS went away"
        assert not cluster.primaries()
    finally:
        writer.stop()
        dcs.start()
    healthy(cluster)


def test_kill9_failover(backend_cluster: Tuple[str, Any, LocalCluster]) -> None:
    kind, dcs, cluster = backend_cluster
    old = healthy(cluster)
    writer = Writer(cluster).start()
    try:
        wait_for(lambda: len(writer.acked) >= 20, 30, "some acknowledged writes")
        # Replication is asynchronous: a commit acknowledged in the last milliseconds
        # before a kill -9 may not have left the primary, whatever the DCS.  What must
        # survive is what the replicas had received, and every write acknowledged
        # once the new primary is there (nobody else may accept writes).
        replicated = list(writer.acked)
        for node in cluster.nodes:
            wait_for(lambda node=node: set(replicated) <= set(rows_on(node)), 60, f"{node.name} to stream")
        old.kill9()
        survivors = [n for n in cluster.nodes if n is not old]
        new = wait_for(lambda: next((n for n in survivors if n.is_primary()), None), 90,
                       f"a new primary among the survivors ({kind})")
        acked_before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= acked_before + 20, 60, "writes on the new primary")
    finally:
        writer.stop()
    present = set(rows_on(new))
    lost = [i for i in replicated + writer.acked[acked_before:] if i not in present]
    assert not lost, f"acknowledged rows lost: {lost[:10]}"
    assert dcs.get(f"/service/{cluster.scope}/leader") == new.name
    other = next(n for n in survivors if n is not new)
    wait_for(lambda: (other.status() or {}).get("role") == "replica", 60, "the other replica to follow")
    # the killed member's key goes with its lease / session
    wait_for(lambda: dcs.get(f"/service/{cluster.scope}/members/{old.name}") is None, 60,
             f"{old.name}'s member key to expire")


@pytest.mark.parametrize("kind", ["etcd3", "consul"])
def test_misconfigured_dcs_is_logged_and_survived(kind: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Wrong port (etcd3) / bad ACL token (consul): the daemon says which endpoint
    failed and why, keeps running and never claims the leader role."""
    if not _available(kind):
        pytest.skip(f"no {kind} server binary")
    server: Optional[ConsulProcess] = None
    if kind == "etcd3":
        url = f"http://127.0.0.1:{free_port()}"
        section: Dict[str, Any] = {"etcd3": {"hosts": [url[len("http://"):]]}}
        expected = f"etcd3 {url}: connection refused"
    else:
        server = ConsulProcess(str(tmp_path_factory.mktemp("consul-acl")), acl_token="root-secret")
        server.start()
        section = {"consul": {"url": server.url, "token": "not-the-token"}}
        expected = f"consul {server.url}: permission denied (token): ACL not found"
    cluster = LocalCluster(str(tmp_path_factory.mktemp(f"misconfigured-{kind}")), "", nodes=1, ttl=TTL,
                           loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT, scope=f"qhb-bad-{kind}",
                           dcs=lambda: section)
    node = cluster.nodes[0]
    try:
        with running(cluster):
            wait_for(lambda: expected in open(node.log_path, encoding="utf-8").read(), 60,
                     f"a log line saying {expected!r}")
            wait_for(lambda: open(node.log_path, encoding="utf-8").read().count(expected) >= 2, 60,
                     "the next cycle to fail the same way")
            assert node.running(), node.log_tail()
            assert not node.is_primary()
    finally:
        if server is not None:
            server.stop()
