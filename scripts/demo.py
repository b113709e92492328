"""Local demo cluster: one etcd and three qhb-patroni daemons with QHB naming.

    python scripts/demo.py start [DIR]   start (or restart) and wait until all run
    python scripts/demo.py stop  [DIR]   stop the daemons, their databases and etcd
    python scripts/demo.py list  [DIR]   patronictl list
    python scripts/demo.py ctl ARGS...   any patronictl command against the demo cluster

Runs as an unprivileged user (scripts/demo.sh arranges that when called as root).
The processes outlive this script; their pids are kept in DIR/demo.json.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.e2e.harness import LocalCluster, free_port, http_get, wait_for  # noqa: E402

DEFAULT_DIR = "/tmp/qhb-patroni-demo"


def _state_path(base: str) -> str:
    return os.path.join(base, "demo.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def start_etcd(base: str) -> Dict[str, Any]:
    client, peer = free_port(), free_port()
    data = os.path.join(base, "etcd")
    os.makedirs(data, exist_ok=True)
    log = open(os.path.join(base, "etcd.log"), "ab")
    proc = subprocess.Popen(
        [
            "etcd", "--name", "demo", "--data-dir", data, "--enable-v2=true",
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"demo=http://127.0.0.1:{peer}",
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for(lambda: http_get(f"http://127.0.0.1:{client}/health")[0] == 200, 30, "etcd to answer")
    return {"pid": proc.pid, "host": f"127.0.0.1:{client}"}


def ctl(base: str, *args: str) -> int:
    env = dict(os.environ, PYTHONPATH=REPO)
    cfg = os.path.join(base, "node0", "node0.yml")
    return subprocess.call([sys.executable, "-m", "patronictl.cli", "-c", cfg, *args], cwd=REPO, env=env)


def start(base: str) -> int:
    if os.path.exists(_state_path(base)):
        stop(base)
    shutil.rmtree(base, ignore_errors=True)  # every demo starts from empty data directories
    os.makedirs(base, exist_ok=True)
    etcd = start_etcd(base)
    cluster = LocalCluster(base, etcd["host"], scope="qhb-demo")
    cluster.start()
    state = {
        "etcd": etcd,
        "nodes": {n.name: {"pid": n.proc.pid if n.proc else None, "data_dir": n.data_dir} for n in cluster.nodes},
    }
    with open(_state_path(base), "w", encoding="utf-8") as f:
        json.dump(state, f)
    print(f"demo: etcd at {etcd['host']}, daemons starting; logs in {base}/node*/node*.log")
    try:
        cluster.wait_all_running(timeout=180)
    except AssertionError:
        print(cluster.dump_logs(), file=sys.stderr)
        print("demo: the cluster did not come up; see the logs above", file=sys.stderr)
        return 1
    ctl(base, "list")
    for n in cluster.nodes:
        print(f"  {n.name}: REST http://127.0.0.1:{n.api_port}  database 127.0.0.1:{n.pg_port}  config {n.config_path}")
    print("Try: bash scripts/demo.sh ctl switchover   (any patronictl command: ctl edit-config, ctl restart ...)")
    print("Stop it with: bash scripts/demo.sh stop")
    return 0


def stop(base: str) -> int:
    try:
        with open(_state_path(base), encoding="utf-8") as f:
            state = json.load(f)
    except OSError:
        print(f"demo: nothing to stop in {base}")
        return 0
    nodes = state.get("nodes", {})
    for info in nodes.values():
        pid = info.get("pid")
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    for info in nodes.values():
        pid = info.get("pid")
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        pidfile = os.path.join(info.get("data_dir", ""), "postmaster.pid")
        try:
            with open(pidfile, encoding="utf-8") as f:
                pm = int(f.readline())
            if _alive(pm):
                os.kill(pm, signal.SIGQUIT)
        except (OSError, ValueError):
            pass
    etcd_pid = state.get("etcd", {}).get("pid")
    if etcd_pid and _alive(etcd_pid):
        os.kill(etcd_pid, signal.SIGTERM)
        wait_for(lambda: not _alive(etcd_pid), 20, "etcd to stop")
    os.remove(_state_path(base))
    print(f"demo: stopped; data kept in {base} until the next start")
    return 0


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "start"
    if cmd == "ctl":
        return ctl(DEFAULT_DIR, *sys.argv[2:])
    base = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_DIR
    if cmd == "start":
        return start(base)
    if cmd == "stop":
        return stop(base)
    if cmd == "list":
        return ctl(base, "list")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
