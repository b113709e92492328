"""HTTP/1.0 on the wire for the REST API: reading one request with a hard deadline and
size limits, and writing one response. No knowledge of endpoints here."""
from __future__ import annotations

import http.server
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from html import escape
from http import HTTPStatus
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

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
    client_cert: bool = False  # TLS client presented a certificate


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes = b""
    content_type: Optional[str] = None
    status_only: bool = False  # "HTTP/1.0 <code> <reason>\r\n\r\n", no headers
    error_page: bool = False  # stdlib-style HTML error page, no extra headers
    headers: Tuple[Tuple[str, str], ...] = field(default_factory=tuple)


def text_response(code: int, text: str, headers: Tuple[Tuple[str, str], ...] = ()) -> Response:
    """Plain messages ("reload scheduled", "Access is denied"): labelled text/html like 3.0.2."""
    return Response(code, text.encode("utf-8"), "text/html", headers=headers)


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


