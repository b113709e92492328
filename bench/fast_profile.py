"""The fast profile (ttl 5 / loop_wait 1 / retry_timeout 2) under a crash of the primary node.

    python bench/fast_profile.py [RUNS] [--timings 5/1/2,10/2/4] [--impl ours|patroni] [--async]
        (as an unprivileged user: bash scripts/run-bench-as-user.sh bench/fast_profile.py 5)

Three nodes on one etcd (v2), synchronous mode unless --async, a writer inserting a row
every 50 ms into whichever node is primary.  Each run kills the primary node with
SIGKILL (daemon and postmaster) and prints the write outage (last acknowledged write
before the kill to the first one after it), the time from the leader key's expiry in
etcd to that first write, and how many writes acknowledged before the kill the new
primary lacks (0 is required in synchronous mode).  The killed node is restarted and
rejoins before the next run.  `--impl patroni` runs Patroni 3.0.2 (tests/fixtures/
patroni302.py) with the same configuration, for the side-by-side figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request
from typing import List, Optional, Tuple

import yaml
from common import Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster, Node, Writer, rows_on, wait_for
from tests.fixtures import patroni302


class ExpiryWatch(threading.Thread):
    """Records when etcd expires or deletes the leader key (v2 watch)."""

    def __init__(self, etcd_host: str, scope: str) -> None:
        super().__init__(daemon=True)
        self.url = f"http://{etcd_host}/v2/keys/service/{scope}/leader?wait=true"
        self.expired_at: Optional[float] = None

    def run(self) -> None:
        while self.expired_at is None:
            try:
                with urllib.request.urlopen(self.url, timeout=120) as resp:
                    event = json.loads(resp.read())
                if event.get("action") in ("expire", "delete", "compareAndDelete"):
                    self.expired_at = time.monotonic()
            except Exception:
                time.sleep(0.05)


def sync_standbys(etcd_host: str, scope: str) -> List[str]:
    try:
        with urllib.request.urlopen(f"http://{etcd_host}/v2/keys/service/{scope}/sync", timeout=5) as resp:
            value = json.loads(json.loads(resp.read())["node"]["value"])
    except Exception:
        return []
    return [n for n in str(value.get("sync_standby") or "").split(",") if n]


def start_patroni(node: Node) -> None:
    """Patroni 3.0.2 bootstrapping a whole cluster of its own: the PostgreSQL file and
    database names (its bootstrap expects postgresql.conf from initdb)."""
    cfg = patroni302.config(node)
    pg = cfg["postgresql"]
    pg.pop("config_base_name", None)
    pg["database"] = "postgres"
    for key in ("hba_file", "ident_file"):
        pg["parameters"].pop(key, None)
    os.makedirs(os.path.join(node.dir, "sock"), exist_ok=True)
    with open(node.config_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    with open(node.log_path, "ab") as log:
        node.proc = subprocess.Popen([patroni302.PATRONI, node.config_path], cwd=node.dir,
                                     env=patroni302.clean_env(), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)


def use_patroni(cluster: LocalCluster) -> None:
    for node in cluster.nodes:
        node.start = (lambda n=node: start_patroni(n))  # type: ignore[method-assign]
        node.dsn = (lambda dbname="postgres", n=node: Node.dsn(n, "postgres"))  # type: ignore[method-assign]


def parse_timings(text: str) -> List[Tuple[int, int, int]]:
    out = []
    for part in text.split(","):
        ttl, lw, rt = (int(x) for x in part.split("/"))
        out.append((ttl, lw, rt))
    return out


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def one_profile(runs: int, ttl: int, lw: int, rt: int, impl: str, sync: bool) -> None:
    label = f"{impl} ttl {ttl}/loop_wait {lw}/retry_timeout {rt}, {'sync' if sync else 'async'}"
    dynamic = {"synchronous_mode": True} if sync else {}
    outages: List[float] = []
    expiry_to_write: List[float] = []
    lost_total = 0
    with tempfile.TemporaryDirectory(prefix="qhb-bench-fast-") as base:
        etcd = Etcd(base)
        cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-fast",
                               dynamic=dynamic)
        if impl == "patroni":
            use_patroni(cluster)
        try:
            cluster.start()
            cluster.wait_all_running(timeout=300)
            writer = Writer(cluster, interval=0.05, statement_timeout_ms=0).start()
            for i in range(runs):
                primary = cluster.wait_all_running(timeout=300)
                wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                if sync:
                    wait_for(lambda: sync_standbys(etcd.host, cluster.scope), 60, "a synchronous standby")
                watch = ExpiryWatch(etcd.host, cluster.scope)
                watch.start()
                time.sleep(1.0)
                wait_for(lambda w=writer: w.ack_times and time.monotonic() - w.ack_times[-1] < 0.3, 30,
                         "a recent write")
                last_ack_before = writer.ack_times[-1]
                killed_at = time.monotonic()
                primary.kill9()
                gone_at = time.monotonic()  # a backend may finish a commit until the port closes
                acked_before = [r for r, t in zip(writer.acked, writer.ack_times) if t <= gone_at]
                wait_for(lambda k=gone_at: any(t > k for t in writer.ack_times), ttl * 6,
                         "a write on the new primary")
                first_after = next(t for t in writer.ack_times if t > gone_at)
                outage = first_after - last_ack_before
                wait_for(lambda w=watch: w.expired_at is not None, 10, "the expiry event")
                assert watch.expired_at is not None
                e2w = first_after - watch.expired_at
                outages.append(outage)
                expiry_to_write.append(e2w)
                new = cluster.primary()
                present = set(rows_on(new)) if new is not None else set()
                lost = sum(1 for r in acked_before if r not in present)
                lost_total += lost
                print(f"{label} run {i + 1}: outage {outage:.3f} s (kill after {killed_at - last_ack_before:.3f} s "
                      f"of it), key expiry -> first write {e2w:.3f} s, acknowledged writes lost {lost} [{load()}]",
                      flush=True)
                primary.start()  # rejoin before the next kill
            writer.stop()
        finally:
            cluster.stop()
            etcd.stop()
    print(summary(f"{label}: write outage after kill -9 of the primary node", outages), f"[{load()}]")
    print(summary(f"{label}: leader key expiry -> first acknowledged write", expiry_to_write))
    print(f"{label}: acknowledged writes lost in {len(outages)} kills: {lost_total}", flush=True)


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="fast profile kill -9 benchmark")
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--timings", default="5/1/2,10/2/4", help="ttl/loop_wait/retry_timeout,...")
    parser.add_argument("--impl", choices=("ours", "patroni"), default="ours")
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="asynchronous replication")
    args = parser.parse_args()
    if args.impl == "patroni" and not patroni302.available():
        raise SystemExit(f"Patroni 3.0.2 is not installed at {patroni302.VENV}")
    for ttl, lw, rt in parse_timings(args.timings):
        one_profile(args.runs, ttl, lw, rt, args.impl, not args.asynchronous)


if __name__ == "__main__":
    main()
