"""Where a planned switchover's write window goes: one merged, timestamped trace per run.

    python bench/switchover_trace.py [RUNS] [--impl ours|patroni]
        (as an unprivileged user; default 3 switchovers, ttl 10 / loop_wait 2 / retry_timeout 4)

Every server logs with log_line_prefix %m (and every daemon at DEBUG with --verbose); the
bench adds its own events (command started, each acknowledged write, the first 200 on
GET /primary of the candidate, polled every 5 ms). For each switchover it prints the
lines from 0.1 s before the command to the old primary streaming again, in time order,
relative to the command (with --verbose), and the write window cut into phases, found
in those logs (medians over the runs at the end):
  tail      last acknowledged write on the old primary -> its fast shutdown request
            (where the writer's 50 ms period happened to fall);
  shutdown  fast shutdown request -> "database system is shut down" (old primary);
  handover  shut down -> "received promote request" on the candidate (the daemons: the
            stop noticed, the leader key released, the candidate's wake-up, its cycle, the
            create-only write of the key, anything done before promoting);
  promote   promote request -> "database system is ready to accept connections";
  publish   ready -> the first 200 on the candidate's GET /primary;
  client    that 200 -> the first acknowledged write there: the bench client's own part
            (after a failed write the writer sleeps 50 ms, then asks every node's /primary
            in turn and connects).
A diagnostic, not a target: the figures to compare are bench/switchover.py's.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from common import REPO, Etcd, refuse_root
from impl import StreamingProbe, add_impl_arg, patronictl_cmd, patronictl_env, start_cluster

from tests.e2e.harness import LocalCluster, Node, Writer, http_get, wait_for

Event = Tuple[float, str, str]  # (wall time, source, text)
_DAEMON = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[,.](\d{3}) (.*)$")
_SERVER = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.(\d{3}) \w+ (.*)$")


def _configure(verbose: bool) -> Callable[[Node, Dict[str, Any]], None]:
    """Server logs with milliseconds (the phases come from them); the daemons at DEBUG
    only with --verbose (a log line per REST request slows what is measured)."""
    def configure(node: Node, config: Dict[str, Any]) -> None:
        if verbose:
            config["log"] = {"level": "DEBUG", "loggers": {"urllib3": "WARNING", "etcd.client": "WARNING"}}
        config["postgresql"]["parameters"].update({"log_line_prefix": "%m [%p] %b ", "log_checkpoints": "on"})
    return configure


def _stamp(day: str, ms: str) -> float:
    return dt.datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp() + int(ms) / 1e3


def _read_log(path: str, source: str, pattern: re.Pattern[str]) -> List[Event]:
    events: List[Event] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = pattern.match(line.rstrip("\n"))
                if m:
                    events.append((_stamp(m.group(1), m.group(2)), source, m.group(3)))
    except OSError:
        pass
    return events


def _offset() -> float:
    """wall - monotonic: the writer records monotonic times, the logs wall-clock ones."""
    return time.time() - time.monotonic()


class PrimaryPoller(threading.Thread):
    """GET /primary on `node` every 5 ms: the first 200 (wall time)."""

    def __init__(self, node: Node) -> None:
        super().__init__(daemon=True)
        self.node, self.done = node, threading.Event()
        self.first_200: Optional[float] = None

    def run(self) -> None:
        while not self.done.is_set() and self.first_200 is None:
            try:
                if http_get(self.node.api + "/primary", timeout=1.0)[0] == 200:
                    self.first_200 = time.time()
            except OSError:
                pass
            self.done.wait(0.005)


PHASES = ("tail", "shutdown", "handover", "promote", "publish", "client")


def _first(events: List[Event], source: str, text: str, after: float) -> Optional[float]:
    return next((at for at, src, line in sorted(events) if src == source and text in line and at >= after), None)


def phases(events: List[Event], old: str, new: str, started: float, last_old: float, first_new: float,
           first_200: Optional[float]) -> Dict[str, float]:
    """The write window cut at the server log lines that mark its steps (NaN when missing)."""
    down_req = _first(events, old + "/db", "received fast shutdown request", started)
    down = _first(events, old + "/db", "database system is shut down", down_req or started)
    promote = _first(events, new + "/db", "received promote request", down or started)
    ready = _first(events, new + "/db", "database system is ready to accept connections", promote or started)
    marks = [last_old, down_req, down, promote, ready, first_200, first_new]
    nan = float("nan")
    return {name: (b - a if a is not None and b is not None else nan)
            for name, a, b in zip(PHASES, marks, marks[1:])}


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="switchover trace")
    parser.add_argument("runs", nargs="?", type=int, default=3)
    parser.add_argument("--verbose", action="store_true", help="print every merged log line of each switchover")
    add_impl_arg(parser)
    args = parser.parse_args()
    print(f"implementation: {args.impl}; load: {os.getloadavg()[0]:.2f}", flush=True)
    table: List[Dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="qhb-bench-sotrace-") as base:
        etcd = Etcd(base)
        cluster = LocalCluster(base, etcd.host, scope="bench-sotrace", configure=_configure(args.verbose))
        try:
            start_cluster(cluster, args.impl)
            writer = Writer(cluster, interval=0.05).start()
            off = _offset()
            for i in range(args.runs):
                primary = cluster.wait_all_running(timeout=300)
                candidate = next(n for n in cluster.nodes if n is not primary and n.status())
                on_primary = StreamingProbe(primary)
                wait_for(lambda p=on_primary, n=candidate.name: p.streaming(n), 60, "the candidate streaming")
                on_primary.close()
                wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                time.sleep(1.0)
                probe = StreamingProbe(candidate)
                poller = PrimaryPoller(candidate)
                poller.start()
                cmd = patronictl_cmd(cluster, args.impl) + ["switchover", "--leader", primary.name,
                                                            "--candidate", candidate.name, "--force"]
                started = time.time()
                proc = subprocess.Popen(cmd, cwd=REPO, env=patronictl_env(args.impl), stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
                streaming = probe.wait(primary.name, 60)
                streaming_wall = time.time() if streaming else None
                proc.communicate(timeout=60)
                returned = time.time()
                probe.close()
                wait_for(lambda w=writer, s=started - off: w.ack_times[-1] > s + 0.5,
                         60, "writes on the new primary")
                poller.done.set()
                walls = [t + off for t in writer.ack_times]
                pairs = [(a, b) for a, b in zip(walls, walls[1:]) if b > started]
                last_old, first_new = max(pairs, key=lambda ab: ab[1] - ab[0])
                end = (streaming_wall or returned) + 0.05
                events: List[Event] = [(started, "bench", "patronictl switchover started"),
                                       (returned, "bench", "patronictl returned"),
                                       (last_old, "bench", "last acknowledged write (old primary)"),
                                       (first_new, "bench", "first acknowledged write (new primary)")]
                if poller.first_200 is not None:
                    events.append((poller.first_200, "bench", f"GET /primary 200 on {candidate.name}"))
                if streaming_wall is not None:
                    events.append((streaming_wall, "bench", f"{primary.name} streaming from {candidate.name}"))
                for node in cluster.nodes:
                    events += _read_log(node.log_path, node.name, _DAEMON)
                    events += _read_log(os.path.join(node.dir, "server.log"), node.name + "/db", _SERVER)
                print(f"run {i + 1}: {primary.name} -> {candidate.name}, load {os.getloadavg()[0]:.2f}", flush=True)
                if args.verbose:
                    for at, source, text in sorted(e for e in events if started - 0.1 <= e[0] <= end):
                        print(f"{at - started:+8.3f} {source:9} {text[:160]}")
                cut = phases(events, primary.name, candidate.name, started, last_old, first_new, poller.first_200)
                cut["window"] = first_new - last_old
                cut["streaming"] = (streaming_wall or float("nan")) - started
                table.append(cut)
                print("  " + ", ".join(f"{k} {v:.3f}" for k, v in cut.items())
                      + " (s; streaming: the old primary's, after the command)", flush=True)
                wait_for(lambda c=cluster: c.all_running(), 120, "everybody running again")
            writer.stop()
        finally:
            cluster.stop()
            etcd.stop()
    print(f"{args.impl}: medians over {len(table)} runs: " + ", ".join(
        f"{k} {statistics.median(row[k] for row in table):.3f}" for k in table[0]) + f"; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
