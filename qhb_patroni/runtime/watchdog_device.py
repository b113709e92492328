"""The watchdog devices (runtime/watchdog.py opens them): Linux /dev/watchdog through
its ioctls, and the `testing` driver's named pipe.  A module of its own so that the
daemon imports ctypes only on a machine that has a watchdog device to open."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import platform
from typing import Any, Callable, Dict, Optional

from ..core import fencing
from .watchdog import Device, WatchdogError

# linux/watchdog.h: ioctl numbers are _IOR('W', nr, int) / _IOWR('W', nr, int).
_WDIOF_SETTIMEOUT = 0x0080
_WDIOF_MAGICCLOSE = 0x0100


def _ioc(read: bool, write: bool, nr: int, size: int) -> int:
    """_IOC() of linux/ioctl.h (the layout differs on mips, sparc and powerpc)."""
    if platform.machine().startswith(("mips", "sparc", "ppc", "powerpc")):
        size_bits, read_bit, write_bit = 13, 2, 4
    else:
        size_bits, read_bit, write_bit = 14, 2, 1
    direction = (read_bit if read else 0) | (write_bit if write else 0)
    return (direction << (16 + size_bits)) | (size << 16) | (ord("W") << 8) | nr


class _WatchdogInfo(ctypes.Structure):
    _fields_ = [("options", ctypes.c_uint32), ("firmware_version", ctypes.c_uint32),
                ("identity", ctypes.c_uint8 * 32)]


_INT = ctypes.sizeof(ctypes.c_int)
WDIOC_GETSUPPORT = _ioc(True, False, 0, ctypes.sizeof(_WatchdogInfo))
WDIOC_SETTIMEOUT = _ioc(True, True, 6, _INT)
WDIOC_GETTIMEOUT = _ioc(True, False, 7, _INT)


class LinuxDevice:
    """/dev/watchdog (or another watchdog character device) through its ioctls."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: Optional[int] = None
        self._info: Optional[_WatchdogInfo] = None

    def _error(self, what: str, exc: BaseException) -> WatchdogError:
        return WatchdogError(f"watchdog.device {self.path}: {what}: {exc}")

    def open(self) -> None:
        try:
            # non-blocking: a named pipe without a reader fails at once instead of hanging the loop
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise self._error("cannot open it", exc) from exc
        try:
            self._support()
        except WatchdogError:
            # a file that is not a watchdog: give it back without disarming anything
            os.close(self._fd)
            self._fd = None
            raise

    def _write(self, data: bytes, what: str) -> None:
        if self._fd is None:
            raise WatchdogError(f"watchdog.device {self.path}: {what}: the device is not open")
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            raise self._error(what, exc) from exc

    def _ioctl(self, request: int, arg: Any, what: str) -> None:
        if self._fd is None:
            raise WatchdogError(f"watchdog.device {self.path}: {what}: the device is not open")
        try:
            fcntl.ioctl(self._fd, request, arg, True)
        except OSError as exc:
            if exc.errno == errno.ENOTTY:
                raise self._error(f"not a watchdog device ({what})", exc) from exc
            raise self._error(what, exc) from exc

    def _support(self) -> _WatchdogInfo:
        if self._info is None:
            info = _WatchdogInfo()
            self._ioctl(WDIOC_GETSUPPORT, info, "cannot read what it supports")
            self._info = info
        return self._info

    def close(self) -> None:
        """Magic close: `V` then close, which disarms a device that supports it."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.write(fd, b"V")
        except OSError as exc:
            raise self._error("magic close failed", exc) from exc
        finally:
            os.close(fd)

    def keepalive(self) -> None:
        self._write(b"1", "ping failed")

    def set_timeout(self, seconds: int) -> None:
        self._ioctl(WDIOC_SETTIMEOUT, ctypes.c_int(seconds), f"refused the timeout {seconds} s")

    def get_timeout(self) -> int:
        value = ctypes.c_int()
        self._ioctl(WDIOC_GETTIMEOUT, value, "cannot read its timeout")
        return int(value.value)

    def can_set_timeout(self) -> bool:
        return bool(self._support().options & _WDIOF_SETTIMEOUT)

    def can_disarm(self) -> bool:
        return bool(self._support().options & _WDIOF_MAGICCLOSE)

    def describe(self) -> str:
        identity = bytes(self._info.identity).rstrip(b"\0").decode("ascii", "replace") if self._info else ""
        return f"{identity or 'Linux watchdog device'} at {self.path}"


class TestingDevice(LinuxDevice):
    """The `testing` driver: a named pipe that a test reads; ioctls become writes."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._timeout = 60

    def _support(self) -> _WatchdogInfo:
        info = _WatchdogInfo()
        info.options = _WDIOF_SETTIMEOUT | _WDIOF_MAGICCLOSE
        return info

    def set_timeout(self, seconds: int) -> None:
        self._write(f"Ctimeout={seconds}\n".encode("ascii"), f"refused the timeout {seconds} s")
        self._timeout = seconds

    def get_timeout(self) -> int:
        return self._timeout

    def describe(self) -> str:
        return f"testing watchdog at {self.path}"


DEVICES: Dict[str, Callable[[str], Device]] = {"default": LinuxDevice, "testing": TestingDevice}
assert tuple(DEVICES) == fencing.DRIVERS
