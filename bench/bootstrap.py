"""Time from starting 3 daemons on empty data directories to all members running.

    python bench/bootstrap.py [RUNS]      (as an unprivileged user; default 3 runs per timing set)

Targets (issue #2): <= 3 s with ttl 10 / loop_wait 2 / retry_timeout 4, <= 6 s with the defaults.
"""
from __future__ import annotations

import sys
import tempfile
import time

from common import TIMINGS, Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster


def one_run(ttl: int, loop_wait: int, retry_timeout: int) -> float:
    with tempfile.TemporaryDirectory(prefix="qhb-bench-boot-") as base:
        etcd = Etcd(base)
        cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout,
                               scope="bench-boot")
        try:
            t0 = time.monotonic()
            cluster.start()
            while not cluster.all_running():
                if time.monotonic() - t0 > 300:
                    raise RuntimeError("cluster did not come up:\n" + cluster.dump_logs())
                time.sleep(0.05)
            return time.monotonic() - t0
        finally:
            cluster.stop()
            etcd.stop()


def main() -> None:
    refuse_root()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for label, (ttl, lw, rt) in TIMINGS.items():
        times = []
        for i in range(runs):
            t = one_run(ttl, lw, rt)
            print(f"{label} run {i + 1}: all 3 members running after {t:.3f} s", flush=True)
            times.append(t)
        print(summary(f"{label} bootstrap", times))


if __name__ == "__main__":
    main()
