"""The single background task (bootstrap, clone, promote, rewind).

Only one runs at a time.  Its outcome is reported exactly once through
`status()`, which the loop puts into the next observation; `on_done` (the loop's
wake-up) is called when it finishes so the result is acted on at once.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from ..core.local import TaskStatus

log = logging.getLogger(__name__)


class TaskRunner:
    def __init__(self, on_done: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._status: Optional[TaskStatus] = None
        self._thread: Optional[threading.Thread] = None
        self._on_done = on_done

    def busy(self) -> bool:
        with self._lock:
            return self._status is not None and not self._status.done

    def start(self, kind: str, name: str, work: Callable[[], bool]) -> bool:
        """Start `work` in the background; False if another task is running."""
        with self._lock:
            if self._status is not None and not self._status.done:
                log.warning("Failed to run %s, %s is already in progress", name, self._status.name)
                return False
            self._status = TaskStatus(kind=kind, name=name)
            self._thread = threading.Thread(target=self._run, args=(kind, name, work), name=f"task-{kind}", daemon=True)
            self._thread.start()
            return True

    def _run(self, kind: str, name: str, work: Callable[[], bool]) -> None:
        ok = False
        error: Optional[str] = None
        try:
            ok = bool(work())
            if not ok:
                error = f"{name} failed"
        except Exception as exc:  # a task must never take the daemon down
            log.exception("%s failed", name)
            error = f"{name} failed: {exc}"
        with self._lock:
            self._status = TaskStatus(kind=kind, name=name, done=True, ok=ok, error=error)
        self._on_done()

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
