"""REST API throughput/latency, run by hand: `python bench/rest.py [--requests N] [--seconds S]`.

Starts RestApiServer on a free loopback port with a synthetic StatusBoard (a primary
holding the lock in a 3-member cluster) and, for GET /primary, /replica, /patroni and
/cluster at concurrency 1, 10 and 50, prints requests/s and p50/p99 latency.
Every run is bounded by a request count and a time limit.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import threading
import time
from typing import List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qhb_patroni.api.server import RestApiServer  # noqa: E402
from qhb_patroni.core.model import ClusterConfig, ClusterView, Leader, Member  # noqa: E402
from qhb_patroni.runtime.status import ServerStatus, StatusBoard, StatusView  # noqa: E402

PATHS = ("/primary", "/replica", "/patroni", "/cluster")
CONCURRENCY = (1, 10, 50)


def synthetic_board() -> StatusBoard:
    members = tuple(
        Member(
            name=f"node{i}",
            conn_url=f"postgres://10.0.0.{i + 1}:5432/qhb",
            api_url=f"http://10.0.0.{i + 1}:8008/patroni",
            state="running",
            role="master" if i == 0 else "replica",
            xlog_location=None if i == 0 else 50331900,
            timeline=2,
            data={"state": "running", "role": "master" if i == 0 else "replica", "timeline": 2},
        )
        for i in range(3)
    )
    cluster = ClusterView(
        initialize="7214159812345678901",
        config=ClusterConfig({"ttl": 30, "loop_wait": 10}, version=1),
        leader=Leader("node0", version=1, member=members[0]),
        members=members,
        last_lsn=50331968,
    )
    now = time.monotonic()
    server = ServerStatus(
        state="running", role="master", query_ok=True, in_recovery=False, server_version=150002,
        wal_location=50331968, timeline=2, sysid="7214159812345678901",
        postmaster_start_time="2023-03-24 10:11:12.123456+00:00",
    )  # fmt: skip
    view = StatusView(
        name="node0", scope="bench", version="3.0.2", api_url="http://127.0.0.1:8008/patroni",
        conn_url="postgres://10.0.0.1:5432/qhb", server=server, cluster=cluster, cluster_read_at=now,
        dcs_last_seen=int(time.time()), lease_until=now + 10**6, next_cycle_at=now + 10**6,
    )  # fmt: skip
    return StatusBoard(view)


def one_request(address: Tuple[str, int], raw: bytes) -> float:
    started = time.perf_counter()
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(raw)
        while s.recv(65536):
            pass
    return time.perf_counter() - started


def run(
    address: Tuple[str, int], path: str, concurrency: int, total: int, seconds: float
) -> Tuple[int, float, List[float]]:
    raw = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    latencies: List[float] = []
    lock = threading.Lock()
    counter = [0]
    deadline = time.monotonic() + seconds
    errors = [0]

    def worker() -> None:
        local: List[float] = []
        while time.monotonic() < deadline:
            with lock:
                if counter[0] >= total:
                    break
                counter[0] += 1
            try:
                local.append(one_request(address, raw))
            except OSError:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(local)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0], time.perf_counter() - started, latencies


def percentile(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="requests per (path, concurrency)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time limit per (path, concurrency)")
    args = parser.parse_args()

    server = RestApiServer("127.0.0.1:0", synthetic_board())
    server.start()
    try:
        print(f"qhb-patroni REST API on {server.address[0]}:{server.address[1]}, Python {sys.version.split()[0]}")
        print(f"{'path':<10} {'conc':>4} {'requests':>8} {'errors':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for path in PATHS:
            for concurrency in CONCURRENCY:
                errors, elapsed, lat = run(server.address, path, concurrency, args.requests, args.seconds)
                rate = len(lat) / elapsed if elapsed > 0 else 0.0
                print(
                    f"{path:<10} {concurrency:>4} {len(lat):>8} {errors:>6} {rate:>9.0f} "
                    f"{percentile(lat, 0.50) * 1000:>8.2f} {percentile(lat, 0.99) * 1000:>8.2f}"
                )
        if lat:
            print(f"(mean of the last run: {statistics.mean(lat) * 1000:.2f} ms)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
