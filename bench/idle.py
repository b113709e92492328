"""Idle cost of the daemon: resident memory and CPU seconds per idle minute.

    python bench/idle.py [SECONDS]    (as an unprivileged user; default 60 s of idling)

Starts 3 daemons on etcd (v2 API) with the default timings (ttl 30, loop_wait 10,
retry_timeout 10), waits until the cluster is up and has settled, then reads each
daemon's VmRSS and its CPU time (user + system, from /proc/PID/stat) at the start
and at the end of the idle period.  Figures are per daemon process (the database
is not counted).  Issue #14 compares them with Patroni 3.0.2 measured here:
about 44 MB and 0.06-0.13 CPU seconds per idle minute.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Dict, Tuple

from common import Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster

TICKS = os.sysconf("SC_CLK_TCK")
SETTLE = 20.0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def main() -> None:
    refuse_root()
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with tempfile.TemporaryDirectory(prefix="qhb-bench-idle-") as base:
        etcd = Etcd(base)
        cluster = LocalCluster(base, etcd.host, ttl=30, loop_wait=10, retry_timeout=10, scope="bench-idle")
        try:
            cluster.start()
            cluster.wait_all_running(timeout=300)
            time.sleep(SETTLE)
            pids = {n.name: n.proc.pid for n in cluster.nodes if n.proc is not None}
            start: Dict[str, Tuple[float, float]] = {name: (cpu_seconds(pid), rss_mb(pid))
                                                    for name, pid in pids.items()}
            time.sleep(seconds)
            per_minute, rss = [], []
            for name, pid in pids.items():
                cpu = (cpu_seconds(pid) - start[name][0]) * 60.0 / seconds
                mem = rss_mb(pid)
                per_minute.append(cpu)
                rss.append(mem)
                print(f"{name}: RSS {mem:.1f} MB (was {start[name][1]:.1f} MB), "
                      f"CPU {cpu:.3f} s per idle minute", flush=True)
            print(summary("daemon RSS", rss, "MB"))
            print(summary("daemon CPU seconds per idle minute", per_minute))
        finally:
            cluster.stop()
            etcd.stop()


if __name__ == "__main__":
    main()
