"""Shared bits for the benchmarks: run as an unprivileged user, etcd process, figures."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.e2e.harness import free_port, http_get, wait_for  # noqa: E402

TIMINGS = {"fast (ttl 10, loop_wait 2, retry_timeout 4)": (10, 2, 4),
           "default (ttl 30, loop_wait 10, retry_timeout 10)": (30, 10, 10)}


def refuse_root() -> None:
    if os.geteuid() == 0:
        sys.exit("run benchmarks as an unprivileged user, e.g.\n"
                 "  runuser -u qhbtest -- /opt/qhb-patroni/venv/bin/python " + " ".join(sys.argv)
                 + "\n(from a copy of the tree that user can read)")


class Etcd:
    def __init__(self, base: str) -> None:
        self.client, self.peer = free_port(), free_port()
        self.host = f"127.0.0.1:{self.client}"
        os.makedirs(base, exist_ok=True)
        self.proc = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", os.path.join(base, "etcd"), "--enable-v2=true",
             "--listen-client-urls", f"http://{self.host}", "--advertise-client-urls", f"http://{self.host}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
             "--initial-cluster", f"bench=http://127.0.0.1:{self.peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: http_get(f"http://{self.host}/health")[0] == 200, 30, "etcd")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def summary(label: str, values: Sequence[float], unit: str = "s") -> str:
    if not values:
        return f"{label}: no data"
    vals: List[float] = sorted(values)
    return (f"{label}: median {statistics.median(vals):.3f} {unit}, min {vals[0]:.3f}, max {vals[-1]:.3f} "
            f"(n={len(vals)})")


def report(rows: List[Dict[str, Any]]) -> None:
    for row in rows:
        print("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
