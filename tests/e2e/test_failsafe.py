"""failsafe_mode and pause during a DCS outage, end to end on a real etcd and a real
Consul agent (both keep their data across the outage):

* 3 nodes, the DCS stopped: the primary keeps accepting writes well past ttl (every
  member accepted its POST /failsafe), GET /primary 200, failsafe_mode_is_active;
  no replica promotes; when the DCS returns the same node holds the lock again.
* 3 nodes, the DCS stopped and then one replica stopped: the primary demotes.
* 1 node, the DCS stopped: it stays writable (nobody to ask).
* pause, the DCS stopped: the primary stays primary, nothing is stopped, the REST
  API answers.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, http_get, in_recovery, patronictl, running, wait_for
from tests.fixtures.consul import ConsulProcess, consul_available
from tests.fixtures.etcd import ETCD_BIN, EtcdProcess
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.e2e

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4


class _Dcs:
    """A stoppable DCS server that keeps its data (etcd v2 section or Consul)."""

    def __init__(self, kind: str, work_dir: str) -> None:
        self.kind = kind
        self.server: Any
        if kind == "etcd":
            self.server = EtcdProcess(work_dir, free_port(), free_port())
        else:
            self.server = ConsulProcess(work_dir, persistent=True, extra_hcl=['session_ttl_min = "1s"'])

    def section(self) -> Dict[str, Any]:
        if self.kind == "etcd":
            return {"etcd": {"hosts": [self.server.host_port]}}
        return {"consul": {"host": self.server.host_port}}


@pytest.fixture(scope="module", params=["etcd", "consul"])
def dcs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Dcs]:
    kind = str(request.param)
    if not (consul_available() if kind == "consul" else os.path.exists(ETCD_BIN)):
        pytest.skip(f"no {kind} server binary")
    d = _Dcs(kind, str(tmp_path_factory.mktemp(kind)))
    d.server.start()
    yield d
    d.server.stop()


def _cluster(dcs: _Dcs, tmp_path_factory: pytest.TempPathFactory, nodes: int, scope: str) -> LocalCluster:
    base = str(tmp_path_factory.mktemp(scope))
    return LocalCluster(base, "", nodes=nodes, ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT,
                        scope=f"{scope}-{dcs.kind}", dcs=dcs.section, dynamic={"failsafe_mode": True})


def _get_json(node: Node, path: str) -> Tuple[int, Optional[Dict[str, Any]]]:
    try:
        code, body = http_get(node.api + path, timeout=2.0)
    except (OSError, urllib.error.URLError):
        return 0, None
    try:
        doc = json.loads(body)
    except ValueError:
        return code, None
    return code, doc if isinstance(doc, dict) else None


def _write(node: Node, value: int) -> bool:
    import psycopg2

    try:
        with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SET statement_timeout = 2000")
            cur.execute("CREATE TABLE IF NOT EXISTS fs_rows (id bigint PRIMARY KEY)")
            cur.execute("INSERT INTO fs_rows (id) VALUES (%s)", (value,))
        return True
    except Exception:
        return False


def _failsafe_key_lists(node: Node, names: Any) -> bool:
    code, doc = _get_json(node, "/failsafe")
    return code == 200 and doc is not None and sorted(doc) == sorted(names)


def _stays_primary_without_dcs(primary: Node, seconds: float) -> None:
    """Writable, GET /primary 200 and failsafe_mode_is_active for `seconds` (> ttl)."""
    # Active once the first DCS read has failed (loop_wait + retry_timeout at most on a calm
    # machine); were it later than the lease, the lease guard would have fenced the primary
    # and the writes below would fail.
    wait_for(lambda: (_get_json(primary, "/patroni")[1] or {}).get("failsafe_mode_is_active") is True,
             TTL + RETRY_TIMEOUT, "failsafe mode to become active")
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        assert _write(primary, int(time.time() * 1000) + n), "the failsafe primary refused a write"
        assert primary.is_primary(), "GET /primary stopped answering 200"
        time.sleep(1.0)
    assert not in_recovery(primary)


@pytest.fixture(scope="module")
def three(dcs: _Dcs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with running(_cluster(dcs, tmp_path_factory, 3, "fs3")) as c:
        yield c


def test_three_nodes_stay_writable_and_the_leader_keeps_its_lock(three: LocalCluster, dcs: _Dcs) -> None:
    primary = healthy(three)
    wait_for(lambda: _failsafe_key_lists(primary, [n.name for n in three.nodes]), 30, "/failsafe with all members")
    timeline = (primary.status() or {}).get("timeline")
    dcs.server.stop()
    try:
        _stays_primary_without_dcs(primary, TTL * 2)
        assert three.primaries() == [primary]  # no replica promoted
        for node in three.nodes:
            if node is not primary:
                assert in_recovery(node)
    finally:
        dcs.server.start()
    # The DCS is back: the same node leads, on the same timeline (nobody promoted).
    wait_for(lambda: (_get_json(primary, "/cluster")[1] or {}).get("members") is not None
             and _leader_of(primary) == primary.name, 60, "the old leader to hold the lock again")
    assert healthy(three) is primary
    assert (primary.status() or {}).get("timeline") == timeline
    wait_for(lambda: "failsafe_mode_is_active" not in (primary.status() or {}), 30, "failsafe mode to end")


def _leader_of(node: Node) -> Optional[str]:
    out = _get_json(node, "/cluster")[1] or {}
    leaders = [m.get("name") for m in out.get("members", []) if m.get("role") in ("leader", "master")]
    return leaders[0] if len(leaders) == 1 else None


def test_three_nodes_demote_when_a_replica_does_not_answer(three: LocalCluster, dcs: _Dcs) -> None:
    primary = healthy(three)
    wait_for(lambda: _failsafe_key_lists(primary, [n.name for n in three.nodes]), 30, "/failsafe with all members")
    victim = next(n for n in three.nodes if n is not primary)
    dcs.server.stop()
    try:
        wait_for(lambda: (_get_json(primary, "/patroni")[1] or {}).get("failsafe_mode_is_active") is True,
                 TTL, "failsafe mode to become active")
        assert victim.terminate() == 0  # its REST API is gone: it cannot answer POST /failsafe
        wait_for(lambda: in_recovery(primary), TTL + RETRY_TIMEOUT + 10, "the primary to demote itself")
        assert not three.primaries()
        assert not _write(primary, 1)
    finally:
        dcs.server.start()
        victim.start()
    healthy(three)


def test_pause_and_dcs_outage_change_nothing(three: LocalCluster, dcs: _Dcs) -> None:
    primary = healthy(three)
    assert patronictl(three, "pause", "--wait").returncode == 0
    pids = {n.name: n.postmaster_pid() for n in three.nodes}
    dcs.server.stop()
    try:
        time.sleep(TTL * 2)
        assert not in_recovery(primary) and _write(primary, 7)
        assert {n.name: n.postmaster_pid() for n in three.nodes} == pids  # nothing stopped or restarted
        for node in three.nodes:
            code, doc = _get_json(node, "/patroni")
            assert code == 200 and doc is not None and doc.get("state") == "running"
        assert primary.is_primary()
    finally:
        dcs.server.start()
    wait_for(lambda: patronictl(three, "resume", "--wait").returncode == 0, 60, "resume")
    assert healthy(three) is primary


def test_one_node_stays_writable(dcs: _Dcs, tmp_path_factory: pytest.TempPathFactory) -> None:
    with running(_cluster(dcs, tmp_path_factory, 1, "fs1")) as c:
        primary = healthy(c)
        wait_for(lambda: _failsafe_key_lists(primary, [primary.name]), 30, "/failsafe with the one member")
        dcs.server.stop()
        try:
            _stays_primary_without_dcs(primary, TTL * 2)
        finally:
            dcs.server.start()
        wait_for(lambda: _leader_of(primary) == primary.name, 60, "the node to hold its lock again")
        healthy(c)
