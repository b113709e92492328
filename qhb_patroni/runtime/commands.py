"""The operator command queue between the REST API threads and the HA loop.

The API validates a request, submits a command (core.operator) and, for an
immediate restart or a reinitialize, waits on its Ticket.  The loop hands the
pending commands to decide() in every observation and completes the ticket
when the executor refused the command or its background task ended.
A scheduled restart stays queued (one at most) until it ran or was deleted.
Reload requests are a flag the loop takes before its next cycle.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from ..core.model import ClusterView
from ..core.operator import Command, ReinitCommand, RestartCommand


class Ticket:
    """The outcome of one command: ok + message, once."""

    def __init__(self, command: Command) -> None:
        self.command = command
        self._done = threading.Event()
        self.ok = False
        self.message = ""
        self.started = False

    def complete(self, ok: bool, message: str) -> None:
        if not self._done.is_set():
            self.ok, self.message = ok, message
            self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()


@dataclass(frozen=True)
class ScheduledRestart:
    ident: int
    schedule: _dt.datetime
    postgres_version: Optional[str] = None


class CommandQueue:
    def __init__(self, wake: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._tickets: Dict[int, Ticket] = {}
        self._scheduled: Optional[ScheduledRestart] = None
        self._reload = False
        self.wake = wake

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # ---- API side ---------------------------------------------------------------
    def submit(self, command: Command) -> Ticket:
        ticket = Ticket(command)
        with self._lock:
            self._tickets[command.ident] = ticket
        self.wake()
        return ticket

    def withdraw(self, ticket: Ticket) -> None:
        """The caller gave up waiting: drop the command unless its task has started."""
        with self._lock:
            if not ticket.started:
                self._tickets.pop(ticket.command.ident, None)

    def schedule_restart(self, command: RestartCommand, schedule: _dt.datetime,
                         postgres_version: Optional[str]) -> bool:
        """False when another restart is already scheduled."""
        with self._lock:
            if self._scheduled is not None:
                return False
            self._scheduled = ScheduledRestart(command.ident, schedule, postgres_version)
            self._tickets[command.ident] = Ticket(command)
        self.wake()
        return True

    def cancel_scheduled_restart(self) -> bool:
        with self._lock:
            scheduled = self._scheduled
            if scheduled is None:
                return False
            ticket = self._tickets.get(scheduled.ident)
            if ticket is not None and ticket.started:
                return False
            self._scheduled = None
            self._tickets.pop(scheduled.ident, None)
            return True

    def scheduled_restart(self) -> Optional[ScheduledRestart]:
        return self._scheduled

    def request_reload(self) -> None:
        with self._lock:
            self._reload = True
        self.wake()

    # ---- loop side --------------------------------------------------------------
    def take_reload(self) -> bool:
        with self._lock:
            wanted, self._reload = self._reload, False
            return wanted

    def pending(self) -> Tuple[Command, ...]:
        """Commands not yet started, oldest first (what decide() sees)."""
        with self._lock:
            return tuple(t.command for _, t in sorted(self._tickets.items()) if not t.started)

    def started(self, ident: int) -> None:
        with self._lock:
            ticket = self._tickets.get(ident)
            if ticket is not None:
                ticket.started = True

    def finish(self, ident: int, ok: bool, message: str) -> None:
        with self._lock:
            ticket = self._tickets.pop(ident, None)
            if self._scheduled is not None and self._scheduled.ident == ident:
                self._scheduled = None
        if ticket is not None:
            ticket.complete(ok, message)

    def is_reinit(self, ident: int) -> bool:
        with self._lock:
            ticket = self._tickets.get(ident)
            return ticket is not None and isinstance(ticket.command, ReinitCommand)


def seconds_to_schedule(cluster: Optional[ClusterView], commands: CommandQueue, wall: float) -> Optional[float]:
    """Seconds until the nearest scheduled switchover / restart (wall clock), if any."""
    times = []
    if cluster is not None and cluster.failover is not None and cluster.failover.scheduled_at is not None:
        times.append(cluster.failover.scheduled_at.timestamp())
    scheduled = commands.scheduled_restart()
    if scheduled is not None:
        times.append(scheduled.schedule.timestamp())
    upcoming = [t - wall for t in times if t - wall > 0]
    return min(upcoming) if upcoming else None
