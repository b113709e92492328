"""Unplanned failover on Consul: kill -9 the primary (daemon and postmaster) of a
3-node cluster at ttl 10 / loop_wait 2 / retry_timeout 4, with a writer every 50 ms.

    python bench/consul_failover.py [RUNS]
        (as an unprivileged user; default 3 kills per agent)

Two agents: a stock one (session_ttl_min 10 s, so the daemons fall back to a
10 s session and a dead leader's key lives up to 20 s) and one configured with
session_ttl_min "1s" (the daemons get ttl/2 = 5 s and the key lives about ttl,
as on etcd).  Per run it prints the write-unavailability window (last
acknowledged write before the kill to the first one after it).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from typing import List, Sequence

from common import refuse_root, summary

from tests.e2e.harness import LocalCluster, Writer, wait_for
from tests.fixtures.consul import ConsulProcess

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4
AGENTS = {"stock agent (session_ttl_min 10s)": (),
          'agent with session_ttl_min "1s"': ('session_ttl_min = "1s"',)}


def run_agent(label: str, hcl: Sequence[str], runs: int) -> List[float]:
    windows: List[float] = []
    with tempfile.TemporaryDirectory(prefix="qhb-bench-consul-") as base:
        agent = ConsulProcess(base + "/consul", extra_hcl=hcl)
        agent.start()
        cluster = LocalCluster(base, "", ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT,
                               scope="bench-consul", dcs=lambda: {"consul": {"host": agent.host_port}})
        try:
            cluster.start()
            cluster.wait_all_running(timeout=300)
            writer = Writer(cluster, interval=0.05).start()
            for i in range(runs):
                primary = cluster.wait_all_running(timeout=300)
                wait_for(lambda: len(writer.acked) > 10, 60, "writes")
                time.sleep(0.5)
                last_ack_before = writer.ack_times[-1]
                primary.kill9()
                gone_at = time.monotonic()
                wait_for(lambda k=gone_at: any(t > k for t in writer.ack_times), TTL * 6, "a write on the new primary")
                window = next(t for t in writer.ack_times if t > gone_at) - last_ack_before
                windows.append(window)
                print(f"{label} run {i + 1}: unavailable {window:.3f} s", flush=True)
                primary.start()  # rejoin before the next kill
            writer.stop()
        finally:
            cluster.stop()
            agent.stop()
    return windows


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="kill -9 failover on Consul, stock and low session_ttl_min")
    parser.add_argument("runs", nargs="?", type=int, default=3)
    args = parser.parse_args()
    results = {label: run_agent(label, hcl, args.runs) for label, hcl in AGENTS.items()}
    for label, windows in results.items():
        print(summary(f"ttl {TTL}, {label}: write-unavailability window", windows))


if __name__ == "__main__":
    main()
