"""The lease guard: fences the local primary when its lease runs out, even while the
HA loop is stuck in a DCS call.

The loop tells the guard the deadline (core/lease.py `fence_at` of the last renewal
sent, extended while failsafe mode holds, none in pause or without a lease); a thread
of its own sleeps until then and, unless a newer deadline came in, stops the server
from acknowledging writes (`fence`: fast shutdown, or SIGKILL of a postmaster that
is itself stopped).  The loop demotes properly once it can; the guard only makes
sure that no write is acknowledged after the leader key could have expired.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)


class LeaseGuard:
    def __init__(self, fence: Callable[[], bool], clock: Callable[[], float] = time.monotonic,
                 on_fenced: Optional[Callable[[], None]] = None) -> None:
        self._fence = fence
        self._clock = clock
        self._on_fenced = on_fenced
        self._cond = threading.Condition()
        self._deadline: Optional[float] = None
        self._fired_for: Optional[float] = None  # a deadline fenced once is never fenced again
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self.fenced = 0  # how many times it fenced (tests, logs)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lease-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    def set(self, deadline: Optional[float]) -> None:
        """The new deadline (monotonic), None = nothing to guard."""
        with self._cond:
            if deadline is not None and self._fired_for is not None and deadline <= self._fired_for:
                deadline = None  # the lease that ended has been dealt with
            if deadline != self._deadline:
                self._deadline = deadline
                self._cond.notify_all()

    @property
    def deadline(self) -> Optional[float]:
        return self._deadline

    def poll(self) -> bool:
        """Fence now if the deadline has passed (for a caller that drives time itself,
        such as a simulation with a fake clock, instead of the thread).  True if it fenced."""
        with self._cond:
            deadline = self._deadline
            if deadline is None or self._clock() < deadline:
                return False
            self._deadline, self._fired_for = None, deadline
        return self._fire()

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - self._clock()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline, self._fired_for = None, deadline  # once per deadline
                self._cond.release()
                try:
                    self._fire()
                finally:
                    self._cond.acquire()

    def _fire(self) -> bool:
        try:
            stopped = self._fence()
        except Exception:
            log.exception("fencing the server failed")
            return False
        if stopped:
            self.fenced += 1
            log.warning("The leader key may expire now (last renewal sent more than ttl minus the safety "
                        "margin ago): stopped the server from accepting writes")
            if self._on_fenced is not None:
                self._on_fenced()
        return stopped
