"""Shared by the side-by-side benchmarks: `--impl ours|patroni` (Patroni 3.0.2 from its
reference venv, tests/fixtures/patroni302.py), patronictl of that implementation, and
a poller for "is this member streaming from that primary"."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import List, Optional, Tuple

from common import REPO, TIMINGS

from tests.e2e.harness import LocalCluster, Node, in_recovery, wait_for

IMPLS = ("ours", "patroni")


def add_impl_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--impl", choices=IMPLS, default="ours",
                        help="ours (qhb-patroni) or patroni (3.0.2 from /opt/patroni-3.0.2)")


def timed_runs(description: str) -> Tuple[argparse.Namespace, List[Tuple[str, Tuple[int, int, int]]]]:
    """The command line shared by the per-timing benchmarks (RUNS, --fast-only, --impl):
    the parsed arguments and the (label, (ttl, loop_wait, retry_timeout)) sets to run;
    prints the implementation and the load first."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--fast-only", action="store_true", help="only the fast timing set")
    add_impl_arg(parser)
    args = parser.parse_args()
    print(f"implementation: {args.impl}; load: {os.getloadavg()[0]:.2f}", flush=True)
    sets = [(f"{args.impl} {label}", timing) for label, timing in TIMINGS.items()
            if not args.fast_only or label.startswith("fast")]
    return args, sets


def start_cluster(cluster: LocalCluster, impl: str, timeout: float = 300) -> None:
    """Start the cluster running `impl` and wait for 1 primary + 2 running replicas.
    Patroni 3.0.2 cannot bootstrap a cluster with QHB's file names (it looks for
    qhb.conf after initdb), so ours bootstraps it, stops cleanly, and 3.0.2 takes
    over the data directories, as in the mixed-cluster e2e test."""
    cluster.start()
    cluster.wait_all_running(timeout=timeout)
    if impl != "patroni":
        return
    from tests.fixtures import patroni302

    if not patroni302.available():
        sys.exit(f"Patroni 3.0.2 is not installed at {patroni302.VENV}")
    cluster.stop()
    patroni302.use_patroni_302(cluster)
    cluster.start()
    cluster.wait_all_running(timeout=timeout)
    # 3.0.2 answers GET /primary while the promotion it just started is still running.
    wait_for(lambda: _writable(cluster), timeout, "a writable primary")


def _writable(cluster: LocalCluster) -> bool:
    primary = cluster.primary()
    try:
        return primary is not None and not in_recovery(primary)
    except Exception:
        return False


def patronictl_cmd(cluster: LocalCluster, impl: str) -> List[str]:
    """The patronictl of `impl`, pointed at node 0's config (written by its start())."""
    if impl == "patroni":
        from tests.fixtures import patroni302

        return [patroni302.PATRONICTL, "-c", cluster.nodes[0].config_path]
    return [sys.executable, "-m", "patronictl.cli", "-c", cluster.nodes[0].config_path]


def patronictl_env(impl: str) -> dict:
    if impl == "patroni":
        from tests.fixtures import patroni302

        return patroni302.clean_env()
    return dict(os.environ, PYTHONPATH=REPO)


def run_patronictl(cluster: LocalCluster, impl: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(patronictl_cmd(cluster, impl) + list(args), cwd=REPO, env=patronictl_env(impl),
                          capture_output=True, text=True, timeout=120)


class StreamingProbe:
    """Polls pg_stat_replication on `primary` (one connection, every `interval` s)."""

    def __init__(self, primary: Node, interval: float = 0.01) -> None:
        self.primary = primary
        self.interval = interval
        self.conn = None

    def _connect(self) -> None:
        import psycopg2

        self.conn = psycopg2.connect(self.primary.dsn())
        self.conn.autocommit = True

    def streaming(self, name: str) -> bool:
        try:
            if self.conn is None:
                self._connect()
            assert self.conn is not None
            with self.conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'",
                            (name,))
                return cur.fetchone() is not None
        except Exception:
            self.close()
            return False

    def wait(self, name: str, timeout: float) -> Optional[float]:
        """The monotonic time at which `name` was first seen streaming, None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.streaming(name):
                return time.monotonic()
            time.sleep(self.interval)
        return None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None
