"""Unplanned failover: kill -9 the primary (daemon and postmaster) repeatedly.

    python bench/failover.py [RUNS] [--sync] [--fast-only]
        (as an unprivileged user; default 3 kills per timing set)

Per run it prints the write-unavailability window (last acknowledged write before
the kill to the first one after it, writer every 50 ms), the time from the
leader key's expiry in etcd to the first acknowledged write on the new primary,
and how many writes acknowledged before the kill the new primary lacks.
Target (issue #2): expiry -> writable <= 0.3 s median.  With --sync the cluster
runs in synchronous mode, where no acknowledged write may be lost.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.request
from typing import List, Optional

from common import TIMINGS, Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster, Writer, rows_on, wait_for


class ExpiryWatch(threading.Thread):
    """Records when etcd expires or deletes the leader key (v2 watch)."""

    def __init__(self, etcd_host: str, scope: str) -> None:
        super().__init__(daemon=True)
        self.url = f"http://{etcd_host}/v2/keys/service/{scope}/leader?wait=true"
        self.expired_at: Optional[float] = None
        self.stop = False

    def run(self) -> None:
        while not self.stop and self.expired_at is None:
            try:
                with urllib.request.urlopen(self.url, timeout=120) as resp:
                    event = json.loads(resp.read())
                if event.get("action") in ("expire", "delete", "compareAndDelete"):
                    self.expired_at = time.monotonic()
            except Exception:
                time.sleep(0.05)


def sync_standbys(etcd_host: str, scope: str) -> List[str]:
    """The standbys named in /sync (etcd v2 API)."""
    try:
        with urllib.request.urlopen(f"http://{etcd_host}/v2/keys/service/{scope}/sync", timeout=5) as resp:
            value = json.loads(json.loads(resp.read())["node"]["value"])
    except Exception:
        return []
    return [n for n in str(value.get("sync_standby") or "").split(",") if n]


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="kill -9 failover benchmark")
    parser.add_argument("runs", nargs="?", type=int, default=3)
    parser.add_argument("--sync", action="store_true", help="synchronous_mode: true")
    parser.add_argument("--fast-only", action="store_true", help="only the fast timing set")
    args = parser.parse_args()
    runs = args.runs
    dynamic = {"synchronous_mode": True} if args.sync else {}
    mode = "synchronous mode" if args.sync else "asynchronous replication"
    for label, (ttl, lw, rt) in TIMINGS.items():
        if args.fast_only and not label.startswith("fast"):
            continue
        label = f"{label}, {mode}"
        windows: List[float] = []
        expiry_to_write: List[float] = []
        lost_total = 0
        with tempfile.TemporaryDirectory(prefix="qhb-bench-failover-") as base:
            etcd = Etcd(base)
            cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-fo",
                                   dynamic=dynamic)
            try:
                cluster.start()
                cluster.wait_all_running(timeout=300)
                # No statement timeout: a cancelled wait for a synchronous standby still commits.
                writer = Writer(cluster, interval=0.05, statement_timeout_ms=0).start()
                for i in range(runs):
                    primary = cluster.wait_all_running(timeout=300)
                    wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                    watch = ExpiryWatch(etcd.host, cluster.scope)
                    watch.start()
                    time.sleep(0.5)
                    if args.sync:
                        # Without a standby named in /sync nobody may take over (by design).
                        wait_for(lambda e=etcd.host, s=cluster.scope: sync_standbys(e, s), 60, "a synchronous standby")
                    last_ack_before = writer.ack_times[-1]
                    primary.kill9()
                    # kill9() returns once the old primary's port is closed: a backend may still
                    # finish a commit between the postmaster's death and that moment.
                    gone_at = time.monotonic()
                    acked_before = [i for i, t in zip(writer.acked, writer.ack_times) if t <= gone_at]
                    wait_for(lambda w=writer, k=gone_at: any(t > k for t in w.ack_times), ttl * 4,
                             "a write on the new primary")
                    first_after = next(t for t in writer.ack_times if t > gone_at)
                    window = first_after - last_ack_before
                    wait_for(lambda w=watch: w.expired_at is not None, 5, "the expiry event")
                    assert watch.expired_at is not None
                    e2w = first_after - watch.expired_at
                    windows.append(window)
                    expiry_to_write.append(e2w)
                    new = cluster.primary()
                    present = set(rows_on(new)) if new is not None else set()
                    lost = sum(1 for r in acked_before if r not in present)
                    lost_total += lost
                    print(f"{label} run {i + 1}: unavailable {window:.3f} s, leader key expiry -> writable "
                          f"{e2w:.3f} s, acknowledged writes lost {lost}", flush=True)
                    primary.start()  # rejoin (rewind) before the next kill
                writer.stop()
            finally:
                cluster.stop()
                etcd.stop()
        print(summary(f"{label} write-unavailability window", windows))
        print(summary(f"{label} leader key expiry -> first acknowledged write", expiry_to_write))
        print(f"{label}: acknowledged writes lost in {len(windows)} kills: {lost_total}")


if __name__ == "__main__":
    main()
