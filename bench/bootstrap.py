"""Time from starting 3 daemons on empty data directories to 1 leader + 2 streaming replicas.

    python bench/bootstrap.py [RUNS] [--impl ours|patroni] [--fast-only|--default-only]
        (as an unprivileged user; default 5 runs per timing set)

The clock starts when the first daemon is launched.  Per run it prints when the first
primary answered 200 on /primary ("leader"), when every member's /patroni said
state=running ("running"), and when the leader's pg_stat_replication showed both
replicas streaming ("streaming", the figure the target is about: the end is whichever
of running and streaming comes last).  `--impl patroni` runs the same cluster with
Patroni 3.0.2 (tests/fixtures/patroni302.py).
The bench polls every POLL = 20 ms (the leader key in etcd, and /primary of its holder
until it answers 200, then one query on a kept connection to the primary, and GET /patroni of the members not
yet seen running): each mark is late by up to one poll.  --keep DIR keeps each run's logs
and a marks.txt with the wall-clock start, to read where the time goes.
Every run has its own directory, and all of them are removed together when the bench ends
(or kept with --keep), never one between runs. On the machine of issue #14 (ext4 mounted
with -o discard on a virtual disk), runs that started just after the previous run's ~150 MB
had been removed took 2.1-3.9 s instead of 1.0-1.5 s. They were as slow when the removal
was followed by a 5 s sleep, and a flush between runs (no removal) did not slow them. The
slowdown lasted into the next batch (about 2.0 s for a minute after such a batch), so
figures taken right after another bench's cleanup are higher. Patroni 3.0.2 is slowed the
same way. --remove-between-runs restores the removal, the bench's default before 2026-12-06.
Target (issue #14): <= 2.5 s median with ttl 10 / loop_wait 2 / retry_timeout 4 and with the defaults.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any, Dict, List, Optional, Set

from common import TIMINGS, Etcd, http_get, refuse_root, summary, use_patroni_302_cluster

from tests.e2e.harness import LocalCluster, Node
from tests.fixtures import patroni302

POLL = 0.02  # the bench's own resolution: a mark is up to one poll (plus the asking) late


class Watcher:
    """What the bench asks every POLL seconds, kept cheap: it shares the 2 cores with the
    cluster it times (a new database connection and 7 HTTP requests per poll, as before,
    cost the cluster CPU while it bootstraps).  One connection to the primary is kept for
    the streaming query, and a member once seen running is not asked again (during a
    bootstrap none leaves that state)."""

    def __init__(self, names: List[str]) -> None:
        self.names = names
        self.conn: Any = None
        self.seen_running: Set[str] = set()

    def primary(self, cluster: LocalCluster, etcd_host: str) -> Optional[Node]:
        """The holder of the leader key once it answers 200 on /primary: one etcd read and
        at most one REST request per poll (asking every member's /primary made 150
        requests a second to the daemons while initdb needed the CPU)."""
        try:
            code, body = http_get(f"http://{etcd_host}/v2/keys/service/{cluster.scope}/leader", timeout=1.0)
        except OSError:
            return None
        if code != 200:
            return None
        name = json.loads(body).get("node", {}).get("value")
        node = next((n for n in cluster.nodes if n.name == name), None)
        return node if node is not None and node.is_primary() else None

    def streaming_replicas(self, primary: Node) -> int:
        """Members streaming from the primary (the base backup's own WAL stream shows as
        streaming too, under another application_name: not counted)."""
        import psycopg2

        try:
            if self.conn is None:
                self.conn = psycopg2.connect(primary.dsn("postgres"))
                self.conn.autocommit = True
            with self.conn.cursor() as cur:
                cur.execute("SELECT count(DISTINCT application_name) FROM pg_stat_replication"
                            " WHERE state = 'streaming' AND application_name = ANY(%s)", (self.names,))
                row = cur.fetchone()
                return int(row[0]) if row else 0
        except psycopg2.Error:  # not up yet
            self.close()
            return 0

    def all_running(self, cluster: LocalCluster) -> bool:
        for node in cluster.nodes:
            if node.name not in self.seen_running:
                status = node.status()
                if status is not None and status.get("state") == "running":
                    self.seen_running.add(node.name)
        return len(self.seen_running) == len(cluster.nodes)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def one_run(ttl: int, loop_wait: int, retry_timeout: int, impl: str, parent: str,
            marks_file: bool = False) -> Dict[str, float]:
    """One bootstrap in a new directory under `parent`.  main() removes the directories of
    all runs together at the end, never one between runs (see the module docstring)."""
    base = tempfile.mkdtemp(prefix="run-", dir=parent)
    etcd = Etcd(base)
    cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout,
                           scope="bench-boot")
    if impl == "patroni":
        use_patroni_302_cluster(cluster)
    marks: Dict[str, float] = {}
    try:
        t0 = time.monotonic()
        wall0 = time.time()
        cluster.start()
        primary: Optional[Node] = None
        watcher = Watcher([n.name for n in cluster.nodes])
        while "running" not in marks or "streaming" not in marks:
            now = time.monotonic() - t0
            if now > 300:
                raise RuntimeError("cluster did not come up:\n" + cluster.dump_logs())
            if primary is None:
                primary = watcher.primary(cluster, etcd.host)
                if primary is not None:
                    marks["leader"] = time.monotonic() - t0
            if primary is not None and "streaming" not in marks and watcher.streaming_replicas(primary) >= 2:
                marks["streaming"] = time.monotonic() - t0
            if "running" not in marks and primary is not None and watcher.all_running(cluster):
                marks["running"] = time.monotonic() - t0
            time.sleep(POLL)
        watcher.close()
        marks["done"] = max(marks["running"], marks["streaming"])
        if marks_file:  # wall-clock marks, to line up with the timestamps of the kept logs
            with open(os.path.join(base, "marks.txt"), "w") as f:
                f.write(f"start {time.strftime('%H:%M:%S', time.localtime(wall0))}{f'{wall0 % 1:.3f}'[1:]}\n")
                for k, v in marks.items():
                    f.write(f"{k} +{v:.3f}\n")
        return marks
    finally:
        cluster.stop()
        etcd.stop()


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="bootstrap benchmark")
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--impl", choices=("ours", "patroni"), default="ours")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--fast-only", action="store_true")
    group.add_argument("--default-only", action="store_true")
    parser.add_argument("--remove-between-runs", action="store_true",
                        help="remove each run's directory before the next run starts (slower here, see above)")
    parser.add_argument("--keep", help="keep each run's directory (logs) under this directory")
    args = parser.parse_args()
    if args.keep and args.remove_between_runs:
        parser.error("--keep and --remove-between-runs contradict each other")
    if args.impl == "patroni" and not patroni302.available():
        raise SystemExit(f"Patroni 3.0.2 not found at {patroni302.PATRONI}")
    print(f"impl={args.impl}, load average at start: {os.getloadavg()}", flush=True)
    parent = args.keep or tempfile.mkdtemp(prefix="qhb-bench-boot-")
    try:
        run_all(args, parent)
    finally:
        if not args.keep:
            shutil.rmtree(parent, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}", flush=True)


def run_all(args: argparse.Namespace, parent: str) -> None:
    for label, (ttl, lw, rt) in TIMINGS.items():
        if (args.fast_only and not label.startswith("fast")) or (args.default_only and label.startswith("fast")):
            continue
        figures: Dict[str, List[float]] = {}
        for i in range(args.runs):
            marks = one_run(ttl, lw, rt, args.impl, parent, marks_file=bool(args.keep))
            if args.remove_between_runs:
                for entry in os.listdir(parent):
                    shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
            for k, v in marks.items():
                figures.setdefault(k, []).append(v)
            print(f"[{args.impl}] {label} run {i + 1}: leader {marks['leader']:.3f} s, all running "
                  f"{marks['running']:.3f} s, 2 replicas streaming {marks['streaming']:.3f} s "
                  f"-> done {marks['done']:.3f} s", flush=True)
        for k in ("leader", "running", "streaming", "done"):
            print(summary(f"[{args.impl}] {label} bootstrap: {k}", figures[k]))


if __name__ == "__main__":
    main()
