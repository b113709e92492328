"""User callbacks: `<command...> <action> <role> <scope>` (postgresql.callbacks.*).

One callback runs at a time: a new one kills the previous one and its process
group; on_reload has a slot of its own.  Callbacks never block the caller.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
from typing import Any, Dict, Mapping, Optional

from .process import clean_env

ACTIONS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")


class Callbacks:
    def __init__(self, commands: Optional[Mapping[str, Any]], scope: str) -> None:
        self.commands: Dict[str, str] = {k: str(v) for k, v in (commands or {}).items() if k in ACTIONS and v}
        self.scope = scope
        self._lock = threading.Lock()
        self._running: Dict[str, subprocess.Popen[bytes]] = {}

    def fire(self, action: str, role: str) -> Optional[int]:
        """Start the callback for `action` if configured; returns its pid."""
        command = self.commands.get(action)
        if not command:
            return None
        slot = "reload" if action == "on_reload" else "main"
        argv = [*shlex.split(command), action, role, self.scope]
        with self._lock:
            previous = self._running.pop(slot, None)
            if previous is not None and previous.poll() is None:
                try:
                    os.killpg(previous.pid, signal.SIGKILL)
                except OSError:
                    pass
                previous.wait()
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    env=clean_env(), start_new_session=True, close_fds=True,
                )
            except OSError:
                return None
            self._running[slot] = proc
            return proc.pid

    def wait(self, timeout: float = 10) -> None:
        """Wait for running callbacks (used at shutdown and by tests)."""
        with self._lock:
            procs = list(self._running.values())
        for proc in procs:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
