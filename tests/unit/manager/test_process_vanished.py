"""Postmaster.stop of a process that exits by itself between being found and being
signalled (a postmaster finishing a fast shutdown the lease guard asked for) counts
it as stopped instead of raising ProcessLookupError (chaos seed 22, fault #82).

Real processes stand in for the postmaster: `sleep` started with the data directory
as working directory and its pid in the pid file, which is all Postmaster.pid checks.
"""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from qhb_patroni.manager.process import Postmaster, is_alive


class ExitsWhenFound(Postmaster):
    """The process exits (and is reaped) right after pid() found it alive: the
    window between the check and the kill, made deterministic."""

    def __init__(self, data_dir: str, pidfile: str, proc: subprocess.Popen[bytes]) -> None:
        super().__init__("unused", data_dir, pidfile)
        self.proc = proc
        self.found: List[int] = []

    def pid(self) -> Optional[int]:
        pid = super().pid()
        if pid is not None and not self.found:
            self.found.append(pid)
            self.proc.kill()
            self.proc.wait()
        return pid


@pytest.fixture
def fake_postmaster(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"], cwd=tmp_path, start_new_session=True)
    (tmp_path / "postmaster.pid").write_text(f"{proc.pid}\n{tmp_path}\n")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("mode", ["smart", "fast", "immediate"])
def test_a_postmaster_that_exits_before_the_signal_counts_as_stopped(
        tmp_path: Path, fake_postmaster: subprocess.Popen[bytes], mode: str) -> None:
    pm = ExitsWhenFound(str(tmp_path), str(tmp_path / "postmaster.pid"), fake_postmaster)
    assert pm.stop(mode, timeout=5) is True
    assert pm.found == [fake_postmaster.pid]
    assert not is_alive(fake_postmaster.pid)
    assert pm.pid() is None


def test_a_running_process_is_stopped_by_its_signal(tmp_path: Path,
                                                    fake_postmaster: subprocess.Popen[bytes]) -> None:
    pm = Postmaster("unused", str(tmp_path), str(tmp_path / "postmaster.pid"))
    assert pm.pid() == fake_postmaster.pid
    # sleep dies of SIGTERM (smart); until the test reaps it, its zombie does not count as alive.
    assert pm.stop("smart", timeout=30) is True
    assert fake_postmaster.wait(timeout=30) != 0
    assert pm.pid() is None


def test_nothing_to_stop_is_reported_as_not_running(tmp_path: Path) -> None:
    pm = Postmaster("unused", str(tmp_path), str(tmp_path / "postmaster.pid"))
    assert pm.stop("fast", timeout=1) is False
    assert pm.pid() is None
