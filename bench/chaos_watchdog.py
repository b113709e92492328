"""An emulated hardware watchdog per node for the chaos harness (`--watchdog`).

This machine has neither /dev/watchdog nor softdog, so the harness plays the
hardware.  Each node gets a named pipe `<node dir>/watchdog` that its daemon opens
with `watchdog: {mode: required, driver: testing, device: <pipe>}`.  The testing driver
writes the byte protocol of a watchdog device to it (runtime/watchdog.py): `1` per
keepalive, `Ctimeout=<s>\\n` for a new timeout, `V` just before a magic close.

`Device` is the pure state machine of one device, with the semantics of a Linux
watchdog driver: the first byte arms it (opening a real device arms it, and the
daemon sets its timeout right after opening); any keepalive or new timeout restarts
the countdown; a close right after `V` disarms it, and any other close (a daemon
killed with -9, a daemon that closes without the magic character) leaves it
counting.  When the countdown runs out the device fires.

`Monitor` is the hardware: a thread that holds the read end of every pipe, feeds
what arrives to the node's Device, notices when every writer has gone (a close) and,
when a device fires, does what a reset does: SIGKILL every process of that node at
once (daemon, database, DCS agent), then, after `reboot_s`, starts the node again as
after a crash.  It knows nothing about the faults: the only input to its decision
is the bytes the daemon wrote and the clock.
"""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List

DEFAULT_TIMEOUT = 60  # what a Linux driver (softdog) starts with before anyone sets one
FIFO_NAME = "watchdog"


@dataclass
class Device:
    """One emulated watchdog device (pure: the caller passes the clock)."""
    timeout: int = DEFAULT_TIMEOUT
    armed: bool = False
    last_ping: float = 0.0
    release_allowed: bool = False  # the last byte was the magic `V`
    _pending: bytes = b""

    def feed(self, data: bytes, now: float) -> None:
        buf = self._pending + data
        self._pending = b""
        while buf:
            if buf[:1] == b"C":  # Ctimeout=<seconds>\n
                end = buf.find(b"\n")
                if end < 0:
                    self._pending = buf
                    return
                line, buf = buf[:end], buf[end + 1:]
                value = line.partition(b"=")[2]
                if line.startswith(b"Ctimeout=") and value.isdigit() and int(value) > 0:
                    self.timeout = int(value)
                self._ping(now)  # setting a timeout pings a Linux watchdog too
                continue
            byte, buf = buf[:1], buf[1:]
            if byte == b"V":
                self.release_allowed = True
                if not self.armed:
                    self._ping(now)
                continue
            self._ping(now)  # any other write is a keepalive

    def _ping(self, now: float) -> None:
        self.armed = True
        self.last_ping = now
        self.release_allowed = False

    def closed(self) -> bool:
        """Every writer closed the device.  True when that disarmed it (magic close)."""
        if self.armed and self.release_allowed:
            self.armed = False
            self.release_allowed = False
            return True
        return False

    def expired(self, now: float) -> bool:
        return self.armed and now - self.last_ping >= self.timeout

    def reset(self) -> None:
        """The machine was reset: the device starts again unarmed."""
        self.armed, self.release_allowed, self._pending = False, False, b""
        self.timeout = DEFAULT_TIMEOUT


@dataclass
class Reset:
    at: float  # monotonic
    node: str
    silent_s: float  # time since the last keepalive
    timeout: int


def make_fifo(path: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    os.mkfifo(path, 0o600)


class Monitor(threading.Thread):
    """Polls every node's pipe; `reset(name)` kills a node, `reboot(name)` starts it again."""

    def __init__(self, fifos: Dict[str, str], reset: Callable[[str], None], reboot: Callable[[str], None],
                 reboot_s: float, poll_s: float = 0.05) -> None:
        super().__init__(name="watchdog-emulator", daemon=True)
        self.devices = {name: Device() for name in fifos}
        self.fds = {name: os.open(path, os.O_RDONLY | os.O_NONBLOCK) for name, path in fifos.items()}
        self.writer = {name: False for name in fifos}
        self._reset, self._reboot = reset, reboot
        self.reboot_s, self.poll_s = reboot_s, poll_s
        self.resets: List[Reset] = []
        self.errors: List[str] = []
        self._halt = threading.Event()
        self._reboots: List[threading.Thread] = []

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)
        for t in self._reboots:
            t.join(timeout=60)
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def run(self) -> None:
        while not self._halt.is_set():
            for name in list(self.devices):
                self._poll(name)
            time.sleep(self.poll_s)

    def _poll(self, name: str) -> None:
        dev = self.devices[name]
        while True:
            try:
                data = os.read(self.fds[name], 65536)
            except BlockingIOError:  # a writer holds it open, nothing to read
                self.writer[name] = True
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:  # no writer (left)
                if self.writer[name]:
                    dev.closed()
                self.writer[name] = False
                break
            self.writer[name] = True
            dev.feed(data, time.monotonic())
        now = time.monotonic()
        if dev.expired(now):
            silent, timeout = now - dev.last_ping, dev.timeout
            self.resets.append(Reset(now, name, silent, timeout))
            print(f"  watchdog: {name} reset (no keepalive for {silent:.1f} s, timeout {timeout} s)", flush=True)
            try:
                self._reset(name)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                self.errors.append(f"reset of {name}: {exc}")
            dev.reset()
            t = threading.Thread(target=self._reboot_later, args=(name,), daemon=True)
            self._reboots.append(t)
            t.start()

    def _reboot_later(self, name: str) -> None:
        if self._halt.wait(self.reboot_s):
            return  # the run is ending: teardown stops everything anyway
        try:
            self._reboot(name)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            self.errors.append(f"restart of {name} after its reset: {exc}")
            print(f"  watchdog: restart of {name} failed: {exc}", flush=True)


def resets_in(resets: List[Reset], start: float, end: float) -> List[str]:
    """The nodes reset within [start, end)."""
    return [r.node for r in resets if start <= r.at < end]


def timeout_margin(ttl: int, loop_wait: int, retry_timeout: int) -> int:
    """safety_margin that gives a device timeout above loop_wait + retry_timeout (docs/watchdog.md:
    a shorter one can fire during a DCS outage before the loop has noticed), and below ttl."""
    return max(1, ttl - loop_wait - retry_timeout - 1)
