"""Unplanned failover: kill -9 the primary (daemon and postmaster) repeatedly.

    python bench/failover.py [RUNS]       (as an unprivileged user; default 3 kills per timing set)

Per run it prints the write-unavailability window (last acknowledged write before
the kill to the first one after it, writer every 50 ms) and the time from the
leader key's expiry in etcd to the first acknowledged write on the new primary.
Target (issue #2): expiry -> writable <= 0.3 s median.
"""
from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import urllib.request
from typing import List, Optional

from common import TIMINGS, Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster, Writer, wait_for


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


def main() -> None:
    refuse_root()
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    for label, (ttl, lw, rt) in TIMINGS.items():
        windows: List[float] = []
        expiry_to_write: List[float] = []
        with tempfile.TemporaryDirectory(prefix="qhb-bench-failover-") as base:
            etcd = Etcd(base)
            cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-fo")
            try:
                cluster.start()
                cluster.wait_all_running(timeout=300)
                writer = Writer(cluster, interval=0.05).start()
                for i in range(runs):
                    primary = cluster.wait_all_running(timeout=300)
                    wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                    watch = ExpiryWatch(etcd.host, cluster.scope)
                    watch.start()
                    time.sleep(0.5)
                    last_ack_before = writer.ack_times[-1]
                    kill_at = time.monotonic()
                    primary.kill9()
                    wait_for(lambda w=writer, k=kill_at: any(t > k for t in w.ack_times), ttl * 4,
                             "a write on the new primary")
                    first_after = next(t for t in writer.ack_times if t > kill_at)
                    window = first_after - last_ack_before
                    wait_for(lambda w=watch: w.expired_at is not None, 5, "the expiry event")
                    assert watch.expired_at is not None
                    e2w = first_after - watch.expired_at
                    windows.append(window)
                    expiry_to_write.append(e2w)
                    print(f"{label} run {i + 1}: unavailable {window:.3f} s, leader key expiry -> writable "
                          f"{e2w:.3f} s", flush=True)
                    primary.start()  # rejoin (rewind) before the next kill
                writer.stop()
            finally:
                cluster.stop()
                etcd.stop()
        print(summary(f"{label} write-unavailability window", windows))
        print(summary(f"{label} leader key expiry -> first acknowledged write", expiry_to_write))


if __name__ == "__main__":
    main()
