"""POST /failsafe: a leader that cannot reach the DCS asks this member to keep it.

3.0.2: 502 when failsafe_mode is off; 500 "Running as a leader" when this node is a
running primary itself; else 200 "Accepted", remembered for ttl (this member then
stays out of the leader race; core/failsafe.py).  In addition the call is refused
(403) when its body is not the last known leader's (name and api_url as in the
/failsafe key) or it does not come from that leader's address: only the leader may
keep the other members from promoting.  Authentication and the allowlist are those
of every unsafe endpoint (the route is registered unsafe).
"""
from __future__ import annotations

import ipaddress
import socket
import time
import urllib.parse
from typing import Any, Callable, Set

from ..core.model import ROLE_MASTER
from ..runtime.failsafe import FailsafeInbox
from ..runtime.status import StatusView
from .control import read_json
from .views import reported_role, reported_state
from .wire import Request, Response, error_response, text_response

Resolver = Callable[[str], Set[str]]


def resolve(host: str) -> Set[str]:
    """Every address a host name stands for (an IP literal stands for itself)."""
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


def _same_address(client: str, addresses: Set[str]) -> bool:
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip) in addresses


class FailsafeApi:
    def __init__(self, inbox: FailsafeInbox, clock: Callable[[], float] = time.monotonic,
                 resolver: Resolver = resolve) -> None:
        self.inbox = inbox
        self.clock = clock
        self.resolver = resolver

    def install(self, server: Any) -> None:
        server.add_route("POST", "failsafe", self.post_failsafe, unsafe=True)

    def post_failsafe(self, view: StatusView, now: float, req: Request) -> Response:
        if not view.failsafe_mode:
            return error_response(502)
        body = read_json(req)
        if isinstance(body, Response):
            return body
        if reported_state(view) == "running" and reported_role(view) == ROLE_MASTER:
            return text_response(500, "Running as a leader")
        refusal = self._refusal(view, body, req.client[0])
        if refusal is not None:
            return text_response(403, refusal)
        self.inbox.accept(str(body["name"]), self.clock())
        return text_response(200, "Accepted")

    def _refusal(self, view: StatusView, body: Any, client: str) -> Any:
        name, api_url = body.get("name"), body.get("api_url")
        if not isinstance(name, str) or not isinstance(api_url, str):
            return "name and api_url are required"
        cluster = view.cluster
        members = cluster.failsafe if cluster is not None else None
        if view.last_leader is None or name != view.last_leader:
            return f"{name} is not the leader"
        if not isinstance(members, dict) or members.get(name) != api_url:
            return f"{name} is not in /failsafe with that api_url"
        host = urllib.parse.urlsplit(api_url).hostname or ""
        if not _same_address(client, self.resolver(host)):
            return f"not called from {name}'s address"
        return None
