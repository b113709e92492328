"""RestApiServer on a real loopback socket: codes, headers, bodies, limits, slow clients."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, Tuple

import pytest

from qhb_patroni.api.server import RestApiServer, parse_listen, pid_alive
from qhb_patroni.api.wire import parse_target
from qhb_patroni.runtime.status import StatusBoard, StatusView
from tests.fixtures.api import (
    NOW,
    cluster,
    member,
    primary_server,
    replica_server,
    status_view,
    two_node_cluster,
)
from tests.fixtures.ports import free_port

MakeServer = Callable[..., Tuple[RestApiServer, StatusBoard]]


def exchange(server: RestApiServer, raw: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(server.address, timeout=timeout) as s:
        s.sendall(raw)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def request(server: RestApiServer, method: str, path: str, headers: str = "") -> Tuple[int, Dict[str, str], bytes]:
    raw = exchange(server, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.0 ")
    code = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        hdrs[name.strip().lower()] = value.strip()
    return code, hdrs, body


def primary_view(**changes: Any) -> StatusView:
    c = two_node_cluster(config={"ttl": 30, "loop_wait": 10}, history=[(1, 100, "no recovery target specified")])
    return replace(status_view("postgresql0", primary_server(), c, holds_lock=True), **changes)


@pytest.fixture(scope="module")
def primary() -> Iterator[RestApiServer]:
    """One read-only server shared by the tests of this module that never change its board."""
    board = StatusBoard(primary_view())
    server = RestApiServer(
        f"127.0.0.1:{free_port()}", board, clock=lambda: NOW, extra_headers={"X-Frame-Options": "SAMEORIGIN"}
    )
    server.start()
    yield server
    server.stop()


def test_get_patroni(primary: RestApiServer) -> None:
    code, headers, body = request(primary, "GET", "/patroni")
    assert code == 200
    assert headers["content-type"] == "application/json"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert int(headers["content-length"]) == len(body)
    doc = json.loads(body)
    assert doc["role"] == "master" and doc["xlog"] == {"location": 50331968}
    assert doc["patroni"] == {"version": "3.0.2", "scope": "batman"}


@pytest.mark.parametrize(
    "path,code",
    [("/", 200), ("/primary", 200), ("/leader", 200), ("/replica", 503), ("/read-only", 200),
     ("/health", 200), ("/whatever/x", 503), ("/metricsx", 503), ("/replica?lag=1MB", 503)],
)  # fmt: skip
def test_get_health_paths_answer_json(primary: RestApiServer, path: str, code: int) -> None:
    got, headers, body = request(primary, "GET", path)
    assert got == code
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["state"] == "running"


@pytest.mark.parametrize(
    "method,path,line",
    [
        ("HEAD", "/", b"HTTP/1.0 200 OK\r\n\r\n"),
        ("HEAD", "/replica", b"HTTP/1.0 503 Service Unavailable\r\n\r\n"),
        ("OPTIONS", "/primary", b"HTTP/1.0 200 OK\r\n\r\n"),
        ("OPTIONS", "/replica", b"HTTP/1.0 503 Service Unavailable\r\n\r\n"),
        ("HEAD", "/patroni", b"HTTP/1.0 503 Service Unavailable\r\n\r\n"),  # health semantics for any path
        ("GET", "/liveness", b"HTTP/1.0 200 OK\r\n\r\n"),
        ("GET", "/readiness", b"HTTP/1.0 200 OK\r\n\r\n"),
    ],
)
def test_status_line_only_responses(primary: RestApiServer, method: str, path: str, line: bytes) -> None:
    assert exchange(primary, f"{method} {path} HTTP/1.1\r\n\r\n".encode()) == line


def test_liveness_and_readiness_fail(api_server: MakeServer) -> None:
    view = status_view("postgresql1", replica_server(state="stopped", query_ok=False), None, next_cycle_at=0.0)
    server, _ = api_server(view)
    assert exchange(server, b"GET /liveness HTTP/1.0\r\n\r\n") == b"HTTP/1.0 503 Service Unavailable\r\n\r\n"
    assert exchange(server, b"GET /readiness HTTP/1.0\r\n\r\n") == b"HTTP/1.0 503 Service Unavailable\r\n\r\n"


def test_cluster_history_config(primary: RestApiServer) -> None:
    code, headers, body = request(primary, "GET", "/cluster")
    assert code == 200 and headers["content-type"] == "application/json"
    assert [(m["name"], m["role"]) for m in json.loads(body)["members"]] == [
        ("postgresql0", "leader"),
        ("postgresql1", "replica"),
    ]
    code, _, body = request(primary, "GET", "/history")
    assert code == 200 and json.loads(body) == [[1, 100, "no recovery target specified"]]
    code, _, body = request(primary, "GET", "/config")
    assert code == 200 and json.loads(body) == {"ttl": 30, "loop_wait": 10}


def test_without_dcs_view(api_server: MakeServer) -> None:
    server, _ = api_server(status_view("postgresql0", primary_server(), None))
    code, headers, body = request(server, "GET", "/config")
    assert code == 502 and headers["content-type"].startswith("text/html") and b"Error code: 502" in body
    assert request(server, "GET", "/failsafe")[0] == 502
    assert request(server, "GET", "/cluster")[0] == 503
    code, _, body = request(server, "GET", "/history")
    assert code == 200 and json.loads(body) == []


def test_failsafe(api_server: MakeServer) -> None:
    c = cluster([member("a")], leader="a", failsafe={"a": "http://127.0.0.1:8008/patroni"})
    server, _ = api_server(status_view("a", primary_server(), c))
    code, _, body = request(server, "GET", "/failsafe")
    assert code == 200 and json.loads(body) == {"a": "http://127.0.0.1:8008/patroni"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "BREW"])
def test_methods_without_handler_are_501(primary: RestApiServer, method: str) -> None:
    code, headers, body = request(primary, method, "/restart", "Content-Length: 2\r\n\r\n{}")
    assert code == 501
    assert headers["content-type"] == "text/html;charset=utf-8"
    assert "x-frame-options" not in headers  # extra headers are not added to error pages
    assert b"Error code: 501" in body


def test_board_updates_are_served(api_server: MakeServer) -> None:
    server, board = api_server(primary_view())
    assert request(server, "GET", "/primary")[0] == 200
    board.update(lease_until=None)
    assert request(server, "GET", "/primary")[0] == 503
    board.update(server=replica_server())
    code, _, body = request(server, "GET", "/replica")
    assert code == 200 and json.loads(body)["role"] == "replica"


def test_query_uses_first_value(api_server: MakeServer) -> None:
    view = status_view("postgresql1", replica_server(), two_node_cluster(), tags={"zone": "a"})
    server, _ = api_server(view)
    assert request(server, "GET", "/replica?tag_zone=a&tag_zone=b")[0] == 200
    assert request(server, "GET", "/replica?tag_zone=b&tag_zone=a")[0] == 503


@pytest.mark.parametrize(
    "raw,code",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /patroni HTTP/1.0 extra\r\n\r\n", 400),
        (b"GET /patroni FTP/1.0\r\n\r\n", 400),
        (b"GET /patroni HTTP/1.0\r\nno-colon-here\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.0\r\n\r\n", 414),
        (b"GET / HTTP/1.0\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
        (b"GET / HTTP/1.0\r\nX-Big: " + b"y" * 20000 + b"\r\n\r\n", 431),
        (b"POST /x HTTP/1.0\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /x HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"POST /x HTTP/1.0\r\nContent-Length: +2\r\n\r\n{}", 400),
        (b"POST /x HTTP/1.0\r\nContent-Length : 2\r\n\r\n{}", 400),
        (b"GET /replica?lag=" + b"9" * 5000 + b" HTTP/1.0\r\n\r\n", 400),  # not a 500 per request
        (b"HEAD /replica?lag=99999999999999999999999 HTTP/1.0\r\n\r\n", 400),
        (b"GET //[x?a HTTP/1.0\r\n\r\n", 400),  # a target urlsplit refuses
    ],
)
def test_bad_requests(primary: RestApiServer, raw: bytes, code: int) -> None:
    answer = exchange(primary, raw)
    assert answer.startswith(f"HTTP/1.0 {code} ".encode())


def test_bare_lf_and_http09_style_request(primary: RestApiServer) -> None:
    assert exchange(primary, b"HEAD /primary HTTP/1.0\n\n") == b"HTTP/1.0 200 OK\r\n\r\n"
    assert exchange(primary, b"HEAD /primary\r\n\r\n") == b"HTTP/1.0 200 OK\r\n\r\n"


def test_slow_client_does_not_block_others_and_times_out(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), request_timeout=1.0)
    with socket.create_connection(server.address, timeout=10) as slow:
        slow.sendall(b"GET /patroni HTTP/1.0\r\nHost: x\r\n")  # never finishes its head
        for _ in range(3):
            assert request(server, "GET", "/primary")[0] == 200
        answer = b""
        while True:
            data = slow.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.0 408 ")


def test_idle_connection_is_closed_silently(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), request_timeout=0.5)
    with socket.create_connection(server.address, timeout=10) as idle:
        assert idle.recv(100) == b""


def test_body_sent_in_pieces(primary: RestApiServer) -> None:
    with socket.create_connection(primary.address, timeout=10) as s:
        s.sendall(b"POST /restart HTTP/1.0\r\nContent-Length: 10\r\n\r\n{\"a\":")
        s.sendall(b" 1}\r\n")
        assert s.recv(100).startswith(b"HTTP/1.0 501 ")


def test_stop_releases_the_port(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view())
    address = server.address
    server.stop()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()
    server.start()  # restartable on the same port
    assert server.address == address
    assert request(server, "GET", "/primary")[0] == 200


@pytest.mark.parametrize(
    "listen,expected",
    [
        ("127.0.0.1:8008", ("127.0.0.1", 8008, socket.AF_INET)),
        ("[::1]:8008", ("::1", 8008, socket.AF_INET6)),
        ("localhost:1", ("localhost", 1, socket.AF_INET)),
    ],
)
def test_parse_listen(listen: str, expected: Tuple[str, int, int]) -> None:
    assert parse_listen(listen) == expected


def test_parse_listen_all_interfaces_and_errors() -> None:
    assert parse_listen("*:8008")[1] == 8008 and parse_listen(":8008")[0] in ("::", "0.0.0.0")
    with pytest.raises(ValueError):
        parse_listen("8008")


def test_parse_target() -> None:
    assert parse_target("/replica?lag=1MB&tag_a=b&tag_a=c") == ("/replica", {"lag": "1MB", "tag_a": "b"})
    assert parse_target("/read%2Donly") == ("/read-only", {})
    assert parse_target("") == ("/", {})


def test_metrics(primary: RestApiServer) -> None:
    code, headers, body = request(primary, "GET", "/metrics")
    assert code == 200 and headers["content-type"] == "text/plain"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    lines = body.decode().splitlines()
    assert 'patroni_primary{scope="batman"} 1' in lines
    assert 'patroni_postgres_server_version {scope="batman"} 150002' in lines


def test_handler_failure_answers_500(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view())

    def broken(view: StatusView, now: float, req: Any) -> Any:
        raise RuntimeError("bug")

    server.add_route("GET", "broken", broken)
    code, headers, body = request(server, "GET", "/broken")
    assert code == 500 and b"Error code: 500" in body
    assert request(server, "GET", "/primary")[0] == 200  # the listener lives on


def test_an_exited_postmaster_is_seen_by_the_next_request(api_server: MakeServer) -> None:
    """The sampled status still says running (the sampler has not looked again), but
    the process behind postmaster_pid has exited: the very next request knows."""
    stand_in = subprocess.Popen(["sleep", "60"])
    try:
        replica = status_view("postgresql1", replica_server(postmaster_pid=stand_in.pid), two_node_cluster())
        server, _ = api_server(replica)
        assert request(server, "GET", "/replica")[0] == 200
        stand_in.kill()
        stand_in.wait(10)
        assert request(server, "GET", "/replica")[0] == 503
        assert request(server, "GET", "/health")[0] == 503
        doc = json.loads(request(server, "GET", "/patroni")[2])
        assert doc["state"] == "unknown" and "postmaster_start_time" not in doc and "xlog" not in doc
    finally:
        stand_in.kill()
        stand_in.wait(10)


def test_a_dead_lock_holder_postmaster_is_not_primary(api_server: MakeServer) -> None:
    stand_in = subprocess.Popen(["sleep", "60"])
    try:
        server, _ = api_server(primary_view(server=primary_server(postmaster_pid=stand_in.pid)))
        assert request(server, "GET", "/primary")[0] == 200
        stand_in.kill()
        stand_in.wait(10)
        assert request(server, "GET", "/primary")[0] == 503
        assert request(server, "GET", "/leader")[0] == 200  # it still holds the lock
    finally:
        stand_in.kill()
        stand_in.wait(10)


def test_a_killed_postmaster_not_yet_reaped_is_dead_too(api_server: MakeServer) -> None:
    """The daemon spawns the postmaster: killed, it is a zombie until reaped."""
    stand_in = subprocess.Popen(["sleep", "60"])
    try:
        replica = status_view("postgresql1", replica_server(postmaster_pid=stand_in.pid), two_node_cluster())
        server, _ = api_server(replica)
        assert request(server, "GET", "/replica")[0] == 200
        os.kill(stand_in.pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(stand_in.pid))
        assert os.path.exists(f"/proc/{stand_in.pid}")  # still there, as a zombie
        assert request(server, "GET", "/replica")[0] == 503
    finally:
        stand_in.kill()
        stand_in.wait(10)


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
