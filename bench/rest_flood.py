"""Health checks under a flood of idle connections (issue 12 item 9), run by hand
(prints figures, asserts nothing):

    python bench/rest_flood.py [--connections 1500] [--seconds 60] [--checks-per-second 5] [--burst] [--reconnect]

as an unprivileged user, from a copy of the tree that user can read (it starts etcd,
a two-node cluster and its databases), e.g.
    rm -rf /tmp/bench-src && cp -a /work/main /tmp/bench-src && chown -R qhbtest /tmp/bench-src
    cd /tmp/bench-src && runuser -u qhbtest -- /opt/qhb-patroni/venv/bin/python bench/rest_flood.py

What it does: with the cluster healthy, measures fresh-connection GET /primary on the
leader (baseline), then opens --connections idle keep-alive connections to the leader
from 15 loopback addresses (tests/e2e/flood.py: a GET on each before the idle timeout,
reopened when the server closes them) and measures the same health check for
--seconds, from an address of its own and from a flooding address. The flood sends a
GET on each held connection every ~25 s, spread evenly (--burst: all of them at once
every 5 s, which measures a burst of ~1,000 requests queued ahead of the check).
--reconnect reopens each connection the server closes at once: at the cap every new
connection closes an idle one, which the flood reopens, a storm of connections. Prints the latency
percentiles (target of the issue: every check answered, within 50 ms), the connections
the leader kept, how many it closed, and whether the leader changed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from typing import List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Etcd, refuse_root  # noqa: E402

from tests.e2e.flood import IdleFlood, fresh_get  # noqa: E402
from tests.e2e.harness import LocalCluster, http_get, wait_for  # noqa: E402

SOURCES = [f"127.0.0.{i}" for i in range(2, 17)]


def percentile(values: List[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100.0 * (len(ordered) - 1))))]


def measure(address: Tuple[str, int], source: str, seconds: float, rate: float) -> Tuple[List[float], int]:
    """Latencies (ms) of fresh-connection GET /primary, and the failures (not 200 / no answer)."""
    latencies: List[float] = []
    failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            code = fresh_get(address, "/primary", source=source, timeout=5.0)
        except OSError:
            code = 0
        if code == 200:
            latencies.append((time.perf_counter() - start) * 1000.0)
        else:
            failures += 1
        time.sleep(1.0 / rate)
    return latencies, failures


def line(label: str, latencies: List[float], failures: int) -> str:
    if not latencies:
        return f"  {label}: no answer ({failures} failures)"
    worst = max(latencies)
    over = sum(1 for v in latencies if v > 50.0)
    return (f"  {label}: n={len(latencies)} p50={percentile(latencies, 50):.2f} ms "
            f"p99={percentile(latencies, 99):.2f} ms max={worst:.2f} ms over-50ms={over} failures={failures}")


def leader(cluster: LocalCluster) -> str:
    _, body = http_get(cluster.nodes[1].api + "/cluster", timeout=5.0)
    return ",".join(m["name"] for m in json.loads(body)["members"] if m["role"] in ("leader", "master"))


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1500)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--checks-per-second", type=float, default=5.0)
    parser.add_argument("--reconnect", action="store_true",
                        help="reopen every connection the server closes (a storm of new connections at the cap)")
    parser.add_argument("--burst", action="store_true",
                        help="refresh every held connection at once every 5 s instead of spreading the GETs")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-flood-")
    etcd = Etcd(os.path.join(base, "etcd"))
    cluster = LocalCluster(base, etcd.host, nodes=2, scope="bench-flood")
    flood = None
    try:
        cluster.start()
        primary = cluster.wait_all_running(timeout=180)
        wait_for(lambda: leader(cluster) == primary.name, 60, "the replica to see the leader")
        address = ("127.0.0.1", primary.api_port)
        print(f"leader {primary.name}, REST API {address[0]}:{address[1]}")
        base_lat, base_fail = measure(address, "127.0.0.1", 10.0, args.checks_per_second)
        print(line("baseline, no flood", base_lat, base_fail))

        flood = IdleFlood(address, SOURCES)
        start = time.monotonic()
        flood.open(args.connections)
        print(f"opened {flood.opened} connections in {time.monotonic() - start:.1f} s ({flood.failed} failed)")
        stop = threading.Event()

        def refresher() -> None:
            if args.burst:  # every connection at once, every 5 s (harsher than the client)
                while not stop.wait(5.0):
                    flood.refresh(reconnect=args.reconnect)  # type: ignore[union-attr]
            else:  # each connection every ~25 s, spread evenly (the client: a GET every 29 s)
                while not stop.wait(0.5):
                    flood.refresh(limit=max(1, len(flood.socks) // 50),  # type: ignore[union-attr]
                                  reconnect=args.reconnect)

        thread = threading.Thread(target=refresher, daemon=True)
        thread.start()
        results = {}

        def run(source: str) -> None:
            results[source] = measure(address, source, args.seconds, args.checks_per_second)

        checkers = [threading.Thread(target=run, args=(s,)) for s in ("127.0.0.1", SOURCES[0])]
        for t in checkers:
            t.start()
        for t in checkers:
            t.join()
        stop.set()
        thread.join(10)
        print(line("under flood, own address", *results["127.0.0.1"]))
        print(line(f"under flood, flooding address {SOURCES[0]}", *results[SOURCES[0]]))
        print(f"  connections the leader kept: {flood.held()} of {flood.opened} opened, "
              f"{flood.closed_by_server} closed by the server")
        now = leader(cluster)
        print(f"  leader after the flood: {now} ({'unchanged' if now == primary.name else 'CHANGED'})")
    finally:
        if flood is not None:
            flood.close()
        cluster.stop()
        etcd.stop()


if __name__ == "__main__":
    main()
