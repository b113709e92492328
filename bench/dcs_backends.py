"""Latency of the DCS operations one HA cycle makes, per backend (memory, etcd v2,
etcd3, Consul), against real servers on loopback, and how fast a watch wakes.

    python bench/dcs_backends.py [OPS]     (default 200 operations per figure)

Needs etcd and consul binaries (scripts/setup-env.sh); no database.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
import uuid
from typing import Callable, Dict, List

from common import summary

from qhb_patroni.dcs import from_config, keys
from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from tests.fixtures.consul import ConsulProcess, consul_available
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.ports import free_port


def timed(op: Callable[[], object], n: int) -> List[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        op()
        out.append(time.perf_counter() - t0)
    return out


def watch_wake(make: Callable[[str], ClusterDCS], n: int) -> List[float]:
    """Time from a leader key deletion to the return of a watch waiting on it."""
    a, b = make("a"), make("b")
    out = []
    try:
        for _ in range(n):
            version = a.attempt_to_acquire_leader()
            assert version is not None, "the leader key is taken"
            view = b.get_cluster()
            deleted_at: List[float] = []

            def delete(version: object = version, deleted_at: List[float] = deleted_at) -> None:
                time.sleep(0.1)
                deleted_at.append(time.perf_counter())
                a.delete_leader(version)  # type: ignore[arg-type]

            thread = threading.Thread(target=delete)
            thread.start()
            woke = b.watch_leader(view, timeout=10.0)
            returned = time.perf_counter()
            thread.join()
            if woke and deleted_at:
                out.append(returned - deleted_at[0])
    finally:
        a.close()
        b.close()
    return out


def run(label: str, make: Callable[[str], ClusterDCS], n: int) -> None:
    dcs = make("n0")
    member = {"conn_url": "postgres://127.0.0.1:5432/qhb", "api_url": "http://127.0.0.1:8008/patroni",
              "state": "running", "role": "master", "version": "3.0.2"}
    try:
        dcs.touch_member(member)
        version = [dcs.attempt_to_acquire_leader()]

        def renew() -> None:
            version[0] = dcs.update_leader(version[0])

        print(f"{label}:")
        print("  " + summary("get_cluster", [t * 1000 for t in timed(dcs.get_cluster, n)], "ms"))
        print("  " + summary("touch_member", [t * 1000 for t in timed(lambda: dcs.touch_member(member), n)], "ms"))
        print("  " + summary("update_leader", [t * 1000 for t in timed(renew, n)], "ms"))
        dcs.delete_leader(version[0])  # the watch test races for it on its own
        print("  " + summary("watch wakes after a change", [t * 1000 for t in watch_wake(make, max(5, n // 20))],
                             "ms"))
    finally:
        dcs.delete_cluster()
        dcs.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    work = tempfile.mkdtemp(prefix="qhb-bench-dcs-")
    etcd = EtcdProcess(work + "/etcd", free_port(), free_port())
    consul = ConsulProcess(work + "/consul") if consul_available() else None
    try:
        etcd.start()
        if consul is not None:
            consul.start()
        memory = MemoryServer(name="bench")
        scope = "bench-" + uuid.uuid4().hex[:6]
        base = keys.base_path(None, scope)
        makers: Dict[str, Callable[[str], ClusterDCS]] = {
            "memory": lambda name: ClusterDCS(memory.client(name + uuid.uuid4().hex[:4], base=base), name,
                                              base=base),
            "etcd (v2)": lambda name: from_config({"scope": scope, "etcd": {"host": etcd.host_port}}, name),
            "etcd3": lambda name: from_config({"scope": scope, "etcd3": {"host": etcd.host_port}}, name),
        }
        if consul is not None:
            makers["consul"] = lambda name: from_config({"scope": scope, "consul": {"host": consul.host_port}},
                                                        name)
        for label, make in makers.items():
            run(label, make, n)
    finally:
        etcd.stop()
        if consul is not None:
            consul.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
