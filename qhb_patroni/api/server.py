"""The REST API listener: a small HTTP/1.0 server over a thread-per-connection socketserver.

Handlers only read `board.get()` (an immutable StatusView); nothing here touches
the database or the DCS, so a slow database or DCS can never make a request hang.
Every connection gets a hard deadline for its request head (and body), size
limits on the request line and headers, and is closed after one response.
"""
from __future__ import annotations

import http.server
import json
import logging
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from html import escape
from http import HTTPStatus
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..runtime.status import StatusBoard, StatusView
from . import health, metrics, views

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 5.0  # seconds to receive the whole request head (and body)
MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 16384  # all header lines together
MAX_HEADERS = 100
MAX_BODY = 1024 * 1024
SERVER_VERSION = "BaseHTTP/0.6 Python/" + sys.version.split()[0]  # as the stdlib handler 3.0.2 uses
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestError(Exception):
    """The request could not be read; answered with `code` (or just closed if None)."""

    def __init__(self, code: Optional[int], message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string, percent-decoded
    query: Dict[str, str]  # first value of every parameter
    headers: Mapping[str, str]  # lower-cased names
    body: bytes = b""
    client: Tuple[str, int] = ("", 0)


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes = b""
    content_type: Optional[str] = None
    status_only: bool = False  # "HTTP/1.0 <code> <reason>\r\n\r\n", no headers
    error_page: bool = False  # stdlib-style HTML error page, no extra headers
    headers: Tuple[Tuple[str, str], ...] = field(default_factory=tuple)


def json_response(code: int, doc: Any) -> Response:
    return Response(code, json.dumps(doc, default=str).encode("utf-8"), "application/json")


# The stdlib's own page, so errors look like those of 3.0.2 (BaseHTTPRequestHandler.send_error).
_ERROR_PAGE: str = http.server.BaseHTTPRequestHandler.error_message_format


def error_response(code: int, message: Optional[str] = None) -> Response:
    """The page `BaseHTTPRequestHandler.send_error` writes."""
    status = HTTPStatus(code)
    page = _ERROR_PAGE % {
        "code": code,
        "message": escape(message or status.phrase, quote=False),
        "explain": escape(status.description, quote=False),
    }
    return Response(code, page.encode("utf-8", "replace"), "text/html;charset=utf-8", error_page=True)


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


# ---- wire format ------------------------------------------------------------------


def parse_target(target: str) -> Tuple[str, Dict[str, str]]:
    parts = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return unquote(parts.path) or "/", query


def _read_head(sock: socket.socket, deadline: float) -> Tuple[bytes, bytes]:
    """Bytes up to the blank line ending the head, and whatever came after it."""
    buf = b""
    limit = MAX_REQUEST_LINE + MAX_HEADER_BYTES + 4
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0 and b"\n\n" in buf:
            end = buf.find(b"\n\n")
            return buf[:end], buf[end + 2:]
        if end >= 0:
            return buf[:end], buf[end + 4:]
        first_eol = buf.find(b"\n")
        if first_eol < 0 and len(buf) > MAX_REQUEST_LINE:
            raise RequestError(414)
        if len(buf) > limit:
            raise RequestError(431, "Request header fields too large")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RequestError(408 if buf else None)
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            raise RequestError(408 if buf else None) from None
        except OSError:
            raise RequestError(None) from None
        if not chunk:
            if buf.strip():
                raise RequestError(400, "Incomplete request")
            raise RequestError(None)
        buf += chunk


def read_request(sock: socket.socket, client: Tuple[str, int], timeout: float = REQUEST_TIMEOUT) -> Request:
    deadline = time.monotonic() + timeout
    head, rest = _read_head(sock, deadline)
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    request_line = lines[0]
    if len(request_line) > MAX_REQUEST_LINE:
        raise RequestError(414)
    words = request_line.decode("iso-8859-1").split()
    if len(words) not in (2, 3):
        raise RequestError(400, f"Bad request syntax ({request_line.decode('iso-8859-1')!r})")
    method, target = words[0], words[1]
    if len(words) == 3 and not words[2].startswith("HTTP/"):
        raise RequestError(400, f"Bad request version ({words[2]!r})")
    header_lines = lines[1:]
    if len(header_lines) > MAX_HEADERS:
        raise RequestError(431, "Too many headers")
    if sum(len(h) + 2 for h in header_lines) > MAX_HEADER_BYTES:
        raise RequestError(431, "Request header fields too large")
    headers: Dict[str, str] = {}
    for raw in header_lines:
        name, sep, value = raw.decode("iso-8859-1").partition(":")
        if not sep or not name.strip():
            raise RequestError(400, "Bad header line")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if method in UNSAFE_METHODS and "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise RequestError(400, "Bad Content-Length") from None
        if length < 0:
            raise RequestError(400, "Bad Content-Length")
        if length > MAX_BODY:
            raise RequestError(413)
        body = rest[:length]
        while len(body) < length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestError(408)
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(min(65536, length - len(body)))
            except socket.timeout:
                raise RequestError(408) from None
            except OSError:
                raise RequestError(None) from None
            if not chunk:
                raise RequestError(400, "Incomplete body")
            body += chunk
    path, query = parse_target(target)
    return Request(method, path, query, headers, body, client)


def render(resp: Response, extra_headers: Mapping[str, str]) -> bytes:
    try:
        reason = HTTPStatus(resp.code).phrase
    except ValueError:
        reason = ""
    status_line = f"HTTP/1.0 {resp.code} {reason}\r\n"
    if resp.status_only:
        return (status_line + "\r\n").encode("latin-1")
    lines = [status_line, f"Server: {SERVER_VERSION}\r\n", f"Date: {formatdate(usegmt=True)}\r\n"]
    if resp.error_page:
        lines.append("Connection: close\r\n")
    if resp.content_type:
        lines.append(f"Content-Type: {resp.content_type}\r\n")
    lines.append(f"Content-Length: {len(resp.body)}\r\n")
    for name, value in resp.headers:
        lines.append(f"{name}: {value}\r\n")
    if not resp.error_page:
        for name, value in extra_headers.items():
            lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + resp.body


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
        sock: socket.socket = self.request
        started = time.monotonic()
        try:
            req = read_request(sock, self.client_address[:2], api.request_timeout)
        except RequestError as e:
            if e.code is not None:
                self._send(render(error_response(e.code, e.message or None), {}))
            return
        resp = api.respond(req)
        self._send(render(resp, api.extra_headers))
        logger.debug(
            "API: %s %s %d %.1f ms", req.method, req.path, resp.code, (time.monotonic() - started) * 1000
        )

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
    ) -> None:
        self.listen = listen
        self.board = board
        self.clock = clock
        self.extra_headers: Dict[str, str] = dict(extra_headers or {})
        self.request_timeout = request_timeout
        self.routes: Dict[Tuple[str, str], Handler] = dict(ROUTES)
        self._server: Optional[_TCPServer] = None
        self._thread: Optional[threading.Thread] = None

    def respond(self, req: Request) -> Response:
        handler = route(req.method, req.path, self.routes)
        if handler is None:  # unsafe methods without a handler, unknown methods
            return error_response(501, f"Unsupported method ({req.method!r})")
        return handler(self.board.get(), self.clock(), req)

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
