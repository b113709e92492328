"""Garbage in every DCS key of a live 3-node cluster (issue 12): real etcd, real
databases, real daemons.  Whatever someone writes into the keys - non-finite
numbers, JSON nested 100,000 levels deep, bytes that are not UTF-8, values of
the wrong type, an unusable schedule - the primary's postmaster is not
restarted, every daemon keeps running, the cluster keeps exactly one leader,
and each bad value is logged once per DCS handle, not every cycle.

The leader key is the one key left out: a different value there is a takeover
of the lock (the primary must demote), not a value to decode."""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from typing import Dict, Iterator, List, Tuple

import psycopg2
import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, running
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e

DEEP = "[" * 100_000 + "]" * 100_000
NOT_UTF8 = b"\xff\xfe{\"optime\": \x80}"
# Rounds of (key, raw value); each round is written at once, then the cluster is watched.
ROUNDS: List[List[Tuple[str, bytes]]] = [
    [  # non-finite and out-of-range numbers
        ("config", b'{"ttl": Infinity, "loop_wait": -1, "retry_timeout": 1e400}'),
        ("status", b'{"optime": 1e400, "slots": {"a": NaN}}'),
        ("members/evil", b'{"conn_url": "postgres://127.0.0.1:1/x", "state": "running", "role": "replica", '
                         b'"xlog_location": Infinity, "timeline": 1e400, "api_url": "http://127.0.0.1:1/patroni"}'),
        ("history", b'[[1e400, 100, "x"], [NaN, 1]]'),
        ("optime/leader", b"1e400"),
        ("failover", b'{"leader": "node0", "member": "node1", "scheduled_at": "0001-01-01T00:00:00+01:00"}'),
    ],
    [  # nesting
        ("config", DEEP.encode()),
        ("status", DEEP.encode()),
        ("sync", DEEP.encode()),
        ("failsafe", DEEP.encode()),
        ("members/evil", ('{"tags": ' + DEEP + "}").encode()),
        ("failover", ('{"leader": ' + DEEP + "}").encode()),
    ],
    [  # bytes that are not UTF-8
        ("config", NOT_UTF8),
        ("status", NOT_UTF8),
        ("sync", NOT_UTF8),
        ("history", NOT_UTF8),
        ("failsafe", NOT_UTF8),
        ("failover", NOT_UTF8),
        ("initialize", b"\xff\xfe not a system id"),
        ("members/evil", NOT_UTF8),
    ],
    [  # wrong types and a naive schedule
        ("config", b'{"ttl": "thirty", "postgresql": {"parameters": {"work_mem\\ninclude \'/etc/passwd\'": 1}}}'),
        ("status", b'{"optime": {"x": 1}, "slots": [1, 2]}'),
        ("sync", b'{"leader": ["node0"], "sync_standby": {"node1": true}}'),
        ("history", b'{"not": "a list"}'),
        ("failsafe", b'["node0"]'),
        ("failover", b'{"leader": "node0", "member": "node1", "scheduled_at": "2030-01-01T00:00:00"}'),
        ("members/evil", b'[1, 2, 3]'),
        ("initialize", b"9" * 5000),  # digits, but no 64-bit system identifier
    ],
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    c = LocalCluster(str(tmp_path_factory.mktemp("cluster")), etcd.host_port, nodes=3, scope="qhb-garbage")
    with running(c):
        healthy(c)
        yield c


def put_raw(cluster: LocalCluster, key: str, value: bytes) -> None:
    url = f"http://{cluster.etcd_host}/v2/keys/service/{cluster.scope}/{key}"
    body = b"value=" + urllib.parse.quote_from_bytes(value).encode("ascii")
    req = urllib.request.Request(url, data=body, method="PUT",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201)


def postmaster(node: Node) -> Tuple[int, str]:
    pid = node.postmaster_pid()
    assert pid is not None
    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_postmaster_start_time()::text")
        return pid, str(cur.fetchone()[0])


def leaders(cluster: LocalCluster) -> List[str]:
    return [n.name for n in cluster.nodes if n.running() and n.is_primary()]


def log_count(node: Node, text: str) -> int:
    with open(node.log_path, encoding="utf-8", errors="replace") as f:
        return f.read().count(text)


def test_garbage_in_every_key_stops_nothing(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    before = postmaster(primary)
    watched = 4 * cluster.loop_wait + 2  # several HA cycles of every node per round
    try:
        for number, garbage in enumerate(ROUNDS, 1):
            for key, value in garbage:
                put_raw(cluster, key, value)
            deadline = time.monotonic() + watched
            while time.monotonic() < deadline:
                assert all(n.running() for n in cluster.nodes), f"round {number}: a daemon exited"
                assert leaders(cluster) == [primary.name], f"round {number}: leaders {leaders(cluster)}"
                time.sleep(0.5)
            assert postmaster(primary) == before, f"round {number}: the primary's postmaster was restarted"
            replicas: Dict[str, object] = {n.name: (n.status() or {}).get("state") for n in cluster.nodes
                                           if n is not primary}
            assert set(replicas.values()) == {"running"}, f"round {number}: {replicas}"
    except AssertionError:
        print(cluster.dump_logs())
        raise
    # Each bad value is logged, once per DCS handle of the daemon, not once per cycle
    # (the key stayed bad for many cycles).
    where = f"/service/{cluster.scope}/members/evil"
    for node in cluster.nodes:
        count = log_count(node, f"ignoring invalid DCS value at {where}:")
        assert 1 <= count <= 3 * len(ROUNDS), (node.name, count)
    # The config nobody can use was ignored: the cluster still runs on the last valid one,
    # and says so.
    assert all(log_count(n, "ignoring the dynamic configuration in the DCS") >= 1 for n in cluster.nodes)
    status = json.loads(urllib.request.urlopen(primary.api + "/patroni", timeout=5).read())
    assert status["role"] == "master" and status["state"] == "running"
