"""Fencing in the simulation: the watchdog device on the simulated clock, and POST
/failsafe routed between the simulated nodes.

`SimWatchdogDevice` is a runtime/watchdog.py Device (passed to the real Watchdog as
its opener): opening or setting the timeout starts the timer, a write restarts it,
the magic close stops it.  The world resets the node (the daemon and the database
stop, as a machine reset does) when the timer of an open device runs out.

`answer_failsafe` is what the target node's REST API answers: the real handler of
api/failsafe.py on that node's status board and failsafe inbox, with the simulated
clock (every simulated node's api_url is on 127.0.0.1, where the call comes from).
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping, Optional, Set

from qhb_patroni.api.failsafe import FailsafeApi
from qhb_patroni.api.wire import Request

if TYPE_CHECKING:
    from .node import SimNode

SIM_HOST = "127.0.0.1"


class SimWatchdogDevice:
    def __init__(self, node: SimNode, path: str) -> None:
        self.node = node
        self.path = path
        self.timeout = 60
        self.expires_at: Optional[float] = None  # None: not running (closed, or never opened)
        self.pings = 0
        node.watchdog_device = self

    def _now(self) -> float:
        return self.node.world.clock()

    def open(self) -> None:
        self.expires_at = self._now() + self.timeout  # opening a watchdog starts it

    def close(self) -> None:
        self.expires_at = None  # magic close

    def keepalive(self) -> None:
        self.pings += 1
        self.expires_at = self._now() + self.timeout

    def set_timeout(self, seconds: int) -> None:
        self.timeout = seconds
        self.expires_at = self._now() + seconds  # WDIOC_SETTIMEOUT pings as well

    def get_timeout(self) -> int:
        return self.timeout

    def can_set_timeout(self) -> bool:
        return True

    def can_disarm(self) -> bool:
        return True

    def describe(self) -> str:
        return f"simulated watchdog of {self.node.name}"

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def _resolve(host: str) -> Set[str]:
    return {host}


def answer_failsafe(target: SimNode, doc: Mapping[str, Any], headers: Optional[Mapping[str, str]]) -> int:
    """The HTTP status `target`'s REST API answers to POST /failsafe with `doc`."""
    body = json.dumps(dict(doc)).encode("utf-8")
    req_headers = {k.lower(): v for k, v in (headers or {}).items()}
    req_headers["content-length"] = str(len(body))
    req = Request(method="POST", path="/failsafe", query={}, headers=req_headers, body=body,
                  client=(SIM_HOST, 40000))
    world = target.world
    api = FailsafeApi(target.loop.failsafe_inbox, clock=world.clock, resolver=_resolve)
    return api.post_failsafe(target.loop.board.get(), world.clock(), req).code
