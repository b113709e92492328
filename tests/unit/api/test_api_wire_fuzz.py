"""Property-based fuzzing of the REST API's request parser (issue 12): whatever bytes
arrive, in whatever pieces, `RequestParser` raises nothing but `RequestError` (the
documented error: answered with its code, then the connection is closed), and
well-formed requests come out exactly as they were written, alone or pipelined.

Budget: a small one in the test command (profile `qhb-fuzz-small`); a larger one by
hand with QHB_FUZZ_EXAMPLES, e.g.
    QHB_FUZZ_EXAMPLES=20000 bash scripts/run-tests-as-user.sh -q tests/unit/api/test_api_wire_fuzz.py
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qhb_patroni.api.wire import MAX_BODY, Request, RequestError, RequestParser, parse_target

settings.register_profile("qhb-fuzz-small", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("qhb-fuzz-large", max_examples=int(os.environ.get("QHB_FUZZ_EXAMPLES") or 20000),
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile("qhb-fuzz-large" if os.environ.get("QHB_FUZZ_EXAMPLES") else "qhb-fuzz-small")

Outcome = Tuple[List[Tuple[Request, bool]], Optional[RequestError]]


def feed_in_pieces(data: bytes, cuts: List[int]) -> Outcome:
    """Feed `data` split at `cuts`, draining requests after each piece, as the listener
    does; stop at the first RequestError (the listener answers it and closes)."""
    parser = RequestParser(("192.0.2.1", 4242))
    got: List[Tuple[Request, bool]] = []
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in zip(bounds, bounds[1:]):
        parser.feed(data[start:end])
        try:
            while True:
                item = parser.next()
                if item is None:
                    break
                got.append(item)
        except RequestError as err:
            assert err.code is None or 400 <= err.code < 600
            return got, err
    assert isinstance(parser.pending, bool)
    err = parser.incomplete()
    assert isinstance(err, RequestError) and err.code == 400
    return got, None


# ---- arbitrary bytes -------------------------------------------------------------------

HTTPISH = st.sampled_from([
    b"GET ", b"POST ", b"PUT ", b"HEAD ", b"/", b"/patroni", b"?lag=", b"%", b"[", b" HTTP/1.1", b" HTTP/1.0",
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b":", b" : ", b"Content-Length", b"Content-Length: ", b"Host: h",
    b"Transfer-Encoding: chunked", b"Connection: keep-alive", b"Connection: close", b"0", b"2", b"+2", b"1_0",
    b"-1", b"99999999999999999999", b"\x00", b"\xff", b"\t", b" ", b"{}", b"a", b",", b"//[", b"?a", b"#",
])


@FUZZ
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=0, max_value=4096), max_size=8))
def test_random_bytes_raise_only_request_error(data: bytes, cuts: List[int]) -> None:
    feed_in_pieces(data, cuts)


@FUZZ
@given(st.lists(HTTPISH, max_size=60).map(b"".join), st.lists(st.integers(min_value=0, max_value=4096), max_size=8))
def test_http_like_fragments_raise_only_request_error(data: bytes, cuts: List[int]) -> None:
    got, _ = feed_in_pieces(data, cuts)
    for req, keep in got:
        assert isinstance(req, Request) and isinstance(keep, bool)
        assert len(req.body) <= MAX_BODY
        if req.body:
            assert int(req.headers["content-length"]) == len(req.body)


TARGET_PARTS = st.sampled_from(["/", "//", "[", "]", "?", "#", "%", "%ff", "%2", "a", "=", "&", ":", "@",
                                 "http:", "::1", "lag", ";", "\x00", "\u00e9"])
TARGETS = st.one_of(st.text(max_size=300), st.lists(TARGET_PARTS, max_size=30).map("".join))


@FUZZ
@given(TARGETS)
@example("//[x?a")  # urlsplit: "Invalid IPv6 URL" (was a ValueError out of the parser)
@example("http://[::1?lag=1")
def test_parse_target_raises_only_request_error(target: str) -> None:
    try:
        path, query = parse_target(target)
    except RequestError as err:
        assert err.code == 400
        return
    assert isinstance(path, str) and all(isinstance(v, str) for v in query.values())


# ---- well-formed requests: round trip --------------------------------------------------

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'#$&+^`|",
                min_size=1, max_size=12)
VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
                max_size=40).map(lambda v: v.strip(" \t"))
PATH = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./", max_size=30).map(lambda p: "/" + p)
RESERVED = {"content-length", "transfer-encoding", "connection", "host", "authorization"}


@st.composite
def requests(draw: st.DrawFn) -> Tuple[bytes, str, str, Dict[str, str], bytes]:
    method = draw(st.sampled_from(["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]))
    path = draw(PATH)
    names = draw(st.lists(TOKEN.filter(lambda n: n.lower() not in RESERVED), max_size=6,
                          unique_by=lambda n: n.lower()))
    headers = {name: draw(VALUE) for name in names}
    body = draw(st.binary(max_size=200)) if method in ("POST", "PUT", "PATCH", "DELETE") else b""
    lines = [f"{method} {path} HTTP/1.1", "Host: fuzz"] + [f"{k}: {v}" for k, v in headers.items()]
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + body
    return raw, method, path, {k.lower(): v for k, v in headers.items()}, body


@FUZZ
@given(st.lists(requests(), min_size=1, max_size=5), st.lists(st.integers(min_value=0, max_value=8192), max_size=10))
def test_well_formed_requests_round_trip_in_any_pieces(reqs: List[Tuple[bytes, str, str, Dict[str, str], bytes]],
                                                        cuts: List[int]) -> None:
    got, err = feed_in_pieces(b"".join(r[0] for r in reqs), cuts)
    assert err is None
    assert len(got) == len(reqs)
    for (req, keep), (_, method, path, headers, body) in zip(got, reqs):
        assert (req.method, req.path, req.body, keep) == (method, path, body, True)
        for name, value in headers.items():
            assert req.headers[name] == value
        assert req.client == ("192.0.2.1", 4242)


@FUZZ
@given(requests(), st.integers(min_value=0, max_value=10**6), st.sampled_from([
    b"\x00", b"\r", b" ", b":", b"\n", b"Content-Length: 5\r\n", b"Content-Length: +1\r\n", b"\xff", b"\t"]))
def test_corrupted_requests_raise_only_request_error(req: Tuple[bytes, str, str, Dict[str, str], bytes],
                                                     where: int, junk: bytes) -> None:
    raw = req[0]
    at = where % (len(raw) + 1)
    feed_in_pieces(raw[:at] + junk + raw[at:], [at])
