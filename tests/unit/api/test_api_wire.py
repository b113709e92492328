"""The incremental request parser and the response bytes (no sockets)."""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

import pytest

from qhb_patroni.api.wire import (
    MAX_REQUEST_LINE,
    SERVER_VERSION,
    Renderer,
    Request,
    RequestError,
    RequestParser,
    Response,
    error_response,
    json_response,
    render,
    text_response,
    wants_keep_alive,
)


def parse_all(parser: RequestParser) -> List[Tuple[Request, bool]]:
    out = []
    while True:
        item = parser.next()
        if item is None:
            return out
        out.append(item)


def test_request_fed_byte_by_byte() -> None:
    raw = (b"POST /switchover?x=1&x=2 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n"
           b"Authorization: Basic eA==\r\n\r\n{\"a\":1}")
    parser = RequestParser(("10.0.0.1", 1234), client_cert=True)
    got: List[Tuple[Request, bool]] = []
    for i in range(len(raw)):
        parser.feed(raw[i:i + 1])
        got += parse_all(parser)
        assert parser.pending == (not got)
    assert len(got) == 1
    req, keep = got[0]
    assert req == Request("POST", "/switchover", {"x": "1"},
                          {"host": "h", "content-length": "7", "authorization": "Basic eA=="},
                          b'{"a":1}', ("10.0.0.1", 1234), True)  # fmt: skip
    assert keep is True


def test_pipelined_requests_and_blank_lines() -> None:
    parser = RequestParser()
    parser.feed(b"GET /a HTTP/1.1\r\n\r\n\r\nHEAD /b HTTP/1.0\n\nPUT /c HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"
                b"GET /d HTTP/1.1\r\n")  # fmt: skip
    got = parse_all(parser)
    assert [(r.method, r.path, r.body, k) for r, k in got] == [
        ("GET", "/a", b"", True), ("HEAD", "/b", b"", False), ("PUT", "/c", b"ok", True)]
    assert parser.pending
    parser.feed(b"\r\n")
    assert [(r.method, r.path) for r, _ in parse_all(parser)] == [("GET", "/d")]
    assert not parser.pending


@pytest.mark.parametrize(
    "version,connection,expected",
    [("HTTP/1.1", None, True), ("HTTP/1.1", "close", False), ("HTTP/1.1", "Keep-Alive", True),
     ("HTTP/1.0", None, False), ("HTTP/1.0", "keep-alive", True), ("", "keep-alive", False)],
)  # fmt: skip
def test_keep_alive_rules(version: str, connection: Optional[str], expected: bool) -> None:
    assert wants_keep_alive(version, {"connection": connection} if connection else {}) is expected


@pytest.mark.parametrize(
    "raw",
    [b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",  # a GET body is not read
     b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"],
)  # fmt: skip
def test_bodies_that_are_not_read_close_the_connection(raw: bytes) -> None:
    parser = RequestParser()
    parser.feed(raw)
    req, keep = parse_all(parser)[0]
    assert keep is False and req.body == b""


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"GET /" + b"a" * (MAX_REQUEST_LINE + 10), 414),  # no end of line yet: refused early
        (b"GET / HTTP/1.1\r\nX: " + b"y" * 30000, 431),  # no end of head yet
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413),
        (b"GET / SPDY/3\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n: no name\r\n\r\n", 400),
    ],
)
def test_limits_and_syntax(raw: bytes, code: int) -> None:
    parser = RequestParser()
    parser.feed(raw)
    with pytest.raises(RequestError) as err:
        parser.next()
    assert err.value.code == code


def test_incomplete_request_errors() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
    assert parser.next() is None and parser.pending
    assert parser.incomplete().code == 400 and parser.incomplete().message == "Incomplete body"
    parser = RequestParser()
    parser.feed(b"GET / HT")
    assert parser.incomplete().message == "Incomplete request"


DATE = r"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n"


def test_rendered_bytes() -> None:
    renderer = Renderer({"X-Frame-Options": "SAMEORIGIN"})
    status_only = renderer.render(Response(503, status_only=True), keep_alive=True)
    assert status_only == b"HTTP/1.0 503 Service Unavailable\r\n\r\n"
    text = renderer.render(json_response(200, {"a": 1}), keep_alive=True).decode()
    assert re.fullmatch(
        r"HTTP/1\.0 200 OK\r\nServer: " + re.escape(SERVER_VERSION) + r"\r\n" + DATE
        + r"Connection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"
        r"X-Frame-Options: SAMEORIGIN\r\n\r\n\{\"a\": 1\}", text)
    closing = renderer.render(text_response(401, "no", (("WWW-Authenticate", 'Basic realm="Patroni"'),))).decode()
    assert "Connection" not in closing
    assert closing.endswith('Content-Length: 2\r\nWWW-Authenticate: Basic realm="Patroni"\r\n'
                            "X-Frame-Options: SAMEORIGIN\r\n\r\nno")
    page = renderer.render(error_response(404), keep_alive=True).decode()
    assert "\r\nConnection: close\r\n" in page and "keep-alive" not in page and "X-Frame" not in page
    one_off = render(json_response(200, {}), {"X-Frame-Options": "SAMEORIGIN"}, keep_alive=True).decode()
    assert re.sub(DATE, "", one_off) == re.sub(DATE, "", renderer.render(json_response(200, {}), True).decode())


def test_renderer_follows_replaced_extra_headers() -> None:
    renderer = Renderer({"X-A": "1"})
    assert b"X-A: 1\r\n" in renderer.render(json_response(200, {}))
    renderer.set_extra_headers({"X-B": "2"})
    answer = renderer.render(json_response(200, {}))
    assert b"X-B: 2\r\n" in answer and b"X-A" not in answer


# ---- RFC 9112 strictness (issue 12, item 10) ------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\nab",  # a sign
        b"POST / HTTP/1.1\r\nContent-Length: 1_0\r\n\r\n0123456789",  # int() would take it
        b"POST / HTTP/1.1\r\nContent-Length: 0x2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nab",  # a list, even of equal values
        b"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",  # beyond int()'s digits
        b"POST / HTTP/1.1\r\nContent-Length : 2\r\n\r\nab",  # whitespace before the colon
        b"POST / HTTP/1.1\r\nContent-Length\t: 2\r\n\r\nab",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",  # duplicate
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\nab",  # conflicting
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nab",
        b"GET / HTTP/1.1\r\nContent-Length: +0\r\n\r\n",  # checked for every method
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nAuthorization: Basic eA==\r\nAuthorization: Basic eQ==\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\r\nX(y): a\r\n\r\n",  # not a token
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",  # bare CR in a value
        b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",  # NUL in a value
        b"GET / HTTP/1.x\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
    ],
)
def test_ambiguous_requests_are_refused_with_400(raw: bytes) -> None:
    parser = RequestParser()
    parser.feed(raw)
    with pytest.raises(RequestError) as err:
        parser.next()
    assert err.value.code == 400


def test_second_content_length_never_turns_the_body_into_a_request() -> None:
    """The smuggling case: 'last wins' would read 'GET /smuggled' as a second request."""
    parser = RequestParser()
    parser.feed(b"POST /x HTTP/1.1\r\nContent-Length: 30\r\nContent-Length: 0\r\n\r\n"
                b"GET /smuggled HTTP/1.1\r\n\r\n")
    with pytest.raises(RequestError):
        parser.next()


def test_valid_fields_still_parse() -> None:
    parser = RequestParser()
    parser.feed(b"POST /x HTTP/1.1\r\nContent-Length:2\r\nX-A: 1\r\nx-a: 2\r\nUser-Agent:\t t \r\n\r\nok")
    req, keep = parse_all(parser)[0]
    assert req.body == b"ok" and keep is True
    assert req.headers["x-a"] == "1, 2"  # a repeated list field is combined, not overwritten
    assert req.headers["user-agent"] == "t" and req.headers["content-length"] == "2"
