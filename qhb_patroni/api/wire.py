"""HTTP on the wire for the REST API: an incremental request parser (bytes in, requests
out, size limits enforced as the bytes arrive) and the response bytes of Patroni 3.0.2
(status line "HTTP/1.0 ...", the stdlib handler's headers). No sockets and no knowledge
of endpoints here; timing (deadlines) belongs to the server.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

REQUEST_TIMEOUT = 5.0  # seconds to receive a whole request (head and body) from its first byte
MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 16384  # all header lines together
MAX_HEADERS = 100
MAX_BODY = 1024 * 1024
SERVER_VERSION = "BaseHTTP/0.6 Python/" + sys.version.split()[0]  # as the stdlib handler 3.0.2 uses
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEAD_LIMIT = MAX_REQUEST_LINE + MAX_HEADER_BYTES + 4


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


def error_response(code: int, message: Optional[str] = None) -> Response:
    """The page `BaseHTTPRequestHandler.send_error` writes: the stdlib's own page, so errors
    look like those of 3.0.2.  http.server and html are imported on the first error only
    (together about 0.6 MB the daemon otherwise never needs)."""
    import http.server
    from html import escape

    status = HTTPStatus(code)
    page = http.server.BaseHTTPRequestHandler.error_message_format % {
        "code": code,
        "message": escape(message or status.phrase, quote=False),
        "explain": escape(status.description, quote=False),
    }
    return Response(code, page.encode("utf-8", "replace"), "text/html;charset=utf-8", error_page=True)


# ---- reading requests -------------------------------------------------------------


def parse_target(target: str) -> Tuple[str, Dict[str, str]]:
    """(percent-decoded path, first value of each query parameter); RequestError(400)
    for a target urlsplit refuses (e.g. '//[x?a': an unclosed IPv6 literal)."""
    if "?" not in target and "%" not in target and "#" not in target and target.startswith("/"):
        return target, {}  # the common case of health checks, without urlsplit
    try:
        parts = urlsplit(target)
    except ValueError as exc:
        raise RequestError(400, f"Bad request target ({exc})") from None
    query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return unquote(parts.path) or "/", query


# RFC 9110 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: a field value has no CR, LF or NUL (nor other controls but tab).
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")  # digits only: no sign, no "_", no list
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
# Fields a request may carry once: a second one is a 400 (RFC 9112 3.2 and 6.3), never
# "the last wins" (a second Content-Length would make the rest of the body a new request).
SINGLE_FIELDS = frozenset({"content-length", "host", "authorization", "transfer-encoding"})


def _parse_fields(lines: List[bytes]) -> Dict[str, str]:
    """Header lines -> {lower-cased name: value}, strictly (RFC 9112 5)."""
    headers: Dict[str, str] = {}
    for raw in lines:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        name, sep, value = line.decode("iso-8859-1").partition(":")
        if not sep or not name:
            raise RequestError(400, "Bad header line")
        if not _TOKEN.fullmatch(name):  # whitespace before the colon, obs-fold, junk
            raise RequestError(400, "Bad header name")
        value = value.strip(" \t")
        if _BAD_VALUE.search(value):
            raise RequestError(400, "Bad header value")
        key = name.lower()
        if key in headers:
            if key in SINGLE_FIELDS:
                raise RequestError(400, f"Duplicate {name} header")
            headers[key] = f"{headers[key]}, {value}"  # RFC 9110 5.3: a list field, combined
        else:
            headers[key] = value
    return headers


def content_length(value: str) -> int:
    """The Content-Length value as a number of bytes; RequestError(400) unless it is
    plain decimal digits (no sign, no underscore, no list of values)."""
    if not _CONTENT_LENGTH.fullmatch(value):
        raise RequestError(400, "Bad Content-Length")
    return int(value)


def _parse_head(head: bytes) -> Tuple[str, str, str, Dict[str, str]]:
    """(method, target, version or '', headers) of a request head without its blank line."""
    lines = head.split(b"\n")
    request_line = lines[0].rstrip(b"\r")
    if len(request_line) > MAX_REQUEST_LINE:
        raise RequestError(414)
    words = request_line.decode("iso-8859-1").split()
    if len(words) not in (2, 3):
        raise RequestError(400, f"Bad request syntax ({request_line.decode('iso-8859-1')!r})")
    version = words[2] if len(words) == 3 else ""
    if version and not _VERSION.fullmatch(version):
        raise RequestError(400, f"Bad request version ({version!r})")
    if not _TOKEN.fullmatch(words[0]):
        raise RequestError(400, f"Bad request method ({words[0]!r})")
    if len(lines) - 1 > MAX_HEADERS:
        raise RequestError(431, "Too many headers")
    if len(head) - len(lines[0]) > MAX_HEADER_BYTES:
        raise RequestError(431, "Request header fields too large")
    return words[0], words[1], version, _parse_fields(lines[1:])


def wants_keep_alive(version: str, headers: Mapping[str, str]) -> bool:
    """HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"."""
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.1":
        return "close" not in connection
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return False


class RequestParser:
    """Requests out of the bytes of one connection, in order (pipelining).

    `feed()` the bytes as they arrive, then call `next()` until it returns None (more
    bytes needed). Raises RequestError on a request that breaks a limit or the syntax;
    the connection must then be answered (if `code`) and closed.
    """

    def __init__(self, client: Tuple[str, int] = ("", 0), client_cert: bool = False) -> None:
        self.client = client
        self.client_cert = client_cert
        self._buf = b""
        self._pos = 0  # start of the unparsed bytes in _buf
        self._head: Optional[Tuple[str, str, str, Dict[str, str], int, bool]] = None  # waiting for a body

    def feed(self, data: bytes) -> None:
        if self._pos:
            self._buf = self._buf[self._pos:] + data
            self._pos = 0
        elif self._buf:
            self._buf += data
        else:
            self._buf = data

    @property
    def pending(self) -> bool:
        """Part of a request (other than blank lines between requests) is buffered."""
        return self._head is not None or bool(self._buf[self._pos:].strip(b"\r\n"))

    def next(self) -> Optional[Tuple[Request, bool]]:
        """(request, keep the connection open after answering it) or None."""
        buf, pos = self._buf, self._pos
        if self._head is None:
            while buf.startswith(b"\r\n", pos) or buf.startswith(b"\n", pos):  # blank lines between requests
                pos += 1 if buf[pos] == 10 else 2
            self._pos = pos
            end = buf.find(b"\r\n\r\n", pos)
            lf = buf.find(b"\n\n", pos, len(buf) if end < 0 else end)
            if lf >= 0:
                head, rest = buf[pos:lf], lf + 2
            elif end >= 0:
                head, rest = buf[pos:end], end + 4
            else:
                eol = buf.find(b"\n", pos)
                if (eol if eol >= 0 else len(buf)) - pos > MAX_REQUEST_LINE:
                    raise RequestError(414)
                if len(buf) - pos > _HEAD_LIMIT:
                    raise RequestError(431, "Request header fields too large")
                return None
            if len(head) > _HEAD_LIMIT:
                eol = head.find(b"\n")
                if eol < 0 or eol > MAX_REQUEST_LINE:
                    raise RequestError(414)
                raise RequestError(431, "Request header fields too large")
            method, target, version, headers = _parse_head(head)
            keep_alive = wants_keep_alive(version, headers)
            length = 0
            if "content-length" in headers:
                if "transfer-encoding" in headers:  # RFC 9112 6.1: a smuggling attempt
                    raise RequestError(400, "Both Content-Length and Transfer-Encoding")
                declared = content_length(headers["content-length"])
                if method in UNSAFE_METHODS:
                    if declared > MAX_BODY:
                        raise RequestError(413)
                    length = declared
                else:
                    keep_alive = False  # a body nobody reads: close after the answer, as 3.0.2 does
            if "transfer-encoding" in headers:
                keep_alive = False  # chunked bodies are not read: the connection cannot be reused
            self._head = (method, target, version, headers, length, keep_alive)
            self._pos = pos = rest
        method, target, version, headers, length, keep_alive = self._head
        if len(buf) - pos < length:
            return None
        body = buf[pos:pos + length] if length else b""
        self._head = None
        self._pos = pos + length
        if self._pos >= len(buf):
            self._buf, self._pos = b"", 0
        path, query = parse_target(target)
        return Request(method, path, query, headers, body, self.client, self.client_cert), keep_alive

    def incomplete(self) -> RequestError:
        """What to answer when the client closed its side in the middle of a request."""
        if self._head is not None:
            return RequestError(400, "Incomplete body")
        return RequestError(400, "Incomplete request")


# ---- writing responses --------------------------------------------------------------


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _header_bytes(headers: Mapping[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


class Renderer:
    """Response bytes with the constant parts encoded once and the Date header computed
    at most once per second. Not thread-safe: one per event loop (or per caller)."""

    def __init__(self, extra_headers: Optional[Mapping[str, str]] = None) -> None:
        self._extra_source: Optional[Mapping[str, str]] = None
        self._extra = b""
        self.set_extra_headers(extra_headers or {})
        self._status: Dict[int, bytes] = {}
        self._server = f"Server: {SERVER_VERSION}\r\n".encode("latin-1")
        self._date_second = -1
        self._date = b""

    def set_extra_headers(self, headers: Mapping[str, str]) -> None:
        """Headers of every JSON/text/metrics response (never of status-only or error pages)."""
        if headers is not self._extra_source:
            self._extra_source = headers
            self._extra = _header_bytes(headers)

    def _status_line(self, code: int) -> bytes:
        line = self._status.get(code)
        if line is None:
            line = self._status[code] = f"HTTP/1.0 {code} {_reason(code)}\r\n".encode("latin-1")
        return line

    def _date_header(self) -> bytes:
        now = time.time()
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date = f"Date: {formatdate(now, usegmt=True)}\r\n".encode("latin-1")
        return self._date

    def render(self, resp: Response, keep_alive: bool = False) -> bytes:
        """The bytes of `resp`. `keep_alive` adds "Connection: keep-alive" (ignored for the
        status-only responses and error pages, after which the connection is always closed)."""
        status = self._status_line(resp.code)
        if resp.status_only:
            return status + b"\r\n"
        parts: List[bytes] = [status, self._server, self._date_header()]
        if resp.error_page:
            parts.append(b"Connection: close\r\n")
        elif keep_alive:
            parts.append(b"Connection: keep-alive\r\n")
        if resp.content_type:
            parts.append(b"Content-Type: " + resp.content_type.encode("latin-1") + b"\r\n")
        parts.append(b"Content-Length: %d\r\n" % len(resp.body))
        for name, value in resp.headers:
            parts.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not resp.error_page:
            parts.append(self._extra)
        parts.append(b"\r\n")
        parts.append(resp.body)
        return b"".join(parts)


def keeps_connection(resp: Response) -> bool:
    """Whether a connection may stay open after `resp` (it says where it ends)."""
    return not resp.status_only and not resp.error_page


def render(resp: Response, extra_headers: Mapping[str, str], keep_alive: bool = False) -> bytes:
    """One-off rendering (tests, tools); the server keeps a Renderer."""
    return Renderer(extra_headers).render(resp, keep_alive)
