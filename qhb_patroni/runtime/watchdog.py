"""The watchdog device (`watchdog:` section): arm, ping, retime and disarm it.

A hardware or softdog watchdog resets the machine when nobody writes to it for
its timeout.  The leader arms it with timeout `ttl - safety_margin` (`ttl // 2`
when safety_margin is -1) and pings it every cycle before renewing the lock, so
that a daemon that hangs (or is SIGSTOPped) while its database keeps accepting
writes is fenced by a reset before its leader key can expire.

Drivers:
- `default`: Linux /dev/watchdog through its ioctls (linux/watchdog.h); any write
  pings it, the magic character `V` written just before closing disarms it.
- `testing`: the same file protocol on a named pipe, with the ioctls replaced by
  writes, as Patroni 3.0.2's testing device does: a ping writes `1`, a new timeout
  writes `Ctimeout=<seconds>\\n`, the magic close writes `V`.

Whether to arm, ping or disarm is decided by the core; this module performs it
and reports what went wrong in one line that names `watchdog.device`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Protocol

from ..core import fencing
from ..core.fencing import MODE_AUTOMATIC, MODE_OFF, MODE_REQUIRED, watchdog_mode
from ..core.observation import WatchdogState

log = logging.getLogger(__name__)
__all__ = ["MODE_AUTOMATIC", "MODE_OFF", "MODE_REQUIRED", "Watchdog", "WatchdogError", "WatchdogSettings"]

DEFAULT_DEVICE = "/dev/watchdog"
MAX_TIMEOUT = 0xFFFF  # the driver interface takes an int of seconds; keep it sane

class WatchdogError(Exception):
    """One line for the log and GET /patroni, naming watchdog.device."""


def parse_mode(value: Any) -> str:
    """`watchdog.mode` as 3.0.2 reads it: YAML false is off, unknown is off (warned)."""
    mode = watchdog_mode(value)
    if mode is None:
        log.warning("watchdog.mode %r is not one of off, automatic, required: the watchdog is off", value)
        return MODE_OFF
    return mode


class Device(Protocol):
    path: str

    def open(self) -> None: ...
    def close(self) -> None: ...
    def keepalive(self) -> None: ...
    def set_timeout(self, seconds: int) -> None: ...
    def get_timeout(self) -> int: ...
    def can_set_timeout(self) -> bool: ...
    def can_disarm(self) -> bool: ...
    def describe(self) -> str: ...


DRIVERS = fencing.DRIVERS  # watchdog.driver values; the devices are in watchdog_device.py


@dataclass(frozen=True)
class WatchdogSettings:
    mode: str = MODE_AUTOMATIC
    device: str = DEFAULT_DEVICE
    safety_margin: int = 5
    driver: str = "default"

    @classmethod
    def from_config(cls, section: Optional[Mapping[str, Any]]) -> WatchdogSettings:
        section = section or {}
        driver = str(section.get("driver") or "default")
        if driver not in DRIVERS:
            log.warning("watchdog.driver %r is not one of %s: the watchdog is off", driver, ", ".join(DRIVERS))
            return cls(mode=MODE_OFF)
        margin = section.get("safety_margin", 5)
        return cls(mode=parse_mode(section.get("mode", MODE_AUTOMATIC)),
                   device=str(section.get("device") or DEFAULT_DEVICE),
                   safety_margin=int(margin) if isinstance(margin, (int, float)) else 5, driver=driver)

    def timeout_for(self, ttl: float) -> int:
        """The device timeout a leader with this ttl needs."""
        return fencing.watchdog_timeout(ttl, self.safety_margin)


class Watchdog:
    """Opens, configures, pings and closes the device for the loop.  `error` holds
    the last failure (None while healthy); `armed` says whether it is open.
    `opener`: makes the device instead of watchdog_device.DEVICES[driver](device) (the simulation's
    device on its simulated clock); such a device is not looked for on the filesystem."""

    def __init__(self, settings: WatchdogSettings, opener: Optional[Callable[[str], Device]] = None) -> None:
        self.settings = settings
        self.opener = opener
        self.error: Optional[str] = None
        self.timeout: Optional[int] = None
        self._device: Optional[Device] = None
        self._checked: Optional[str] = None  # the error check() found (it clears only its own)

    @property
    def enabled(self) -> bool:
        return self.settings.mode != MODE_OFF

    @property
    def armed(self) -> bool:
        return self._device is not None

    def reconfigure(self, settings: WatchdogSettings) -> None:
        """New local settings (reload): a changed device or driver is reopened at the next arm."""
        if settings != self.settings:
            self.disarm()
            self.settings = settings

    def arm(self, ttl: float, loop_wait: float) -> bool:
        """Open the device if needed and set its timeout for `ttl`.  False (with
        `error` set) when it cannot be used; an off watchdog is never armed."""
        return self.arm_with(self.settings.timeout_for(ttl), loop_wait)

    def arm_with(self, wanted: int, loop_wait: float) -> bool:
        """`arm` with the timeout the core computed (ArmWatchdog.timeout)."""
        if not self.enabled:
            return False
        if self._device is not None and self.timeout == wanted:
            return True
        if self._device is None:
            self.check()
            if self._checked is not None:
                return False  # missing or not writable: said once by check(), not again every loop
        try:
            if wanted < 1 or wanted > MAX_TIMEOUT:
                raise WatchdogError(f"watchdog.device {self.settings.device}: timeout ttl - safety_margin "
                                    f"= {wanted} s is out of range (1..{MAX_TIMEOUT})")
            device = self._device or self._open()
            self._device = device
            timeout = self._configure(device, wanted)
            if timeout < loop_wait:
                raise WatchdogError(f"watchdog.device {self.settings.device}: its timeout {timeout} s is "
                                    f"shorter than loop_wait {loop_wait:g} s")
        except WatchdogError as exc:
            self._fail(str(exc))
            return False
        if self.timeout != timeout:
            log.info("%s armed with a %d s timeout", device.describe(), timeout)
        self.timeout, self.error = timeout, None
        return True

    def _open(self) -> Device:
        if self.opener is not None:
            make = self.opener
        else:  # imported here: ctypes and the ioctls only on a machine that has a device
            from .watchdog_device import DEVICES

            make = DEVICES[self.settings.driver]
        device: Device = make(self.settings.device)
        device.open()
        if not device.can_disarm():
            log.warning("%s cannot be disarmed (no magic close): closing it will not stop it", device.describe())
        return device

    def _configure(self, device: Device, wanted: int) -> int:
        if device.can_set_timeout():
            device.set_timeout(wanted)
            return wanted
        actual = device.get_timeout()
        if actual > wanted:
            raise WatchdogError(f"watchdog.device {self.settings.device}: its fixed timeout {actual} s is "
                                f"longer than ttl - safety_margin = {wanted} s, so it cannot fence in time")
        return actual

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.error("%s (watchdog.mode %s)", message, self.settings.mode)
        self.error = message
        self._close_quietly()

    def keepalive(self) -> bool:
        if self._device is None:
            return False
        try:
            self._device.keepalive()
        except WatchdogError as exc:
            self._fail(str(exc))
            return False
        return True

    def disarm(self) -> None:
        if self._device is None:
            return
        description = self._device.describe()
        try:
            self._device.close()
            log.info("%s disarmed", description)
        except WatchdogError as exc:
            log.error("%s", exc)
        finally:
            self._device, self.timeout = None, None

    def _close_quietly(self) -> None:
        device, self._device, self.timeout = self._device, None, None
        if device is not None:
            try:
                device.close()
            except WatchdogError:
                pass

    def check(self) -> None:
        """Cheap look at a device that is not armed (every cycle): one that cannot be
        opened for writing is reported at once, so that peers and `GET /patroni` know
        before this node ever races for the lock (never opens it: opening arms it)."""
        if not self.enabled or self._device is not None or self.opener is not None:
            return
        path = self.settings.device
        problem = None
        if not os.path.exists(path):
            problem = f"watchdog.device {path}: cannot open it: no such file"
        elif not os.access(path, os.W_OK):
            problem = f"watchdog.device {path}: cannot open it: not writable by this user"
        if problem is not None:
            self._fail(problem)
        elif self.error is not None and self.error == self._checked:
            self.error = None  # the device is there now: the next race may try it
        self._checked = problem

    def state(self) -> WatchdogState:
        """What the core sees (Observation.watchdog)."""
        return WatchdogState(armed=self.armed, timeout=self.timeout if self.armed else None,
                             error=self.error if self.enabled else None)

    @property
    def failed(self) -> bool:
        """`watchdog_failed` of GET /patroni: the watchdog is wanted but cannot be used."""
        return self.enabled and self.error is not None
