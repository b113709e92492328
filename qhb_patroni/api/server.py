"""The REST API listener: a small HTTP/1.0 server over a thread-per-connection socketserver.

Handlers only read `board.get()` (an immutable StatusView); nothing here touches
the database or the DCS, so a slow database or DCS can never make a request hang.
Every connection gets a hard deadline for its request head (and body), size
limits on the request line and headers, and is closed after one response.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

from ..runtime.status import StatusBoard, StatusView
from . import health, metrics, views
from .security import AccessPolicy, ssl_context
from .wire import (
    REQUEST_TIMEOUT,
    Request,
    RequestError,
    Response,
    error_response,
    json_response,
    read_request,
    render,
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
    code, _ = health.probe(view, now, req.path, req.query)
    return Response(code, status_only=True)


def get_health(view: StatusView, now: float, req: Request) -> Response:
    """Fallback for GET of any path without its own handler."""
    code, doc = health.health_check(view, now, req.path, req.query)
    return json_response(code, doc)


def head_health(view: StatusView, now: float, req: Request) -> Response:
    code, _ = health.health_check(view, now, req.path, req.query)
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


# ---- the server -------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def setup(self) -> None:
        sock: socket.socket = self.request
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 3)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        except OSError:
            pass

    def handle(self) -> None:
        api = self.server.api
        started = time.monotonic()
        client_cert = False
        if api.ssl_context is not None:
            # Handshake here, in the connection's own thread, bounded by the request timeout.
            try:
                tls = api.ssl_context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
            except (OSError, ValueError):
                return
            self.request = tls  # closed in finish()
            try:
                tls.settimeout(api.request_timeout)
                tls.do_handshake()
            except (OSError, ValueError):
                return
            client_cert = bool(tls.getpeercert())
        sock: socket.socket = self.request
        try:
            req = read_request(sock, self.client_address[:2], api.request_timeout)
        except RequestError as e:
            if e.code is not None:
                self._send(render(error_response(e.code, e.message or None), {}))
            return
        if client_cert:
            req = replace(req, client_cert=True)
        try:
            resp = api.respond(req)
        except Exception:  # a handler bug must still answer, and never kill the listener
            logger.exception("API: error while handling %s %s", req.method, req.path)
            resp = error_response(500)
        self._send(render(resp, api.response_headers))
        logger.debug(
            "API: %s %s %d %.1f ms", req.method, req.path, resp.code, (time.monotonic() - started) * 1000
        )

    def finish(self) -> None:
        # socketserver closes the socket it accepted; a TLS wrapper took over its
        # descriptor, so close the wrapper ourselves.
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.close()
            except OSError:
                pass

    def _send(self, data: bytes) -> None:
        sock: socket.socket = self.request
        try:
            sock.settimeout(self.server.api.request_timeout)
            sock.sendall(data)
        except OSError:
            pass


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: Tuple[str, int], family: int, api: RestApiServer) -> None:
        self.address_family = family
        self.api = api
        super().__init__(address, _Handler, bind_and_activate=False)
        if family == socket.AF_INET6:
            try:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.exception("API: error while serving %s", client_address)


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
    ) -> None:
        self.listen = listen
        self.board = board
        self.clock = clock
        self.extra_headers: Dict[str, str] = dict(extra_headers or {})
        self.request_timeout = request_timeout
        self.ssl_context = tls
        self.access = access or AccessPolicy()
        # Headers added to every JSON/text/metrics response (not to status-line-only or error pages).
        self.response_headers: Dict[str, str] = dict(self.extra_headers)
        if tls is not None:
            self.response_headers.update(https_extra_headers or {})
        self.routes: Dict[Tuple[str, str], Handler] = dict(ROUTES)
        self.unsafe: Set[Tuple[str, str]] = set()
        self._server: Optional[_TCPServer] = None
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def from_config(
        cls, restapi: Mapping[str, Any], board: StatusBoard, clock: Callable[[], float] = time.monotonic
    ) -> RestApiServer:
        """Built from the `restapi` section: listen, TLS, access control, extra headers."""
        return cls(
            str(restapi["listen"]),
            board,
            clock,
            extra_headers=restapi.get("http_extra_headers"),
            tls=ssl_context(restapi),
            access=AccessPolicy.from_config(restapi),
            https_extra_headers=restapi.get("https_extra_headers"),
        )

    def reload(self, restapi: Mapping[str, Any]) -> bool:
        """Apply a changed `restapi` section (SIGHUP / POST /reload). Headers, access
        rules and the TLS context (certificate files re-read) apply to new connections;
        a changed `listen` restarts the listener. True when the listener was restarted."""
        tls = ssl_context(restapi)  # raises before anything changes if the files are bad
        self.extra_headers = dict(restapi.get("http_extra_headers") or {})
        headers = dict(self.extra_headers)
        if tls is not None:
            headers.update(restapi.get("https_extra_headers") or {})
        self.response_headers = headers
        self.access = AccessPolicy.from_config(restapi)
        self.ssl_context = tls
        listen = str(restapi["listen"])
        if listen == self.listen:
            return False
        running = self._server is not None
        self.stop()
        self.listen = listen
        if running:
            self.start()
        return True

    def add_route(self, method: str, segment: str, handler: Handler, unsafe: bool = False) -> None:
        """Register a handler; `unsafe` ones pass the access checks of spec 1.2 first."""
        self.routes[(method, segment)] = handler
        if unsafe:
            self.unsafe.add((method, segment))
        else:
            self.unsafe.discard((method, segment))

    def respond(self, req: Request) -> Response:
        handler = route(req.method, req.path, self.routes)
        if handler is None:  # unsafe methods without a handler, unknown methods
            return error_response(501, f"Unsupported method ({req.method!r})")
        view = self.board.get()
        if (req.method, req.path.lstrip("/").split("/", 1)[0]) in self.unsafe:
            refusal = self.access.check(req.client[0], req.headers.get("authorization"), req.client_cert, view.cluster)
            if refusal is not None:
                return text_response(refusal.code, refusal.body, refusal.headers)
        return handler(view, self.clock(), req)

    def start(self) -> None:
        if self._server is not None:
            return
        host, port, family = parse_listen(self.listen)
        self._server = _TCPServer((host, port), family, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="restapi", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def address(self) -> Tuple[str, int]:
        """(host, port) actually bound (useful with port 0)."""
        if self._server is None:
            raise RuntimeError("RestApiServer is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)
