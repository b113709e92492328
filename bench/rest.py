"""REST API throughput and latency, run by hand (prints figures, asserts nothing):

    python bench/rest.py [--seconds S] [--part 1|2|all] [--python-load]

as an unprivileged user, from a copy of the tree that user can read (part 2 starts a
database), e.g.
    rm -rf /tmp/bench-src && cp -a /work/main /tmp/bench-src && chown -R qhbtest /tmp/bench-src
    cd /tmp/bench-src && runuser -u qhbtest -- /opt/qhb-patroni/venv/bin/python bench/rest.py

The load comes from a separate process: `wrk` when installed (keep-alive connections,
one thread), otherwise a Python generator in a subprocess with keep-alive sockets.

Part 1: RestApiServer in this process over a synthetic StatusBoard (a primary holding
the lock in a 3-member cluster): GET /primary, /replica, /patroni, /cluster at
concurrency 1, 10, 50, then /primary at 50 with "Connection: close" (one connection per
request, as HAProxy checks do).
Part 2: one real node (etcd + a qhb-patroni daemon with a database): /primary at
concurrency 50 (a) normally, (b) while the postmaster and all its children are
SIGSTOPped, (c) while etcd is SIGSTOPped. Target (issue #3): >= 7,000 req/s with
p99 <= 10 ms at concurrency 50, and p99 <= 50 ms in (b) and (c).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Etcd, refuse_root  # noqa: E402

from qhb_patroni.api.server import RestApiServer  # noqa: E402
from qhb_patroni.core.model import ClusterConfig, ClusterView, Leader, Member  # noqa: E402
from qhb_patroni.runtime.status import ServerStatus, StatusBoard, StatusView  # noqa: E402
from tests.e2e.harness import LocalCluster, http_get, wait_for  # noqa: E402

PATHS = ("/primary", "/replica", "/patroni", "/cluster")
CONCURRENCY = (1, 10, 50)
REQUEST_TIMEOUT = 10.0  # a request still unanswered after this counts as a timeout


@dataclass
class Result:
    requests: int
    rate: float  # requests/s
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int  # connect/read/write errors and timeouts

    def row(self) -> str:
        return (f"{self.requests:>8} {self.rate:>9.0f} {self.p50_ms:>8.2f} {self.p99_ms:>8.2f} "
                f"{self.non_2xx:>7} {self.errors:>6}")


HEADER = f"{'requests':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'errors':>6}"


def synthetic_board() -> StatusBoard:
    members = tuple(
        Member(
            name=f"node{i}",
            conn_url=f"postgres://10.0.0.{i + 1}:5432/qhb",
            api_url=f"http://10.0.0.{i + 1}:8008/patroni",
            state="running",
            role="master" if i == 0 else "replica",
            xlog_location=None if i == 0 else 50331900,
            timeline=2,
            data={"state": "running", "role": "master" if i == 0 else "replica", "timeline": 2},
        )
        for i in range(3)
    )
    cluster = ClusterView(
        initialize="7214159812345678901",
        config=ClusterConfig({"ttl": 30, "loop_wait": 10}, version=1),
        leader=Leader("node0", version=1, member=members[0]),
        members=members,
        last_lsn=50331968,
    )
    now = time.monotonic()
    server = ServerStatus(
        state="running", role="master", query_ok=True, in_recovery=False, server_version=150002,
        wal_location=50331968, timeline=2, sysid="7214159812345678901",
        postmaster_start_time="2023-03-24 10:11:12.123456+00:00",
    )  # fmt: skip
    view = StatusView(
        name="node0", scope="bench", version="3.0.2", api_url="http://127.0.0.1:8008/patroni",
        conn_url="postgres://10.0.0.1:5432/qhb", server=server, cluster=cluster, cluster_read_at=now,
        dcs_last_seen=int(time.time()), lease_until=now + 10**6, next_cycle_at=now + 10**6,
    )  # fmt: skip
    return StatusBoard(view)


# ---- load generators (separate processes) -----------------------------------------


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(host: str, port: int, path: str, conns: int, seconds: float, close: bool) -> Result:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--latency",
           f"--timeout={int(REQUEST_TIMEOUT)}s"]
    if close:
        cmd += ["-H", "Connection: close"]
    out = subprocess.run(cmd + [f"http://{host}:{port}{path}"], capture_output=True, text=True,
                         timeout=seconds + 60).stdout  # fmt: skip
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    done = re.search(r"^\s*(\d+) requests in", out, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if not (done and rate and "50" in pct and "99" in pct):
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    # With "Connection: close" wrk counts the server's close after each answer as a read error.
    n_errors = sum(int(x) for x in errors.groups()) if errors else 0
    if close and errors:
        n_errors = int(errors.group(1)) + int(errors.group(3)) + int(errors.group(4))
    return Result(int(done.group(1)), float(rate.group(1)), _ms(pct["50"]), _ms(pct["99"]),
                  int(non2xx.group(1)) if non2xx else 0, n_errors)  # fmt: skip


def _py_load(host: str, port: int, raw: bytes, conns: int, seconds: float, close: bool, out: Any) -> None:
    """Child process: `conns` sockets, one request in flight on each, for `seconds`.
    Sends (latencies, non-2xx answers, errors); a request outstanding for more than
    REQUEST_TIMEOUT, or more than 1 s when the time is up, counts as an error."""
    sel = selectors.DefaultSelector()
    latencies: List[float] = []
    counts = {"non_2xx": 0, "errors": 0}
    started: Dict[socket.socket, float] = {}
    buffers: Dict[socket.socket, bytes] = {}

    def send(sock: Optional[socket.socket]) -> None:
        if sock is None:
            try:
                sock = socket.create_connection((host, port), timeout=REQUEST_TIMEOUT)
            except OSError:
                counts["errors"] += 1
                return
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
        started[sock] = time.perf_counter()
        try:
            sock.send(raw)
        except OSError:
            counts["errors"] += 1
            drop(sock)

    def drop(sock: socket.socket) -> None:
        sel.unregister(sock)
        sock.close()
        started.pop(sock, None)
        buffers.pop(sock, None)

    for _ in range(conns):
        send(None)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for key, _ in sel.select(0.05):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            buf = buffers[sock] = buffers[sock] + data
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                if not data:  # closed before an answer
                    counts["errors"] += 1
                    drop(sock)
                    send(None)
                continue
            length = re.search(rb"\r\nContent-Length: (\d+)", buf[:head_end])
            if data and (length is None or len(buf) - head_end - 4 < int(length.group(1))):
                continue  # more to come (without Content-Length: up to the close)
            latencies.append(time.perf_counter() - started[sock])
            if not buf.startswith(b"HTTP/1.0 2"):
                counts["non_2xx"] += 1
            if data and not close and b"Connection: keep-alive" in buf[:head_end]:
                send(sock)
            else:
                drop(sock)
                send(None)
        now = time.perf_counter()
        for sock, t0 in list(started.items()):
            if now - t0 > REQUEST_TIMEOUT:
                counts["errors"] += 1
                drop(sock)
                send(None)
    now = time.perf_counter()
    counts["errors"] += sum(1 for t0 in started.values() if now - t0 > 1.0)
    for sock in list(started):
        drop(sock)
    out.send((latencies, counts["non_2xx"], counts["errors"]))


def run_python(host: str, port: int, path: str, conns: int, seconds: float, close: bool) -> Result:
    raw = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    ctx = multiprocessing.get_context("spawn")  # this process runs a server thread: no fork
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_py_load, args=(host, port, raw.encode(), conns, seconds, close, child))
    t0 = time.perf_counter()
    proc.start()
    latencies, non_2xx, errors = parent.recv()
    elapsed = time.perf_counter() - t0
    proc.join()
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    return Result(len(ordered), len(ordered) / min(elapsed, seconds) if ordered else 0.0, pct(0.5), pct(0.99),
                  non_2xx, errors)  # fmt: skip


Load = Callable[[str, int, str, int, float, bool], Result]


# ---- part 1: synthetic board ------------------------------------------------------


def part1(load: Load, seconds: float) -> None:
    server = RestApiServer("127.0.0.1:0", synthetic_board())
    server.start()
    try:
        host, port = server.address
        print(f"\nPart 1: synthetic board, RestApiServer on {host}:{port}")
        print(f"{'path':<24} {'conc':>4} {HEADER}")
        for path in PATHS:
            for conns in CONCURRENCY:
                print(f"{path:<24} {conns:>4} {load(host, port, path, conns, seconds, False).row()}", flush=True)
        result = load(host, port, "/primary", 50, seconds, True)
        print(f"{'/primary (conn. close)':<24} {50:>4} {result.row()}", flush=True)
    finally:
        server.stop()


# ---- part 2: a live node ----------------------------------------------------------


def children_of(pid: int) -> List[int]:
    """Direct children of `pid` (the postmaster's backends and auxiliary processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def signal_all(pids: List[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def part2(load: Load, seconds: float) -> None:
    stopped: List[int] = []
    with tempfile.TemporaryDirectory(prefix="qhb-bench-rest-") as base:
        etcd = Etcd(base)
        cluster = LocalCluster(base, etcd.host, nodes=1, ttl=30, loop_wait=10, retry_timeout=10, scope="bench-rest")
        try:
            cluster.start()
            node = cluster.wait_all_running(timeout=300)
            print(f"\nPart 2: one live node ({node.name}, API {node.api}), GET /primary at concurrency 50")
            print(f"{'case':<28} {HEADER}")

            def measure(label: str) -> None:
                result = load("127.0.0.1", node.api_port, "/primary", 50, seconds, False)
                print(f"{label:<28} {result.row()}", flush=True)

            measure("(a) normal")
            pm = node.postmaster_pid()
            assert pm is not None
            stopped[:] = [pm] + children_of(pm)
            signal_all(stopped, signal.SIGSTOP)
            try:
                measure(f"(b) database stopped ({len(stopped)})")
            finally:
                signal_all(stopped, signal.SIGCONT)
                stopped.clear()
            wait_for(lambda: http_get(node.api + "/primary")[0] == 200, 120, "the primary to be healthy again")
            stopped[:] = [etcd.proc.pid]
            signal_all(stopped, signal.SIGSTOP)
            try:
                measure("(c) etcd stopped")
            finally:
                signal_all(stopped, signal.SIGCONT)
                stopped.clear()
            wait_for(lambda: http_get(node.api + "/primary")[0] == 200, 120, "the primary to be healthy again")
        finally:
            signal_all(stopped, signal.SIGCONT)
            cluster.stop()
            etcd.stop()


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of every measurement")
    parser.add_argument("--part", choices=("1", "2", "all"), default="all")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    args = parser.parse_args()
    refuse_root()
    # Ctrl-C or SIGTERM: unwind through the finally blocks (SIGCONT, stop the node and etcd).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupted)
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    load: Load = run_wrk if use_wrk else run_python
    print(f"qhb-patroni REST API benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load from {'wrk -t1' if use_wrk else 'a Python subprocess'}, {args.seconds:g} s per figure")
    if args.part in ("1", "all"):
        part1(load, args.seconds)
    if args.part in ("2", "all"):
        part2(load, args.seconds)


if __name__ == "__main__":
    main()
