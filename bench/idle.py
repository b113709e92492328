"""Idle cost of the daemon: resident memory and CPU seconds per idle minute.

    python bench/idle.py [RUNS] [--seconds S] [--impl ours|patroni] [--strace]
        (as an unprivileged user; default 5 runs of 60 s idling each)

Per run it starts 3 daemons on etcd (v2 API) with the default timings (ttl 30,
loop_wait 10, retry_timeout 10), waits until the cluster is up and has settled, then
reads each daemon's VmRSS and its CPU time (user + system, from /proc/PID/stat, the
daemon process and any children it waited for) at the start and at the end of the idle
period, and, finer, the on-CPU time of its threads from schedstat.  With --strace the
system calls of each daemon during the idle period are counted (strace -c), which
slows the daemons: CPU figures of such a run are not comparable.  Figures are per daemon
process (the database is not counted), reported separately for the leader and the
replicas.  `--impl patroni` runs Patroni 3.0.2 (tests/fixtures/patroni302.py).  Issue #14
compares them with Patroni 3.0.2 measured here: about 44 MB and 0.06-0.13 CPU seconds per idle minute.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from typing import Dict, List, Tuple

from common import Etcd, refuse_root, summary, use_patroni_302_cluster

from tests.e2e.harness import LocalCluster
from tests.fixtures import patroni302

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
    # utime, stime, cutime, cstime (fields 14-17): children such as a controldata call count too
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def cpu_ns_threads(pid: int) -> int:
    """On-CPU nanoseconds of the process's live threads (/proc/PID/task/*/schedstat): finer
    than the clock ticks of /proc/PID/stat, which at these rates (a few ticks a minute)
    round away differences of 10-20%.  Threads that ended meanwhile are not counted."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def start_strace(pid: int, out: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(seconds: float, impl: str, strace: bool = False) -> Dict[str, List[Tuple[float, float, float]]]:
    """{"leader": [(rss MB, cpu s/min)], "replica": [...]} for one idle period."""
    with tempfile.TemporaryDirectory(prefix="qhb-bench-idle-") as base:
        etcd = Etcd(base)
        cluster = LocalCluster(base, etcd.host, ttl=30, loop_wait=10, retry_timeout=10, scope="bench-idle")
        if impl == "patroni":
            use_patroni_302_cluster(cluster)
        try:
            cluster.start()
            primary = cluster.wait_all_running(timeout=300)
            time.sleep(SETTLE)
            pids = {n.name: n.proc.pid for n in cluster.nodes if n.proc is not None}
            start = {name: cpu_seconds(pid) for name, pid in pids.items()}
            start_ns = {name: cpu_ns_threads(pid) for name, pid in pids.items()}
            tracers = {name: start_strace(pid, os.path.join(base, f"strace-{name}.txt"))
                       for name, pid in pids.items()} if strace else {}
            time.sleep(seconds)
            for tracer in tracers.values():
                tracer.terminate()
                tracer.wait(10)
            out: Dict[str, List[Tuple[float, float, float]]] = {"leader": [], "replica": []}
            for name, pid in pids.items():
                cpu = (cpu_seconds(pid) - start[name]) * 60.0 / seconds
                fine = (cpu_ns_threads(pid) - start_ns[name]) / 1e9 * 60.0 / seconds
                role = "leader" if name == primary.name else "replica"
                out[role].append((rss_mb(pid), cpu, fine))
                print(f"  [{impl}] {name} ({role}): RSS {rss_mb(pid):.1f} MB, CPU {cpu:.3f} s per idle minute "
                      f"(threads' schedstat: {fine:.4f} s)", flush=True)
                if strace:
                    with open(os.path.join(base, f"strace-{name}.txt"), encoding="utf-8", errors="replace") as f:
                        print("".join(f.readlines()[:14]), flush=True)
            return out
        finally:
            cluster.stop()
            etcd.stop()


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="idle cost benchmark")
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--impl", choices=("ours", "patroni"), default="ours")
    parser.add_argument("--strace", action="store_true",
                        help="count each daemon's system calls while idle (inflates the CPU figures)")
    args = parser.parse_args()
    if args.impl == "patroni" and not patroni302.available():
        raise SystemExit(f"Patroni 3.0.2 not found at {patroni302.PATRONI}")
    print(f"impl={args.impl}, load average at start: {os.getloadavg()}", flush=True)
    figures: Dict[str, List[Tuple[float, float, float]]] = {"leader": [], "replica": []}
    for i in range(args.runs):
        print(f"[{args.impl}] run {i + 1} ({args.seconds:.0f} s idle):", flush=True)
        for role, vals in one_run(args.seconds, args.impl, args.strace).items():
            figures[role].extend(vals)
    for role, vals in figures.items():
        print(summary(f"[{args.impl}] {role} daemon RSS", [v[0] for v in vals], "MB"))
        print(summary(f"[{args.impl}] {role} daemon CPU seconds per idle minute", [v[1] for v in vals]))
        print(summary(f"[{args.impl}] {role} daemon CPU seconds per idle minute (schedstat)", [v[2] for v in vals]))
    print(f"load average at end: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
