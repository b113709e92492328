"""The REST API: handlers, the routing table and RestApiServer (listen, TLS, access,
reload, start/stop). The connections themselves live in listener.py.

Safe requests (GET/HEAD/OPTIONS and every route not registered unsafe) only read
`board.get()` (an immutable StatusView) and are answered inline on the listener's event
loop; unsafe handlers (control.py) call the DCS and run on worker threads, so a slow
database or DCS can never make a health check hang.
"""
from __future__ import annotations

import logging
import os
import socket
import ssl
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from ..runtime.status import StatusBoard, StatusView
from . import health, metrics, views
from .limits import DEFAULT_MAX_PER_ADDRESS, ConnectionLimits, connection_limits, nofile_limit
from .listener import IDLE_TIMEOUT, MAX_CONNECTIONS, UNSAFE_WORKERS, Listener, listening_socket
from .security import AccessPolicy, open_endpoints_warning, ssl_context
from .wire import (
    REQUEST_TIMEOUT,
    Request,
    Response,
    error_response,
    json_response,
    text_response,
)

logger = logging.getLogger(__name__)

# ---- handlers: (view, now, request) -> Response ---------------------------------

Handler = Callable[[StatusView, float, Request], Response]


def get_patroni(view: StatusView, now: float, req: Request) -> Response:
    return json_response(200, views.node_status(view, now))


def get_cluster(view: StatusView, now: float, req: Request) -> Response:
    # The last good DCS view (never a fresh read: the request must not block on the DCS).
    if view.cluster is None:
        return error_response(503, "DCS view not available")
    return json_response(200, views.cluster_json(view.cluster))


def get_history(view: StatusView, now: float, req: Request) -> Response:
    return json_response(200, views.history_json(view.cluster))


def get_config(view: StatusView, now: float, req: Request) -> Response:
    cluster = view.cluster
    if cluster is None or cluster.config is None:
        return error_response(502)
    return json_response(200, dict(cluster.config.data))


def get_failsafe(view: StatusView, now: float, req: Request) -> Response:
    failsafe = view.cluster.failsafe if view.cluster is not None else None
    if not isinstance(failsafe, Mapping):
        return error_response(502)
    return json_response(200, dict(failsafe))


def get_metrics(view: StatusView, now: float, req: Request) -> Response:
    return Response(200, metrics.render_metrics(view, now).encode("utf-8"), "text/plain")


def get_probe(view: StatusView, now: float, req: Request) -> Response:
    try:
        code, _ = health.probe(view, now, req.path, req.query)
    except health.QueryError as exc:
        return error_response(400, str(exc))
    return Response(code, status_only=True)


def get_health(view: StatusView, now: float, req: Request) -> Response:
    """Fallback for GET of any path without its own handler."""
    try:
        code, doc = health.health_check(view, now, req.path, req.query)
    except health.QueryError as exc:
        return error_response(400, str(exc))
    return json_response(code, doc)


def head_health(view: StatusView, now: float, req: Request) -> Response:
    try:
        code, _ = health.health_check(view, now, req.path, req.query)
    except health.QueryError:
        return Response(400, status_only=True)
    return Response(code, status_only=True)


# (method, first path segment) -> handler. GET falls back to the health check,
# HEAD/OPTIONS always give the health-check code; other methods without an entry -> 501.
ROUTES: Dict[Tuple[str, str], Handler] = {
    ("GET", "patroni"): get_patroni,
    ("GET", "cluster"): get_cluster,
    ("GET", "history"): get_history,
    ("GET", "config"): get_config,
    ("GET", "failsafe"): get_failsafe,
    ("GET", "metrics"): get_metrics,
    ("GET", "liveness"): get_probe,
    ("GET", "readiness"): get_probe,
}
FALLBACKS: Dict[str, Handler] = {"GET": get_health, "HEAD": head_health, "OPTIONS": head_health}


def route(method: str, path: str, routes: Mapping[Tuple[str, str], Handler] = ROUTES) -> Optional[Handler]:
    segment = path.lstrip("/").split("/", 1)[0]
    if method in ("HEAD", "OPTIONS"):
        return FALLBACKS[method]
    return routes.get((method, segment)) or FALLBACKS.get(method)


def parse_listen(listen: str) -> Tuple[str, int, int]:
    """`host:port` -> (bind host, port, address family). Host '' or '*' = every interface."""
    host, sep, port_text = listen.rpartition(":")
    if not sep:
        raise ValueError(f"restapi.listen must be host:port, got {listen!r}")
    port = int(port_text)
    host = host.strip("[]")
    if host in ("", "*"):
        if socket.has_dualstack_ipv6():
            return "::", port, socket.AF_INET6
        return "0.0.0.0", port, socket.AF_INET
    if ":" in host:
        return host, port, socket.AF_INET6
    return host, port, socket.AF_INET


def _limits_of(restapi: Mapping[str, Any]) -> ConnectionLimits:
    limits, note = connection_limits(restapi, nofile_limit())
    if note:
        logger.warning("%s", note)
    return limits


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs: not gone and not a zombie (the daemon itself spawns
    the postmaster, and a killed one stays a zombie until the daemon reaps it).  A read
    of /proc/PID/stat, which never blocks; signal 0 where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True
    state = stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"x")


def with_live_postmaster(view: StatusView, alive: Callable[[int], bool] = pid_alive) -> StatusView:
    """The view with the postmaster's liveness of this very moment: the sampled SQL
    figures may be up to a second old, but a postmaster that has exited since is seen
    by the next request (state 'unknown' as 3.0.2 reports a server it cannot query,
    so /primary, /replica and /health answer 503).  One /proc read, never blocks."""
    server = view.server
    if server.postmaster_pid is None or server.state != "running" or alive(server.postmaster_pid):
        return view
    return replace(view, server=replace(server, query_ok=False, postmaster_pid=None))


class RestApiServer:
    """Serves the Patroni REST API from a StatusBoard in a background thread."""

    def __init__(
        self,
        listen: str,
        board: StatusBoard,
        clock: Callable[[], float] = time.monotonic,
        extra_headers: Optional[Mapping[str, str]] = None,
        request_timeout: float = REQUEST_TIMEOUT,
        tls: Optional[ssl.SSLContext] = None,
        access: Optional[AccessPolicy] = None,
        https_extra_headers: Optional[Mapping[str, str]] = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        unsafe_workers: int = UNSAFE_WORKERS,
        max_connections_per_address: int = DEFAULT_MAX_PER_ADDRESS,
        backlog: Optional[int] = None,
    ) -> None:
        self.listen = listen
        self.backlog = backlog
        self.board = board
        self.clock = clock
        self.extra_headers: Dict[str, str] = dict(extra_headers or {})
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_connections_per_address = max_connections_per_address
        self.unsafe_workers = unsafe_workers
        self.ssl_context = tls
        self.access = access or AccessPolicy()
        # Headers added to every JSON/text/metrics response (not to status-line-only or error pages).
        self.response_headers: Dict[str, str] = dict(self.extra_headers)
        if tls is not None:
            self.response_headers.update(https_extra_headers or {})
        self.routes: Dict[Tuple[str, str], Handler] = dict(ROUTES)
        self.unsafe: Set[Tuple[str, str]] = set()
        self._listener: Optional[Listener] = None
        self._address: Optional[Tuple[str, int]] = None
        self._warned: Optional[str] = None  # the open-endpoints warning last logged

    @classmethod
    def from_config(
        cls, restapi: Mapping[str, Any], board: StatusBoard, clock: Callable[[], float] = time.monotonic
    ) -> RestApiServer:
        """Built from the `restapi` section: listen, TLS, access control, extra headers,
        connection caps (kept under the open files limit)."""
        limits = _limits_of(restapi)
        return cls(
            str(restapi["listen"]),
            board,
            clock,
            extra_headers=restapi.get("http_extra_headers"),
            tls=ssl_context(restapi),
            access=AccessPolicy.from_config(restapi),
            https_extra_headers=restapi.get("https_extra_headers"),
            max_connections=limits.max_connections,
            max_connections_per_address=limits.per_address,
            backlog=int(restapi["request_queue_size"]) if restapi.get("request_queue_size") is not None else None,
        )

    def reload(self, restapi: Mapping[str, Any]) -> bool:
        """Apply a changed `restapi` section (SIGHUP / POST /reload). Headers, access
        rules and the TLS context (certificate files re-read) apply to new connections
        without unbinding the port; a changed `listen` restarts the listener. True when
        the listener was restarted."""
        tls = ssl_context(restapi)  # raises before anything changes if the files are bad
        self.extra_headers = dict(restapi.get("http_extra_headers") or {})
        headers = dict(self.extra_headers)
        if tls is not None:
            headers.update(restapi.get("https_extra_headers") or {})
        self.response_headers = headers
        self.access = AccessPolicy.from_config(restapi, self.access.resolve)  # names resolved again
        self.ssl_context = tls
        limits = _limits_of(restapi)
        self.max_connections, self.max_connections_per_address = limits.max_connections, limits.per_address
        listen = str(restapi["listen"])
        if listen == self.listen:
            if self._listener is not None:
                self._warn_if_open()
            return False
        running = self._listener is not None
        self.stop()
        self.listen = listen
        if running:
            self.start()
        return True

    def add_route(self, method: str, segment: str, handler: Handler, unsafe: bool = False) -> None:
        """Register a handler; `unsafe` ones pass the access checks of spec 1.2 first and
        run on a worker thread (they may wait on the DCS)."""
        self.routes[(method, segment)] = handler
        if unsafe:
            self.unsafe.add((method, segment))
        else:
            self.unsafe.discard((method, segment))

    def respond(self, req: Request) -> Response:
        handler = route(req.method, req.path, self.routes)
        if handler is None:  # unsafe methods without a handler, unknown methods
            return error_response(501, f"Unsupported method ({req.method!r})")
        view = with_live_postmaster(self.board.get())
        if self.unsafe and (req.method, req.path.lstrip("/").split("/", 1)[0]) in self.unsafe:
            refusal = self.access.check(req.client[0], req.headers.get("authorization"), req.client_cert, view.cluster)
            if refusal is not None:
                return text_response(refusal.code, refusal.body, refusal.headers)
        return handler(view, self.clock(), req)

    def _wait_for_sample(self, notify: Callable[[], None]) -> bool:
        """Whether a request waits (briefly) for a fresh server sample (runtime/status.py)."""
        return self.board.wait_for_sample(self.clock(), notify)

    def start(self) -> None:
        """Bind (errors raise here) and serve from a background thread."""
        if self._listener is not None:
            return
        sock = listening_socket(*parse_listen(self.listen), backlog=self.backlog)
        host, port = sock.getsockname()[:2]
        self._address = (str(host), int(port))
        self._listener = Listener(self, sock, self.respond, self._wait_for_sample)
        self._listener.thread.start()
        limits = self.connection_limits
        logger.info("REST API: at most %d connections, %d per client address (open files limit %d)",
                    limits.max_connections, limits.per_address, nofile_limit())
        self._warn_if_open()

    def _warn_if_open(self) -> None:
        """Log (once per change) that the unsafe endpoints need no password."""
        warning = open_endpoints_warning(self.access, self.unsafe, self.listen)
        if warning is not None and warning != self._warned:
            logger.warning("%s", warning)
        self._warned = warning

    def stop(self) -> None:
        """Close the listening socket and every connection, join the thread."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    @property
    def connection_limits(self) -> ConnectionLimits:
        """The caps in force (read by the listener at each accept, so reloads apply)."""
        return ConnectionLimits(self.max_connections, min(self.max_connections_per_address, self.max_connections))

    @property
    def connection_count(self) -> int:
        """Open client connections (TLS handshakes in progress included); 0 when stopped."""
        listener = self._listener
        return 0 if listener is None else listener.open_count()

    @property
    def address(self) -> Tuple[str, int]:
        """(host, port) actually bound (useful with port 0)."""
        if self._listener is None or self._address is None:
            raise RuntimeError("RestApiServer is not started")
        return self._address
