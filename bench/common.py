"""Shared bits for the benchmarks: run as an unprivileged user, etcd process, figures."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
from typing import Any, Dict, List, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tests.e2e.harness import free_port, http_get, wait_for  # noqa: E402

TIMINGS = {"fast (ttl 10, loop_wait 2, retry_timeout 4)": (10, 2, 4),
           "default (ttl 30, loop_wait 10, retry_timeout 10)": (30, 10, 10)}


def refuse_root() -> None:
    if os.geteuid() == 0:
        sys.exit("run benchmarks as an unprivileged user, e.g.\n"
                 "  runuser -u qhbtest -- /opt/qhb-patroni/venv/bin/python " + " ".join(sys.argv)
                 + "\n(from a copy of the tree that user can read)")


class Etcd:
    def __init__(self, base: str) -> None:
        self.client, self.peer = free_port(), free_port()
        self.host = f"127.0.0.1:{self.client}"
        os.makedirs(base, exist_ok=True)
        self.proc = subprocess.Popen(
            ["etcd", "--name", "bench", "--data-dir", os.path.join(base, "etcd"), "--enable-v2=true",
             "--listen-client-urls", f"http://{self.host}", "--advertise-client-urls", f"http://{self.host}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
             "--initial-cluster", f"bench=http://127.0.0.1:{self.peer}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: http_get(f"http://{self.host}/health")[0] == 200, 30, "etcd")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def summary(label: str, values: Sequence[float], unit: str = "s") -> str:
    if not values:
        return f"{label}: no data"
    vals: List[float] = sorted(values)
    return (f"{label}: median {statistics.median(vals):.3f} {unit}, min {vals[0]:.3f}, max {vals[-1]:.3f} "
            f"(n={len(vals)})")


def report(rows: List[Dict[str, Any]]) -> None:
    for row in rows:
        print("  " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def use_patroni_302_cluster(cluster: Any) -> None:
    """A whole cluster of Patroni 3.0.2 members (tests/fixtures/patroni302.py) that can
    bootstrap itself: 3.0.2 with config_base_name qhb renames the qhb.conf that initdb never
    wrote and gives up ('Failed to bootstrap cluster'), so these members keep the
    PostgreSQL file names (and database postgres, which initdb does create); everything else
    is the fixture's translation of our config."""
    import yaml

    from tests.fixtures import patroni302

    def start(node: Any) -> None:
        assert node.proc is None or node.proc.poll() is not None, f"{node.name} already running"
        os.makedirs(os.path.join(node.dir, "sock"), exist_ok=True)
        conf = patroni302.config(node)
        pg = conf["postgresql"]
        pg.pop("config_base_name", None)
        pg.pop("database", None)
        pg["parameters"] = {k: v for k, v in pg["parameters"].items() if k not in ("hba_file", "ident_file")}
        with open(node.config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(conf, f, sort_keys=False)
        with open(node.log_path, "ab") as log:
            node.proc = subprocess.Popen([patroni302.PATRONI, node.config_path], cwd=node.dir,
                                         env=patroni302.clean_env(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    for node in cluster.nodes:
        node.start = (lambda n=node: start(n))
