"""The watchdog device layer against a real named pipe (the `testing` driver) and
real files that are not watchdogs."""
from __future__ import annotations

import os
import threading
from typing import Iterator

import pytest

from qhb_patroni.runtime.watchdog import (
    MODE_AUTOMATIC,
    MODE_OFF,
    MODE_REQUIRED,
    Watchdog,
    WatchdogError,
    WatchdogSettings,
    parse_mode,
)
from qhb_patroni.runtime.watchdog_device import LinuxDevice


class PipeReader:
    """Reads everything written to a named pipe, as the test device's far end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data = bytearray()
        self.closed = threading.Event()
        self._stop = threading.Event()
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(self._fd, 4096)
            if not chunk:  # the writer closed
                if self.data:
                    self.closed.set()
                    return
                continue
            self.data += chunk

    def text(self) -> str:
        return self.data.decode()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)


@pytest.fixture
def fifo(tmp_path: object) -> Iterator[str]:
    path = os.path.join(str(tmp_path), "watchdog")
    os.mkfifo(path)
    yield path


def make_testing(fifo: str, **kw: object) -> Watchdog:
    return Watchdog(WatchdogSettings.from_config(dict({"mode": "required", "device": fifo, "driver": "testing"},
                                                      **kw)))


@pytest.mark.parametrize("value, mode", [(False, MODE_OFF), ("off", MODE_OFF), ("Disabled", MODE_OFF),
                                         ("auto", MODE_AUTOMATIC), ("automatic", MODE_AUTOMATIC),
                                         (None, MODE_AUTOMATIC), ("require", MODE_REQUIRED),
                                         ("REQUIRED", MODE_REQUIRED), ("sometimes", MODE_OFF)])
def test_mode_spellings(value: object, mode: str) -> None:
    assert parse_mode(value) == mode


@pytest.mark.parametrize("margin, ttl, timeout", [(5, 30, 25), (5, 10, 5), (-1, 30, 15), (0, 10, 10)])
def test_timeout_is_ttl_less_the_safety_margin(margin: int, ttl: float, timeout: int) -> None:
    assert WatchdogSettings(safety_margin=margin).timeout_for(ttl) == timeout


def test_arm_ping_retime_and_magic_close(fifo: str) -> None:
    reader = PipeReader(fifo)
    try:
        dog = make_testing(fifo)
        assert dog.arm(ttl=30, loop_wait=10) and dog.armed and dog.timeout == 25
        assert dog.arm(ttl=30, loop_wait=10)  # already armed with that timeout: nothing written
        assert dog.keepalive() and dog.keepalive()
        assert dog.arm(ttl=20, loop_wait=10) and dog.timeout == 15  # ttl changed: retimed, not reopened
        dog.disarm()
        assert not dog.armed and not dog.failed
        assert reader.closed.wait(5)
        assert reader.text() == "Ctimeout=25\n11Ctimeout=15\nV"
    finally:
        reader.stop()


def test_a_pipe_without_reader_fails_at_once_and_names_the_device(fifo: str) -> None:
    dog = make_testing(fifo)
    assert not dog.arm(ttl=30, loop_wait=10)
    assert dog.failed and not dog.armed
    assert dog.error is not None and dog.error.startswith(f"watchdog.device {fifo}: cannot open it")


def test_a_lost_reader_fails_the_ping(fifo: str) -> None:
    reader = PipeReader(fifo)
    dog = make_testing(fifo)
    assert dog.arm(ttl=30, loop_wait=10)
    reader.stop()
    assert not dog.keepalive()
    assert dog.failed and not dog.armed and "ping failed" in (dog.error or "")


def test_missing_device(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "nothing")
    dog = Watchdog(WatchdogSettings(mode=MODE_AUTOMATIC, device=path))
    assert not dog.arm(ttl=30, loop_wait=10)
    assert dog.error == f"watchdog.device {path}: cannot open it: no such file"
    assert dog.failed


@pytest.mark.parametrize("path", ["/dev/null", "regular"])
def test_a_file_that_is_not_a_watchdog(path: str, tmp_path: object) -> None:
    if path == "regular":
        path = os.path.join(str(tmp_path), "regular")
        open(path, "w").close()
    dog = Watchdog(WatchdogSettings(mode=MODE_REQUIRED, device=path))
    assert not dog.arm(ttl=30, loop_wait=10)
    assert dog.error is not None and dog.error.startswith(f"watchdog.device {path}: not a watchdog device")
    if path != "/dev/null":
        assert os.path.getsize(path) == 0  # nothing written to it, not even the magic close


def test_timeout_shorter_than_loop_wait_is_refused(fifo: str) -> None:
    reader = PipeReader(fifo)
    try:
        dog = make_testing(fifo, safety_margin=8)
        assert not dog.arm(ttl=10, loop_wait=5)  # 10 - 8 = 2 s < loop_wait
        assert dog.error is not None and "shorter than loop_wait 5" in dog.error
        assert not dog.armed
    finally:
        reader.stop()


def test_out_of_range_timeout(fifo: str) -> None:
    dog = make_testing(fifo, safety_margin=30)
    assert not dog.arm(ttl=10, loop_wait=1)
    assert dog.error is not None and "out of range" in dog.error


def test_off_is_never_armed_and_never_failed(fifo: str) -> None:
    dog = make_testing(fifo, mode="off")
    assert not dog.arm(ttl=30, loop_wait=10)
    assert not dog.failed and dog.error is None


def test_unknown_driver_turns_it_off(fifo: str) -> None:
    assert WatchdogSettings.from_config({"mode": "required", "driver": "nope"}).mode == MODE_OFF


def test_reconfigure_with_another_device_disarms(fifo: str, tmp_path: object) -> None:
    reader = PipeReader(fifo)
    try:
        dog = make_testing(fifo)
        assert dog.arm(ttl=30, loop_wait=10)
        other = os.path.join(str(tmp_path), "other")
        dog.reconfigure(WatchdogSettings(mode=MODE_REQUIRED, device=other, driver="testing"))
        assert not dog.armed
        assert reader.closed.wait(5) and reader.text().endswith("V")
    finally:
        reader.stop()


def test_linux_device_closed_operations_raise() -> None:
    device = LinuxDevice("/dev/watchdog-that-is-not-open")
    with pytest.raises(WatchdogError, match="not open"):
        device.keepalive()
    device.close()  # closing a closed device is a no-op
    with pytest.raises(WatchdogError, match="not open"):
        device.keepalive()


def test_check_reports_a_missing_device_without_opening_it_and_clears_itself(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "later")
    dog = Watchdog(WatchdogSettings(mode=MODE_REQUIRED, device=path, driver="testing"))
    dog.check()
    assert dog.failed and dog.error == f"watchdog.device {path}: cannot open it: no such file"
    assert dog.state().error == dog.error and not dog.state().armed
    os.mkfifo(path)
    dog.check()
    assert not dog.failed and dog.error is None


def test_state_of_an_armed_watchdog(fifo: str) -> None:
    reader = PipeReader(fifo)
    try:
        dog = make_testing(fifo)
        assert dog.arm_with(7, loop_wait=2)
        state = dog.state()
        assert state.armed and state.timeout == 7 and state.error is None
    finally:
        reader.stop()


class _Nothing:
    pass


def _executor(dog: Watchdog) -> object:
    from qhb_patroni.runtime.executor import Executor, LeaseTracker
    ex = Executor(_Nothing(), _Nothing(), _Nothing(), LeaseTracker(), lambda: 0.0, lambda: 2.0)
    ex.watchdog = dog
    return ex


def test_executor_arm_required_fails_and_stops_before_the_lock_write(tmp_path: object) -> None:
    from qhb_patroni.core import actions as A
    path = os.path.join(str(tmp_path), "absent")
    ex = _executor(Watchdog(WatchdogSettings(mode=MODE_REQUIRED, device=path, driver="testing")))
    result = ex.execute([A.ArmWatchdog(8, required=True), A.AcquireLock()], None)  # type: ignore[attr-defined]
    assert result.failed is not None and result.failed.action == A.ArmWatchdog(8, required=True)


def test_executor_arm_automatic_goes_on_without_it(tmp_path: object) -> None:
    from qhb_patroni.core import actions as A
    path = os.path.join(str(tmp_path), "absent")
    ex = _executor(Watchdog(WatchdogSettings(mode=MODE_AUTOMATIC, device=path, driver="testing")))
    result = ex.execute([A.ArmWatchdog(8, required=False)], None)  # type: ignore[attr-defined]
    assert result.failed is None
    assert ex.watchdog.error is not None and ex.watchdog.error.startswith(f"watchdog.device {path}")  # type: ignore[attr-defined]


def test_executor_arm_ping_and_disarm_write_the_testing_protocol(fifo: str) -> None:
    from qhb_patroni.core import actions as A
    reader = PipeReader(fifo)
    try:
        ex = _executor(make_testing(fifo))
        result = ex.execute([A.ArmWatchdog(8, required=True), A.PingWatchdog(),  # type: ignore[attr-defined]
                             A.ArmWatchdog(5, required=True), A.DisarmWatchdog()], None)
        assert result.failed is None
        assert reader.closed.wait(5)
        assert reader.text() == "Ctimeout=8\n11Ctimeout=5\n1V"
    finally:
        reader.stop()
