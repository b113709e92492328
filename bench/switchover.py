"""Planned switchover with patronictl, repeatedly, under a writer every 50 ms.

    python bench/switchover.py [RUNS]     (as an unprivileged user; default 5 switchovers per timing set)

Per run it prints the write-unavailability window (last acknowledged write before
`patronictl switchover --force` was started to the first acknowledged write on the
new primary) and checks that no acknowledged row was lost.
Target (issue #3): <= 0.5 s median (Patroni 3.0.2 here: 1.11 s; 4.1.5: 2.11 s).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import List

from common import REPO, TIMINGS, Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster, Writer, rows_on, wait_for


def switchover(cluster: LocalCluster, leader: str, candidate: str) -> str:
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run(
        [sys.executable, "-m", "patronictl.cli", "-c", cluster.nodes[0].config_path, "switchover",
         "--leader", leader, "--candidate", candidate, "--force"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0 or "Successfully switched over" not in out.stdout:
        raise RuntimeError(f"switchover failed: {out.stdout}\n{out.stderr}")
    return out.stdout


def main() -> None:
    refuse_root()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    for label, (ttl, lw, rt) in TIMINGS.items():
        windows: List[float] = []
        lost_total = 0
        with tempfile.TemporaryDirectory(prefix="qhb-bench-switchover-") as base:
            etcd = Etcd(base)
            cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-so")
            try:
                cluster.start()
                cluster.wait_all_running(timeout=300)
                writer = Writer(cluster, interval=0.05).start()
                for i in range(runs):
                    primary = cluster.wait_all_running(timeout=300)
                    candidate = next(n for n in cluster.nodes if n is not primary and n.status())
                    wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                    time.sleep(1.0)
                    started = time.monotonic()
                    last_ack_before = writer.ack_times[-1]
                    switchover(cluster, primary.name, candidate.name)
                    wait_for(candidate.is_primary, 60, "the candidate to be primary")
                    promoted_seen = time.monotonic()
                    wait_for(lambda w=writer, p=promoted_seen: w.ack_times[-1] > p, 60, "a write on the new primary")
                    # The longest pause between acknowledged writes since the command was started.
                    gaps = [b - a for a, b in zip(writer.ack_times, writer.ack_times[1:]) if b > started]
                    window = max(gaps, default=0.0)
                    windows.append(window)
                    acked = list(writer.acked)
                    present = set(rows_on(candidate))
                    lost = [r for r in acked if r not in present]
                    lost_total += len(lost)
                    print(f"{label} run {i + 1}: {primary.name} -> {candidate.name}, unavailable {window:.3f} s "
                          f"(last ack before the command {started - last_ack_before:.3f} s earlier), "
                          f"acknowledged rows lost: {len(lost)}{' ' + str(lost[:5]) if lost else ''}", flush=True)
                    wait_for(lambda c=cluster: c.all_running(), 120, "everybody running again")
                writer.stop()
            finally:
                cluster.stop()
                etcd.stop()
        print(summary(f"{label}: write unavailability", windows))
        print(f"{label}: acknowledged rows lost: {lost_total}", flush=True)


if __name__ == "__main__":
    main()
