"""`scripts/demo.py start` brings a 3-node cluster up (real etcd, QHB names on the
PostgreSQL binaries) and `stop` leaves nothing running."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from tests.fixtures.pgbin import pg_available

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is not running
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _processes_under(base: str) -> List[str]:
    """Command lines of live processes that mention the demo directory."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if base in cmd and _alive(int(entry)):
            found.append(f"{entry}: {cmd}")
    return found


def _demo(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), *args], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=400)


@pytest.mark.skipif(not pg_available(), reason="needs the PostgreSQL 15 binaries and a non-root user")
def test_demo_start_and_stop(tmp_path: Path) -> None:
    base = str(tmp_path / "demo")
    try:
        started = _demo("start", base)
        assert started.returncode == 0, started.stdout + started.stderr
        out = started.stdout
        assert "+ Cluster: qhb-demo" in out
        assert out.count("| running |") == 3 and out.count("| Leader ") == 1 and out.count("| Replica ") == 2
        assert "Stop it with: bash scripts/demo.sh stop" in out
        with open(os.path.join(base, "demo.json"), encoding="utf-8") as f:
            state = json.load(f)
        pids = [state["etcd"]["pid"]] + [n["pid"] for n in state["nodes"].values()]
        for node in state["nodes"].values():
            with open(os.path.join(node["data_dir"], "postmaster.pid"), encoding="utf-8") as f:
                pids.append(int(f.readline()))
        assert len(pids) == 7 and all(_alive(p) for p in pids)
        listed = _demo("list", base)
        assert listed.returncode == 0 and listed.stdout.count("| running |") == 3
    finally:
        stopped = _demo("stop", base)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "demo: stopped" in stopped.stdout
    assert [p for p in pids if _alive(p)] == []
    assert _processes_under(base) == []
    assert not os.path.exists(os.path.join(base, "demo.json"))
    again = _demo("stop", base)
    assert (again.returncode, again.stdout.strip()) == (0, f"demo: nothing to stop in {base}")
