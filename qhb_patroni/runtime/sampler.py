"""The server sampler: the local server's SQL figures for the status board.

It samples when a reader asks (StatusBoard.wait_for_sample: a REST request finding the
sample older than a second) and otherwise once every `idle_interval` seconds, so an idle
daemon runs no status query a second for nobody.  The REST API's
answers do not depend on the idle samples (every request after a lull asks for a new
one); they keep the board's in-process readers (the observation's server_version) from
drifting far behind a server restarted by hand.  Transitions the daemon makes itself are
published by the loop as they happen (HALoop._refresh_server), and a postmaster that
exits is seen by the next request (api/server.py with_live_postmaster): neither waits
for this thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from .status import ServerStatus, StatusBoard

log = logging.getLogger(__name__)

IDLE_INTERVAL = 60.0  # seconds between two samples nobody asked for


class ServerSampler:
    def __init__(
        self,
        board: StatusBoard,
        sample: Callable[[], ServerStatus],
        clock: Callable[[], float],
        idle_interval: Callable[[], float] = lambda: IDLE_INTERVAL,
        before: Callable[[], None] = lambda: None,
    ) -> None:
        """`sample()`: one bounded look at the server; `before()`: run just before each
        sample (the daemon publishes the scheduled restart with it)."""
        self.board = board
        self.sample = sample
        self.clock = clock
        self.idle_interval = idle_interval
        self.before = before
        self.stopping = threading.Event()

    def run_once(self) -> None:
        """One sample, published (a failed look publishes nothing: the board keeps the last)."""
        self.before()  # before the sample: the readers it wakes see both
        try:
            server = self.sample()
        except Exception as exc:
            log.debug("status sample failed: %s", exc)
            self.board.sample_done()
        else:
            self.board.publish_server(server, self.clock())

    def run(self) -> None:
        self.board.sampler_attached = True
        try:
            while not self.stopping.is_set():
                self.run_once()
                self.board.wanted.wait(max(1.0, self.idle_interval()))
        finally:
            self.board.sampler_attached = False

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="status-sampler", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()
        self.board.wanted.set()
