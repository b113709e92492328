"""The worker threads of the REST API's unsafe handlers (api/listener.py)."""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Optional, Set

logger = logging.getLogger("qhb_patroni.api.listener")


class WorkerPool:
    """A few daemon threads for the unsafe handlers (daemon: a handler waiting minutes for
    a restart must not hold up the process's exit, nor stop())."""

    def __init__(self, size: int) -> None:
        self._queue: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._busy: Set[threading.Thread] = set()
        self._threads = [
            threading.Thread(target=self._run, name=f"restapi-unsafe-{i}", daemon=True) for i in range(size)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job: Callable[[], None]) -> None:
        self._queue.put(job)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._busy.add(me)
            try:
                job()
            except Exception:  # jobs answer their own errors; this is a last resort
                logger.exception("API: unsafe request worker failed")
            finally:
                self._busy.discard(me)

    def stop(self, timeout: float) -> None:
        """Queued jobs are dropped (their connections are gone), idle workers exit at once,
        a busy one finishes its request on its own."""
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for t in self._threads:
            if t is not threading.current_thread() and t not in self._busy:
                t.join(max(0.0, deadline - time.monotonic()))
