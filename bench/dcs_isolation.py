"""DCS isolation: the primary's daemon is cut off from etcd while its clients still
reach its database.

    python bench/dcs_isolation.py [RUNS] [--failsafe off|on|both] [--blackhole]
        (as an unprivileged user; default 3 cuts per setting, ttl 10 / loop_wait 2 /
         retry_timeout 4)

Every daemon talks to etcd through a TCP proxy of its own; a cut closes the
primary's proxy connections and refuses new ones (`--blackhole`: accepts and
forwards nothing, so requests time out instead).  A writer on every node inserts a
row every 20 ms into its own node's database, straight to the server (not through
the REST API).  Per cut it prints: when the old primary stopped acknowledging
(last acknowledgement after the cut), when another node first acknowledged, the
gap between the two (no node writable), overlaps (acknowledgements by another node
before the old primary's last one: two writers at once) and lost writes (rows the
old primary acknowledged that the new primary lacks once it settled).
Targets (issue 11, failsafe off): gap <= 1.5 s median, zero overlaps, zero lost.
Measured (2 shared cores): gap median 0.88 s over 5 cuts (4.39 s before the lease
rule), 1.15 s with --blackhole, no overlap, nothing lost; see docs/failover-decisions.md.
With failsafe on, a primary that only lost the DCS stays writable (every member
answers its POST /failsafe): no failover, and the figure is how long it kept
writing until the cut was healed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

from common import Etcd, refuse_root, summary

from tests.e2e.harness import LocalCluster, Node, free_port, wait_for

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4
WRITE_EVERY = 0.02


class Proxy:
    """A TCP proxy 127.0.0.1:<port> -> target that can be cut and healed."""

    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.cut = False
        self.blackhole = False
        self._lock = threading.Lock()
        self._pairs: List[Tuple[socket.socket, socket.socket]] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            if self.cut and not self.blackhole:
                client.close()
                continue
            if self.cut:  # swallow it: the daemon's request times out
                with self._lock:
                    self._pairs.append((client, client))
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.2)
                if self.cut:
                    if self.blackhole:
                        continue  # hold the connection, forward nothing
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed")
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def set_cut(self, cut: bool, blackhole: bool = False) -> None:
        self.blackhole = blackhole
        self.cut = cut
        if cut and not blackhole:
            with self._lock:
                pairs, self._pairs = self._pairs, []
            for a, b in pairs:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                        s.close()
                    except OSError:
                        pass


class NodeWriter(threading.Thread):
    """Inserts (node, seq) rows into one node's database; remembers acknowledgements."""

    def __init__(self, node: Node, first_seq: int) -> None:
        super().__init__(daemon=True)
        self.node = node
        self.acks: List[Tuple[float, int]] = []  # (monotonic, seq)
        self.stopping = threading.Event()
        self.seq = first_seq  # unique across runs: (node, seq) is the key

    def run(self) -> None:
        import psycopg2

        conn = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(self.node.dsn() + " connect_timeout=1")
                    conn.autocommit = True
                self.seq += 1
                with conn.cursor() as cur:
                    cur.execute("SET statement_timeout = 1000")
                    cur.execute("INSERT INTO iso_rows (node, seq) VALUES (%s, %s)", (self.node.name, self.seq))
                self.acks.append((time.monotonic(), self.seq))
            except Exception:
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
            self.stopping.wait(WRITE_EVERY)
        if conn is not None:
            conn.close()


def rows_of(node: Node, name: str) -> Optional[set]:  # type: ignore[type-arg]
    import psycopg2

    try:
        with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
            cur.execute("SELECT seq FROM iso_rows WHERE node = %s", (name,))
            return {r[0] for r in cur.fetchall()}
    except Exception:
        return None


def one_cut(cluster: LocalCluster, proxies: Dict[str, Proxy], blackhole: bool, failsafe: bool,
            run: int) -> Dict[str, float]:
    import psycopg2

    old = cluster.wait_all_running(timeout=300)
    with psycopg2.connect(old.dsn()) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS iso_rows (node text, seq bigint, PRIMARY KEY (node, seq))")
    time.sleep(1.0)  # the table reaches the replicas
    writers = {n.name: NodeWriter(n, run * 10_000_000) for n in cluster.nodes}
    for w in writers.values():
        w.start()
    wait_for(lambda: len(writers[old.name].acks) > 20, 60, "writes on the primary")
    cut_at = time.monotonic()
    proxies[old.name].set_cut(True, blackhole)
    others = [w for name, w in writers.items() if name != old.name]
    limit = TTL * (4 if not failsafe else 3)
    try:
        wait_for(lambda: any(t > cut_at for o in others for t, _ in o.acks), limit, "another node to write")
        failover = True
    except AssertionError:
        failover = False
    time.sleep(2.0)
    for w in writers.values():
        w.stopping.set()
    for w in writers.values():
        w.join(5)
    old_acks = [t for t, _ in writers[old.name].acks if t > cut_at]
    old_last = max(old_acks) if old_acks else cut_at
    new_acks = sorted(t for o in others for t, _ in o.acks if t > cut_at)
    fig: Dict[str, float] = {"old primary stops": old_last - cut_at}
    lost = 0
    if failover and new_acks:
        new_first = new_acks[0]
        fig["another node writes"] = new_first - cut_at
        fig["gap"] = new_first - old_last
        fig["overlaps"] = float(sum(1 for t in new_acks if t <= old_last))
        new = cluster.primary()
        present = rows_of(new, old.name) if new is not None else None
        acked = {s for _, s in writers[old.name].acks}
        lost = len(acked - present) if present is not None else -1
        fig["lost"] = float(lost)
    proxies[old.name].set_cut(False)
    print(f"  run {run}: " + ", ".join(f"{k} {v:.3f}" if k not in ("overlaps", "lost") else f"{k} {int(v)}"
                                        for k, v in fig.items())
          + ("" if failover else " (no failover: the old primary kept the cluster)"), flush=True)
    if failover:
        old_node = old
        wait_for(lambda: old_node.status() is not None, 60, "the old primary's daemon")
    cluster.wait_all_running(timeout=300)
    return fig


def main() -> None:
    refuse_root()
    parser = argparse.ArgumentParser(description="DCS isolation benchmark")
    parser.add_argument("runs", nargs="?", type=int, default=3)
    parser.add_argument("--failsafe", choices=("off", "on", "both"), default="both")
    parser.add_argument("--blackhole", action="store_true", help="time out instead of refusing")
    args = parser.parse_args()
    settings = {"off": [False], "on": [True], "both": [False, True]}[args.failsafe]
    for failsafe in settings:
        label = f"failsafe_mode {'on' if failsafe else 'off'}, {'blackhole' if args.blackhole else 'refused'}"
        print(f"{label} (ttl {TTL}, loop_wait {LOOP_WAIT}, retry_timeout {RETRY_TIMEOUT}):", flush=True)
        figs: List[Dict[str, float]] = []
        keep = os.environ.get("BENCH_KEEP")  # a directory: keep the logs there
        with (contextlib.nullcontext(tempfile.mkdtemp(dir=keep)) if keep
              else tempfile.TemporaryDirectory(prefix="qhb-bench-iso-")) as base:
            etcd = Etcd(os.path.join(base, "etcd"))
            host, port = etcd.host.split(":")
            proxies: Dict[str, Proxy] = {}
            cluster = LocalCluster(base, etcd.host, ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT,
                                   scope="bench-iso", dynamic={"failsafe_mode": failsafe})
            for node in cluster.nodes:
                proxies[node.name] = Proxy((host, int(port)))
            for node in cluster.nodes:  # each daemon reaches etcd through its own proxy
                node.config = _with_proxy(node, proxies[node.name].port)  # type: ignore[method-assign]
            try:
                cluster.start()
                for i in range(args.runs):
                    figs.append(one_cut(cluster, proxies, args.blackhole, failsafe, i + 1))
            finally:
                cluster.stop()
                etcd.stop()
        for key in ("old primary stops", "another node writes", "gap"):
            print("  " + summary(key, [f[key] for f in figs if key in f]))
        print(f"  overlaps {int(sum(f.get('overlaps', 0) for f in figs))}, "
              f"lost {int(sum(f.get('lost', 0) for f in figs))} in {len(figs)} cuts", flush=True)


def _with_proxy(node: Node, port: int):  # type: ignore[no-untyped-def]
    original = type(node).config

    def config() -> Dict[str, object]:
        c = original(node)
        c.pop("etcd", None)
        c["etcd"] = {"proxy": f"http://127.0.0.1:{port}"}  # a proxy: no discovery of the real endpoint
        return c
    return config


if __name__ == "__main__":
    main()
