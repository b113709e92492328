"""run_tool inside a cancelled background task kills the child's whole process group."""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List

import pytest

from qhb_patroni.manager.process import TaskCancelled, is_alive, run_tool
from qhb_patroni.manager.settings import ManagerError
from qhb_patroni.runtime.tasks import TaskRunner, cancel_event


def wait_for_file(path: Path, event: threading.Event) -> str:
    while not event.is_set():
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        event.wait(0.05)
    return ""


def test_cancelled_task_kills_the_tool_and_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A wrapper script (like a slow replica-creation script) with a child of its own.
    script = f"sleep 300 & echo $$ $! > {pids}.tmp && mv {pids}.tmp {pids}; wait"
    errors: List[BaseException] = []

    def work() -> bool:
        try:
            run_tool(["sh", "-c", script], timeout=600)
        except ManagerError as exc:
            errors.append(exc)
            raise
        return True

    tasks = TaskRunner(on_done=lambda: None)
    assert tasks.start("Clone", "bootstrap from leader 'a'", work)
    gave_up = threading.Event()
    timer = threading.Timer(60, gave_up.set)
    timer.start()
    try:
        line = wait_for_file(pids, gave_up)
    finally:
        timer.cancel()
    assert line, "the script did not start"
    shell, child = (int(p) for p in line.split())
    assert is_alive(shell) and is_alive(child)
    assert tasks.cancel(timeout=60)
    finished = tasks.status()
    assert finished is not None and finished.error == "bootstrap from leader 'a' cancelled"
    assert len(errors) == 1 and isinstance(errors[0], TaskCancelled)
    assert not is_alive(shell) and not is_alive(child)


def test_outside_a_task_nothing_is_watched_and_results_are_as_before(tmp_path: Path) -> None:
    assert cancel_event() is None
    assert run_tool(["sh", "-c", "echo hello"], timeout=30) == "hello\n"
    with pytest.raises(ManagerError, match="sh failed: boom"):
        run_tool(["sh", "-c", "echo boom >&2; exit 3"], timeout=30)
    with pytest.raises(ManagerError, match="cannot run"):
        run_tool([os.path.join(str(tmp_path), "missing")], timeout=30)


def test_timeout_kills_the_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    with pytest.raises(ManagerError, match="timed out"):
        run_tool(["sh", "-c", f"sleep 300 & echo $! > {pids}; wait"], timeout=1)
    child = int(pids.read_text().strip())
    assert not is_alive(child)


def test_a_cancelled_task_does_not_start_a_new_tool() -> None:
    started: List[str] = []

    def work() -> bool:
        event = cancel_event()
        assert event is not None
        event.wait(30)
        started.append("about to run")
        run_tool(["sh", "-c", "echo should-not-run"], timeout=30)
        started.append("ran")
        return True

    tasks = TaskRunner(on_done=lambda: None)
    assert tasks.start("Restart", "restart", work)
    assert tasks.cancel(timeout=30)
    assert started == ["about to run"]
    finished = tasks.status()
    assert finished is not None and finished.error == "restart cancelled"
