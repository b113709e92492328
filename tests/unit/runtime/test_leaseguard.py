"""The lease guard (runtime/leaseguard.py) and the fence it performs on a postmaster
(manager/process.py Postmaster.fence), with real threads and real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import List

from qhb_patroni.manager.process import Postmaster, _is_stopped, child_pids, is_alive
from qhb_patroni.runtime.leaseguard import LeaseGuard


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _guard(clock: Clock, fenced: List[float]) -> LeaseGuard:
    done = threading.Event()

    def fence() -> bool:
        fenced.append(clock.now)
        done.set()
        return True

    guard = LeaseGuard(fence, clock)
    guard.start()
    return guard


def _settle() -> None:
    time.sleep(0.2)  # let the guard thread look at the clock


def test_fences_once_when_the_deadline_has_passed() -> None:
    clock, fenced = Clock(), []  # type: ignore[var-annotated]
    guard = _guard(clock, fenced)
    try:
        guard.set(clock.now - 1)  # already due
        deadline = time.monotonic() + 5
        while not fenced and time.monotonic() < deadline:
            time.sleep(0.01)
        _settle()
        assert fenced == [100.0] and guard.deadline is None and guard.fenced == 1
    finally:
        guard.stop()


def test_a_later_deadline_or_none_means_no_fence() -> None:
    clock, fenced = Clock(), []  # type: ignore[var-annotated]
    guard = _guard(clock, fenced)
    try:
        guard.set(clock.now + 60)  # renewed: far away
        _settle()
        guard.set(None)  # pause / no lease
        clock.now += 120
        guard.set(None)
        _settle()
        assert fenced == []
    finally:
        guard.stop()


def _fake_postmaster(tmp: str, command: List[str]) -> tuple[Postmaster, subprocess.Popen[bytes]]:
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    proc = subprocess.Popen(command, cwd=data)
    pidfile = os.path.join(data, "postmaster.pid")
    with open(pidfile, "w") as f:
        f.write(f"{proc.pid}\n{data}\n")
    return Postmaster("/bin/false", data, pidfile), proc


def test_fence_asks_a_running_server_for_a_fast_shutdown(tmp_path: object) -> None:
    # SIGINT is the fast shutdown request; `sleep` dies of it like a server ends.
    pm, proc = _fake_postmaster(str(tmp_path), ["sleep", "60"])
    try:
        assert pm.fence()
        assert proc.wait(10) == -signal.SIGINT
        assert not pm.fence()  # nothing left to fence
    finally:
        if proc.poll() is None:
            proc.kill()


def test_fence_kills_a_stopped_postmaster_and_its_children(tmp_path: object) -> None:
    pm, proc = _fake_postmaster(str(tmp_path), ["sh", "-c", "sleep 60 & wait"])
    try:
        deadline = time.monotonic() + 5
        while not child_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        children = child_pids(proc.pid)
        assert children
        os.kill(proc.pid, signal.SIGSTOP)  # a hung postmaster cannot pass a shutdown on
        deadline = time.monotonic() + 5
        while not _is_stopped(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # the stop takes effect asynchronously
        assert pm.fence()
        assert proc.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while any(is_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(is_alive(c) for c in children)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_same_deadline_is_never_fenced_twice() -> None:
    clock, fenced = Clock(), []  # type: ignore[var-annotated]
    guard = _guard(clock, fenced)
    try:
        guard.set(clock.now - 1)
        deadline = time.monotonic() + 5
        while not fenced and time.monotonic() < deadline:
            time.sleep(0.01)
        guard.set(clock.now - 1)  # the loop publishes the old lease again: already dealt with
        guard.set(clock.now - 2)
        _settle()
        assert fenced == [100.0] and guard.deadline is None
        guard.set(clock.now + 0.5)  # a new lease (renewed) that runs out later: fenced again
        clock.now += 1
        guard.set(clock.now - 0.5)
        deadline = time.monotonic() + 5
        while len(fenced) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fenced == [100.0, 101.0]
    finally:
        guard.stop()


def test_poll_fences_on_the_callers_clock_without_the_thread() -> None:
    clock, fenced = Clock(), []  # type: ignore[var-annotated]
    guard = LeaseGuard(lambda: fenced.append(clock.now) or True, clock)  # never started
    guard.set(clock.now + 5)
    assert not guard.poll() and fenced == []
    clock.now += 5
    assert guard.poll() and fenced == [105.0]
    assert not guard.poll()  # once per deadline
    guard.set(105.0)
    assert guard.deadline is None  # the same lease again: already dealt with
