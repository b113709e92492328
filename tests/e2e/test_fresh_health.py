"""End to end: the REST API answers with the state of the moment (issue 15 item 1).

A postmaster that exits is seen by the very next request; a role the member key
announces is already shown by the REST API; /primary answers 200 only while the
database accepts writes. One 2-member cluster on etcd (v2 API)."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import psycopg2
import pytest

from tests.e2e.harness import LocalCluster, Node, etcd_key, healthy, http_get, patronictl, running, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("fresh-cluster"))
    with running(LocalCluster(base, etcd.host_port, nodes=2, ttl=10, loop_wait=2, retry_timeout=4,
                              scope="qhb-fresh")) as c:
        yield c


def _code(node: Node, path: str) -> int:
    return int(http_get(node.api + path, timeout=2.0)[0])


def test_an_exited_postmaster_is_seen_by_the_very_next_request(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not primary)
    wait_for(lambda: _code(replica, "/replica") == 200, 30, "the replica to answer /replica")
    pm = replica.postmaster_pid()
    assert pm is not None
    os.kill(pm, signal.SIGKILL)
    wait_for(lambda: replica.postmaster_pid() is None, 10, "the postmaster to be gone", 0.01)
    # No pause for a sampler: the first requests after the exit already know.
    assert _code(replica, "/replica") == 503
    assert _code(replica, "/health") == 503
    doc = json.loads(http_get(replica.api + "/patroni")[1])
    assert doc["state"] != "running" and "postmaster_start_time" not in doc
    healthy(cluster)  # the daemon starts it again


def test_a_role_the_member_key_announces_is_already_in_the_rest_api(cluster: LocalCluster) -> None:
    """During a switchover, every time the member key in etcd says the candidate is
    the primary, its REST API says so too; and /primary never answers 200 on a node
    whose database refuses writes."""
    old = healthy(cluster)
    candidate = next(n for n in cluster.nodes if n is not old)
    seen: List[Tuple[str, Optional[str], int]] = []  # (member key role, REST role, /primary)
    refused_while_200: List[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            member = json.loads(etcd_key(cluster, f"members/{candidate.name}") or "{}")
            if member.get("role") == "master":
                doc: Dict[str, Any] = json.loads(http_get(candidate.api + "/patroni")[1])
                seen.append(("master", doc.get("role"), _code(candidate, "/primary")))
            time.sleep(0.02)

    def probe_writes() -> None:
        while not stop.is_set():
            if _code(candidate, "/primary") == 200:
                try:
                    with psycopg2.connect(candidate.dsn()) as conn, conn.cursor() as cur:
                        cur.execute("CREATE TABLE IF NOT EXISTS fresh_probe (id int)")
                except psycopg2.Error as exc:
                    refused_while_200.append(str(exc))
            time.sleep(0.02)

    threads = [threading.Thread(target=watch, daemon=True), threading.Thread(target=probe_writes, daemon=True)]
    for t in threads:
        t.start()
    try:
        out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", candidate.name, "--force")
        assert out.returncode == 0, out.stderr + out.stdout
        wait_for(lambda: len(seen) >= 10, 60, "the member key to announce the new primary a few times")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert all(rest == "master" and primary == 200 for _, rest, primary in seen), seen
    assert not refused_while_200, refused_while_200[:3]
    healthy(cluster)
