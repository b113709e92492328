"""Crash rejoin: kill -9 a member (daemon and postmaster), start its daemon again and
time until it streams from the primary, under a writer every 50 ms.

    python bench/rejoin.py [RUNS] [--impl ours|patroni] [--fast-only]
        (as an unprivileged user; default 5 runs of each case per timing set)

Two cases per run:
  * replica: a replica is killed, the writer goes on for 1 s, its daemon is started;
  * former primary: the primary is killed, another member takes over (the writer writes
    on it for 1 s), then the old primary's daemon is started: crash recovery and, when
    its WAL went past the new timeline's fork, pg_rewind before it can stream.
The figure is from starting the daemon to the member's row in pg_stat_replication on
the primary showing `streaming` (polled every 10 ms).
Target (issue 14.4, fast timings): <= 2 s in both cases (ours before: 2.7-3.2 s).
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Dict, List

from common import Etcd, refuse_root, summary
from impl import StreamingProbe, start_cluster, timed_runs

from tests.e2e.harness import LocalCluster, Node, Writer, wait_for


def rejoin(node: Node, primary: Node) -> float:
    probe = StreamingProbe(primary)
    try:
        started = time.monotonic()
        node.start()
        at = probe.wait(node.name, 120)
        if at is None:
            raise RuntimeError(f"{node.name} did not stream from {primary.name} within 120 s:\n{node.log_tail()}")
        return at - started
    finally:
        probe.close()


def main() -> None:
    refuse_root()
    args, sets = timed_runs("crash rejoin benchmark")
    for label, (ttl, lw, rt) in sets:
        figures: Dict[str, List[float]] = {"replica": [], "former primary": []}
        with tempfile.TemporaryDirectory(prefix="qhb-bench-rejoin-") as base:
            etcd = Etcd(base)
            cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-rj")
            try:
                start_cluster(cluster, args.impl)
                writer = Writer(cluster, interval=0.05).start()
                for i in range(args.runs):
                    # A crashed replica.
                    primary = cluster.wait_all_running(timeout=300)
                    replica = next(n for n in cluster.nodes if n is not primary)
                    wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                    replica.kill9()
                    time.sleep(1.0)
                    t = rejoin(replica, primary)
                    figures["replica"].append(t)
                    print(f"{label} run {i + 1}: replica {replica.name} streaming {t:.3f} s after its daemon "
                          f"started, load {os.getloadavg()[0]:.2f}", flush=True)
                    # A crashed primary, rejoining after a failover.
                    old = cluster.wait_all_running(timeout=300)
                    time.sleep(1.0)
                    old.kill9()
                    killed = time.monotonic()
                    wait_for(lambda c=cluster, o=old: c.primary() not in (None, o), ttl * 4, "a new primary")
                    wait_for(lambda w=writer, k=killed: w.ack_times[-1] > k + 0.2, 60, "writes on the new primary")
                    time.sleep(1.0)
                    new = cluster.primary()
                    assert new is not None and new is not old
                    t = rejoin(old, new)
                    figures["former primary"].append(t)
                    print(f"{label} run {i + 1}: former primary {old.name} streaming from {new.name} {t:.3f} s "
                          f"after its daemon started, load {os.getloadavg()[0]:.2f}", flush=True)
                writer.stop()
            finally:
                cluster.stop()
                etcd.stop()
        for case, values in figures.items():
            print(summary(f"{label}: {case} streaming after its daemon started", values))


if __name__ == "__main__":
    main()
