"""Unplanned failover: kill -9 the primary (daemon and postmaster) repeatedly.

    python bench/failover.py [RUNS] [--sync] [--fast-only] [--dcs etcd|etcd3|consul] [--impl ours|patroni]
        (as an unprivileged user; default 5 kills per timing set)

Per run it prints the write-unavailability window (last acknowledged write before
the kill to the first one after it, writer every 50 ms), the time from the
moment the leader key is gone from the DCS (expired/deleted; seen by a watch of
the benchmark's own) to the first acknowledged write on the new primary (twice: the
writer's, which finds the primary through the REST API and retries every 50 ms, and a
direct probe's (bench/probes.py), already connected to every replica, asking each every
5 ms whether it still is one and writing at the first "no"), and how
many writes acknowledged before the kill the new primary lacks (each counted at the
first kill that loses it; for those it prints when they were acknowledged and which
other replica holds them).  With --sync the
cluster runs in synchronous mode, where no acknowledged write may be lost.

--dcs: etcd (v2 API), etcd3 (v3 JSON gateway of the same etcd) or consul (a local
`consul agent -dev` with session_ttl_min "1s", so the key lives about ttl as on etcd).
--impl patroni runs a whole Patroni 3.0.2 cluster (tests/fixtures/patroni302.py) on
the same DCS and database binaries.  3.0.2 talks to Consul only with python-consul
installed: PATRONI_302_EXTRA_PATH (default /opt/p302-consul-extra) is added to its
PYTHONPATH when that directory exists.
With --keep-logs it also prints, from the database logs, the part of that time before
the new primary's server receives the promote request (the daemon's: watch wake-up,
peer probes, CAS, slots, pg_promote) and the server's own part up to the end of archive
recovery; the rest is the end of recovery to the client's first commit.
Target (issue #14): key gone -> first acknowledged write <= 0.07 s median on all three.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from common import TIMINGS, Etcd, refuse_root, summary
from probes import start_probes, stop_probes

from tests.e2e.harness import LocalCluster, Writer, rows_on, wait_for
from tests.fixtures import patroni302
from tests.fixtures.consul import ConsulProcess

EXTRA_302_PATH = os.environ.get("PATRONI_302_EXTRA_PATH", "/opt/p302-consul-extra")


class KeyGoneWatch(threading.Thread):
    """Records (monotonic) when the DCS reports the leader key expired or deleted."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.gone_at: Optional[float] = None
        self.gone_wall: Optional[float] = None
        self.stop = False
        self.ready = threading.Event()

    def run(self) -> None:
        while not self.stop and self.gone_at is None:
            try:
                self.watch_once()
            except Exception:
                time.sleep(0.02)

    def watch_once(self) -> None:
        raise NotImplementedError

    def mark(self) -> None:
        self.gone_wall = time.time()
        self.gone_at = time.monotonic()


class EtcdV2Watch(KeyGoneWatch):
    def __init__(self, host: str, scope: str) -> None:
        super().__init__()
        self.url = f"http://{host}/v2/keys/service/{scope}/leader?wait=true"

    def watch_once(self) -> None:
        self.ready.set()
        with urllib.request.urlopen(self.url, timeout=120) as resp:
            event = json.loads(resp.read())
        if event.get("action") in ("expire", "delete", "compareAndDelete"):
            self.mark()


class EtcdV3Watch(KeyGoneWatch):
    """A v3 watch over the JSON gateway (a streamed response, one JSON object per event batch)."""

    def __init__(self, host: str, scope: str) -> None:
        super().__init__()
        self.host = host
        self.key = base64.b64encode(f"/service/{scope}/leader".encode()).decode()

    def watch_once(self) -> None:
        conn = http.client.HTTPConnection(self.host, timeout=120)
        body = json.dumps({"create_request": {"key": self.key}})
        conn.request("POST", "/v3/watch", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        decoder = json.JSONDecoder()
        buf = ""
        try:
            while not self.stop:
                chunk = resp.read1(65536).decode()  # type: ignore[attr-defined]
                if not chunk:
                    return
                buf += chunk
                while buf.strip():
                    buf = buf.lstrip()
                    try:
                        doc, end = decoder.raw_decode(buf)
                    except ValueError:
                        break
                    buf = buf[end:]
                    result = doc.get("result", {})
                    if result.get("created"):
                        self.ready.set()
                    for event in result.get("events", []):
                        if event.get("type") == "DELETE":
                            self.mark()
                            return
        finally:
            conn.close()


class ConsulWatch(KeyGoneWatch):
    """Blocking queries on the leader key until it is absent (the session's delete behaviour)."""

    def __init__(self, host: str, scope: str) -> None:
        super().__init__()
        self.url = f"http://{host}/v1/kv/service/{scope}/leader"
        self.index = "0"
        self.seen = False

    def watch_once(self) -> None:
        try:
            with urllib.request.urlopen(f"{self.url}?index={self.index}&wait=60s", timeout=70) as resp:
                self.index = resp.headers.get("X-Consul-Index", self.index)
                resp.read()
                self.seen = True
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            self.index = exc.headers.get("X-Consul-Index", self.index)
            if self.seen:
                self.mark()
                return
        self.ready.set()


class Backend:
    """One DCS for a benchmark: start/stop, the cluster's DCS section, the watch."""

    def __init__(self, kind: str, base: str) -> None:
        self.kind = kind
        self.etcd: Optional[Etcd] = None
        self.consul: Optional[ConsulProcess] = None
        if kind == "consul":
            self.consul = ConsulProcess(os.path.join(base, "consul"), extra_hcl=('session_ttl_min = "1s"',))
            self.consul.start()
            self.host = self.consul.host_port
        else:
            self.etcd = Etcd(base)
            self.host = self.etcd.host

    def section(self) -> Callable[[], Dict[str, Any]]:
        if self.kind == "consul":
            return lambda: {"consul": {"host": self.host}}
        return lambda: {self.kind: {"hosts": [self.host]}}

    def watch(self, scope: str) -> KeyGoneWatch:
        if self.kind == "etcd":
            return EtcdV2Watch(self.host, scope)
        if self.kind == "etcd3":
            return EtcdV3Watch(self.host, scope)
        return ConsulWatch(self.host, scope)

    def sync_standbys(self, scope: str) -> List[str]:
        """The standbys named in the sync key."""
        try:
            if self.kind == "etcd":
                url = f"http://{self.host}/v2/keys/service/{scope}/sync"
                with urllib.request.urlopen(url, timeout=5) as resp:
                    raw = json.loads(resp.read())["node"]["value"]
            elif self.kind == "consul":
                with urllib.request.urlopen(f"http://{self.host}/v1/kv/service/{scope}/sync?raw", timeout=5) as resp:
                    raw = resp.read().decode()
            else:
                key = base64.b64encode(f"/service/{scope}/sync".encode()).decode()
                req = urllib.request.Request(f"http://{self.host}/v3/kv/range", data=json.dumps({"key": key}).encode(),
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    raw = base64.b64decode(json.loads(resp.read())["kvs"][0]["value"]).decode()
            value = json.loads(raw)
        except Exception:
            return []
        return [n for n in str(value.get("sync_standby") or "").split(",") if n]

    def stop(self) -> None:
        if self.etcd is not None:
            self.etcd.stop()
        if self.consul is not None:
            self.consul.stop()


_SERVER_EVENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC \[\d+\] LOG:  "
                           r"(received promote request|archive recovery complete)")


def server_steps(logs: List[str], gone_walls: List[float]) -> Tuple[List[float], List[float]]:
    """From the database logs of a --keep-logs run, per kill: key gone -> the new primary's
    server received the promote request (the daemon's part: wake-up, peer probes, CAS,
    slots, pg_promote), and that request -> end of archive recovery (the server's part)."""
    events: List[Tuple[float, str]] = []
    for path in logs:
        with open(path, errors="replace") as f:
            for line in f:
                m = _SERVER_EVENT.match(line)
                if m:
                    stamp = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
                    events.append((stamp.replace(tzinfo=datetime.timezone.utc).timestamp(), m.group(2)))
    events.sort()
    daemon: List[float] = []
    server: List[float] = []
    for gone in gone_walls:
        req = next((t for t, e in events if e.startswith("received") and 0 <= t - gone < 10), None)
        if req is None:
            continue
        daemon.append(req - gone)
        done = next((t for t, e in events if e.startswith("archive") and 0 <= t - req < 10), None)
        if done is not None:
            server.append(done - req)
    return daemon, server


def run_set(label: str, timing: tuple, args: argparse.Namespace) -> None:
    ttl, lw, rt = timing
    dynamic = {"synchronous_mode": True} if args.sync else {}
    windows: List[float] = []
    gone_to_write: List[float] = []
    gone_to_probe: List[float] = []
    lost_total = 0
    seen_lost: Set[int] = set()  # rows already counted as lost at an earlier kill
    gone_walls: List[float] = []
    server_logs: List[str] = []
    with tempfile.TemporaryDirectory(prefix="qhb-bench-failover-") as base:
        dcs = Backend(args.dcs, base)
        cluster = LocalCluster(base, dcs.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-fo",
                               dynamic=dynamic, dcs=dcs.section())
        if args.impl == "patroni":
            patroni302.use_patroni_302(cluster, native_names=True)
        try:
            cluster.start()
            first = cluster.wait_all_running(timeout=300)
            if args.impl == "patroni":
                patroni302.create_qhb_database(first)
            # No statement timeout: a cancelled wait for a synchronous standby still commits.
            writer = Writer(cluster, interval=0.05, statement_timeout_ms=0).start()
            for i in range(args.runs):
                primary = cluster.wait_all_running(timeout=300)
                wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                watch = dcs.watch(cluster.scope)
                watch.start()
                watch.ready.wait(10)
                time.sleep(0.5)
                if args.sync:
                    # Without a standby named in /sync nobody may take over (by design).
                    wait_for(lambda s=cluster.scope: dcs.sync_standbys(s), 60, "a synchronous standby")
                probes = start_probes([n for n in cluster.nodes if n is not primary], primary, once=True)
                last_ack_before = writer.ack_times[-1]
                primary.kill9()
                # kill9() returns once the old primary's port is closed: a backend may still
                # finish a commit between the postmaster's death and that moment.
                killed_at = time.monotonic()
                acked_before = [r for r, t in zip(writer.acked, writer.ack_times) if t <= killed_at]
                wait_for(lambda w=writer, k=killed_at: any(t > k for t in w.ack_times), ttl * 6,
                         "a write on the new primary", interval=0.02)
                first_after = next(t for t in writer.ack_times if t > killed_at)
                window = first_after - last_ack_before
                wait_for(lambda w=watch: w.gone_at is not None, 5, "the key-gone event")
                watch.stop = True
                assert watch.gone_at is not None
                g2w = first_after - watch.gone_at
                windows.append(window)
                gone_to_write.append(g2w)
                wait_for(lambda ps=probes: any(p.first is not None for p in ps), 10, "a probe's write")
                g2p = min(p.first for p in probes if p.first is not None) - watch.gone_at
                stop_probes(probes)
                gone_to_probe.append(g2p)
                new = cluster.primary()
                present = set(rows_on(new)) if new is not None else set()
                newly_lost = [r for r in acked_before if r not in present and r not in seen_lost]
                seen_lost.update(newly_lost)
                lost = len(newly_lost)
                lost_total += lost
                if newly_lost:
                    explain_lost(newly_lost, dict(zip(writer.acked, writer.ack_times)), killed_at,
                                 [n for n in cluster.nodes if n is not primary and n is not new])
                print(f"{label} run {i + 1}: unavailable {window:.3f} s, leader key gone -> writable "
                      f"{g2w:.3f} s (direct probe {g2p:.3f} s), acknowledged writes lost {lost}, new primary "
                      f"{new.name if new else '?'}", flush=True)
                gone_walls.append(watch.gone_wall or 0.0)
                if args.keep_logs:  # wall clock of the key-gone event, to line up with the daemons' logs
                    print(f"  key gone at {time.strftime('%H:%M:%S', time.localtime(watch.gone_wall or 0))}"
                          f".{int((watch.gone_wall or 0) % 1 * 1000):03d}", flush=True)
                primary.start()  # rejoin (rewind) before the next kill
            writer.stop()
        finally:
            cluster.stop()
            dcs.stop()
            if args.keep_logs:
                for node in cluster.nodes:
                    dest = os.path.join(args.keep_logs, f"{args.impl}-{args.dcs}-{node.name}.log")
                    shutil.copyfile(node.log_path, dest)
                    server_log = os.path.join(node.dir, "server.log")
                    if os.path.exists(server_log):
                        shutil.copyfile(server_log, dest[:-4] + "-server.log")
                        server_logs.append(dest[:-4] + "-server.log")
    print(summary(f"{label} write-unavailability window", windows))
    print(summary(f"{label} leader key gone -> first acknowledged write", gone_to_write))
    print(summary(f"{label} leader key gone -> first write acknowledged to a connected probe", gone_to_probe))
    print(f"{label}: acknowledged writes lost in {len(windows)} kills: {lost_total}", flush=True)
    daemon, server = server_steps(server_logs, gone_walls)
    if daemon:
        print(summary(f"{label} leader key gone -> promote request received by the server", daemon))
    if server:
        print(summary(f"{label} promote request -> end of archive recovery (server)", server), flush=True)


def explain_lost(rows: List[int], acked_at: Dict[int, float], killed_at: float, others: List[Any]) -> None:
    """Print, for writes acknowledged before the kill that the new primary lacks, when
    each was acknowledged (relative to the old port closing) and which of the other
    replicas hold it: a row another replica holds means the winner was not the most
    advanced one; a row none holds was acknowledged and never streamed (asynchronous)."""
    ages = ", ".join(f"{r}: {1000 * (killed_at - acked_at[r]):.0f} ms" for r in rows[:10] if r in acked_at)
    print(f"  lost rows acknowledged before the port closed by: {ages}{' ...' if len(rows) > 10 else ''}",
          flush=True)
    for other in others:
        try:
            held = set(rows_on(other))
        except Exception as exc:  # a replica still restarting: say so, the figure stands
            print(f"  {other.name}: could not read its rows ({exc})", flush=True)
            continue
        print(f"  {other.name} holds {sum(1 for r in rows if r in held)} of the {len(rows)} lost rows",
              flush=True)


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="kill -9 failover benchmark")
    parser.add_argument("runs", nargs="?", type=int, default=5)
    parser.add_argument("--sync", action="store_true", help="synchronous_mode: true")
    parser.add_argument("--fast-only", action="store_true", help="only the fast timing set")
    parser.add_argument("--dcs", choices=("etcd", "etcd3", "consul"), default="etcd")
    parser.add_argument("--impl", choices=("ours", "patroni"), default="ours")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the members' logs there (for tracing)")
    args = parser.parse_args()
    if args.impl == "patroni":
        if not patroni302.available():
            raise SystemExit(f"no Patroni 3.0.2 at {patroni302.VENV}")
        if args.dcs == "consul" and os.path.isdir(EXTRA_302_PATH):
            os.environ["PYTHONPATH"] = EXTRA_302_PATH + os.pathsep + os.environ.get("PYTHONPATH", "")
    mode = "synchronous mode" if args.sync else "asynchronous replication"
    impl = "Patroni 3.0.2" if args.impl == "patroni" else "qhb-patroni"
    for label, timing in TIMINGS.items():
        if args.fast_only and not label.startswith("fast"):
            continue
        run_set(f"{impl} on {args.dcs}, {label}, {mode}", timing, args)


if __name__ == "__main__":
    main()
