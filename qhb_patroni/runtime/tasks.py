"""The single background task (bootstrap, clone, promote, rewind, restart, reinitialize).

Only one runs at a time.  Its outcome is reported exactly once through
`status()`, which the loop puts into the next observation; `on_done` (the loop's
wake-up) is called when it finishes so the result is acted on at once.

A task can be cancelled (POST /reinitialize with force, as in 3.0.2).  Python
code cannot be interrupted safely, so cancellation is cooperative: the task
thread carries a cancel event in its context (`cancel_event()`), and the
manager's subprocess runner and wait loops look at it - a cancelled child is
killed with its whole process group and the work fails with `TaskCancelled`.
Only the task's own thread sees the event: the loop and the REST threads never do.
"""
from __future__ import annotations

import contextvars
import logging
import threading
from typing import Callable, Optional

from ..core.local import TaskKind, TaskStatus

log = logging.getLogger(__name__)

# The running task's cancel event; set only inside the task thread (threads start
# with an empty context, so no other thread ever sees it).
_CANCEL: contextvars.ContextVar[Optional[threading.Event]] = contextvars.ContextVar(
    "qhb_patroni_task_cancel", default=None
)

CANCELLED = "cancelled"  # the last word of a cancelled task's error message
CANCEL_TIMEOUT = 30.0  # seconds a cancelled task is waited for (killing a child takes at most ~15)


def cancel_event() -> Optional[threading.Event]:
    """The cancel event of the background task running in this thread (None elsewhere)."""
    return _CANCEL.get()


def cancel_requested() -> bool:
    event = _CANCEL.get()
    return event is not None and event.is_set()


def is_cancelled(status: Optional[TaskStatus]) -> bool:
    """A finished task that ended because it was cancelled."""
    return status is not None and status.done and status.cancelled


class TaskRunner:
    def __init__(self, on_done: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._status: Optional[TaskStatus] = None
        self._thread: Optional[threading.Thread] = None
        self._cancel: Optional[threading.Event] = None
        self._on_done = on_done

    def busy(self) -> bool:
        with self._lock:
            return self._status is not None and not self._status.done

    def start(self, kind: TaskKind, name: str, work: Callable[[], bool]) -> bool:
        """Start `work` in the background; False if another task is running."""
        with self._lock:
            if self._status is not None and not self._status.done:
                log.warning("Failed to run %s, %s is already in progress", name, self._status.name)
                return False
            self._status = TaskStatus(kind=kind, name=name)
            cancel = self._cancel = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(kind, name, work, cancel), name=f"task-{kind}", daemon=True
            )
            self._thread.start()
            return True

    def _run(self, kind: TaskKind, name: str, work: Callable[[], bool], cancel: threading.Event) -> None:
        _CANCEL.set(cancel)
        ok = False
        error: Optional[str] = None
        try:
            ok = bool(work())
            if not ok:
                error = f"{name} failed"
        except Exception as exc:  # a task must never take the daemon down
            if cancel.is_set():
                log.info("%s stopped: %s", name, exc)
            else:
                log.exception("%s failed", name)
            error = f"{name} failed: {exc}"
        cancelled = not ok and cancel.is_set()
        if cancelled:
            error = f"{name} {CANCELLED}"
        with self._lock:
            self._status = TaskStatus(kind=kind, name=name, done=True, ok=ok, error=error, cancelled=cancelled)
        self._on_done()

    def cancel(self, timeout: float = CANCEL_TIMEOUT) -> bool:
        """Ask the running task to stop and wait (at most `timeout` s) until it has ended.

        True when a task was running and has ended (its status, cancelled or not if it
        completed meanwhile, is then waiting in `status()`); False when nothing was
        running or it did not end in time (it stays cancelled and ends later)."""
        with self._lock:
            if self._status is None or self._status.done or self._cancel is None:
                return False
            log.info("cancelling %s", self._status.name)
            self._cancel.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            return self._status is not None and self._status.done

    def status(self) -> Optional[TaskStatus]:
        """The running task, or the finished one (returned once, then forgotten)."""
        with self._lock:
            status = self._status
            if status is not None and status.done:
                self._status = None
            return status

    def peek(self) -> Optional[TaskStatus]:
        with self._lock:
            return self._status

    def join(self, timeout: Optional[float] = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
