"""failsafe_mode in the shell: the calls a leader makes when the DCS is unreachable,
and what a member remembers of them.  The decisions are in core/failsafe.py."""
from __future__ import annotations

import threading
import urllib.parse
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .ports import ProberPort


def failsafe_url(api_url: str) -> str:
    """POST /failsafe goes to the member's REST API root (its api_url ends in /patroni)."""
    parts = urllib.parse.urlsplit(api_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/failsafe", "", ""))


def call_failsafe(prober: ProberPort, members: Sequence[Tuple[str, str]],
                  body: Mapping[str, Any], headers: Optional[Mapping[str, str]] = None) -> Dict[str, bool]:
    """POST `body` to every member's /failsafe in parallel (the prober's client, its TLS
    and its timeout); name -> the member answered 200."""
    results: Dict[str, bool] = {}
    threads = []

    def one(name: str, url: str) -> None:
        results[name] = prober.post_json(failsafe_url(url), body, headers) == 200

    for name, url in members:
        t = threading.Thread(target=one, args=(name, url), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(prober.timeout * 2 + 1)
    return {name: results.get(name, False) for name, _ in members}


class FailsafeInbox:
    """The leader whose POST /failsafe this member accepted last, and when (monotonic).
    Written by a REST worker thread, read by the loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leader: Optional[str] = None
        self._at = 0.0

    def accept(self, leader: str, at: float) -> None:
        with self._lock:
            self._leader, self._at = leader, at

    def leader(self, now: float, ttl: float) -> Optional[str]:
        """The leader that called less than `ttl` seconds ago, None if none did."""
        with self._lock:
            if self._leader is not None and now < self._at + ttl:
                return self._leader
            return None
