"""RestApiServer connections: keep-alive, pipelining, when connections close, unsafe handlers
on worker threads, slow or hostile clients, the connection cap, idle timeout, stop/start."""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from qhb_patroni.api.security import ssl_context
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.api.wire import Request, Response, json_response
from qhb_patroni.runtime.status import StatusBoard, StatusView
from tests.fixtures.api import NOW, primary_server, status_view, two_node_cluster
from tests.fixtures.ports import free_port

MakeServer = Callable[..., Tuple[RestApiServer, StatusBoard]]
Answer = Tuple[int, Dict[str, str], bytes]


def primary_view() -> StatusView:
    return replace(status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Polls until `condition` holds (a bound for a hung test, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.01)


class Client:
    """A raw HTTP client on one socket that reads answers one by one."""

    def __init__(self, server: RestApiServer, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(server.address, timeout=timeout)
        self.buf = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.sock.close()

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def read(self) -> Answer:
        """The next answer: by Content-Length, else up to the end of the connection."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed, got {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.0 ")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buf) < length:
                if not self._fill():
                    raise EOFError("connection closed in a body")
            body, self.buf = self.buf[:length], self.buf[length:]
        else:
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        return int(lines[0].split()[1]), headers, body

    def closed_by_server(self) -> bool:
        """True when the server closed the connection (EOF or reset) with nothing more to read."""
        try:
            return not self._fill() and not self.buf
        except ConnectionResetError:
            return not self.buf


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


@pytest.fixture
def served(api_server: MakeServer) -> RestApiServer:
    return api_server(primary_view())[0]


def test_keep_alive_two_requests_on_one_socket(served: RestApiServer) -> None:
    with Client(served) as c:
        c.send(get("/primary"))
        code, headers, body = c.read()
        assert code == 200 and headers["connection"] == "keep-alive"
        assert json.loads(body)["role"] == "master"
        c.send(get("/replica"))
        code, headers, _ = c.read()
        assert code == 503 and headers["connection"] == "keep-alive"


def test_pipelined_requests_are_answered_in_order(served: RestApiServer) -> None:
    with Client(served) as c:
        c.send(get("/patroni") + get("/replica") + get("/cluster") + get("/primary", "Connection: close\r\n"))
        answers = [c.read() for _ in range(4)]
        assert [a[0] for a in answers] == [200, 503, 200, 200]
        assert "members" in json.loads(answers[2][2])
        assert "connection" not in answers[3][1]
        assert c.closed_by_server()


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /primary HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET /primary HTTP/1.0\r\n\r\n",
        b"GET /primary\r\n\r\n",
        b"GET /primary HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",  # a body nobody reads
    ],
)
def test_connection_closed_after_the_answer(served: RestApiServer, raw: bytes) -> None:
    with Client(served) as c:
        c.send(raw)
        code, headers, _ = c.read()
        assert code == 200 and "connection" not in headers
        assert c.closed_by_server()


def test_http10_keep_alive_on_request(served: RestApiServer) -> None:
    with Client(served) as c:
        for _ in range(2):
            c.send(b"GET /patroni HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            code, headers, _ = c.read()
            assert code == 200 and headers["connection"] == "keep-alive"


@pytest.mark.parametrize("raw", [b"HEAD / HTTP/1.1\r\n\r\n", b"GET /liveness HTTP/1.1\r\n\r\n",
                                 b"BREW /pot HTTP/1.1\r\n\r\n", b"GET /x HTTP/1.1\r\nbad header\r\n\r\n"])
def test_status_only_and_error_answers_always_close(served: RestApiServer, raw: bytes) -> None:
    with Client(served) as c:
        c.send(raw + get("/primary"))  # the pipelined request after it is never answered
        code, headers, _ = c.read()
        assert code in (200, 400, 501)
        assert headers.get("connection", "close") == "close"
        assert c.closed_by_server()


def test_blank_lines_between_requests_are_ignored(served: RestApiServer) -> None:
    with Client(served) as c:
        c.send(get("/primary") + b"\r\n" + get("/primary"))
        assert c.read()[0] == 200 and c.read()[0] == 200


def test_half_closed_client_gets_its_answer_or_400(served: RestApiServer) -> None:
    with Client(served) as c:
        c.send(get("/primary"))
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read()[0] == 200
        assert c.closed_by_server()
    with Client(served) as c:
        c.send(b"GET /primary HTTP/1.1\r\nHost")
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read()[0] == 400


class Gate:
    """An unsafe handler that waits until the test opens the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, view: StatusView, now: float, req: Request) -> Response:
        self.entered.set()
        assert self.release.wait(30)
        return json_response(200, {"body": req.body.decode()})


def test_slow_unsafe_handler_does_not_delay_health_checks(served: RestApiServer) -> None:
    gate = Gate()
    served.add_route("POST", "slow", gate, unsafe=True)
    with Client(served) as slow:
        # pipelined after the slow request on the same connection: answered after it
        slow.send(b"POST /slow HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi" + get("/primary"))
        assert gate.entered.wait(10)
        for _ in range(3):
            with Client(served) as other:
                other.send(get("/primary"))
                assert other.read()[0] == 200
        assert not gate.release.is_set()  # the GETs above were answered while the POST was held
        gate.release.set()
        code, headers, body = slow.read()
        assert code == 200 and json.loads(body) == {"body": "hi"} and headers["connection"] == "keep-alive"
        assert slow.read()[0] == 200


def test_unsafe_handler_failure_answers_500(served: RestApiServer) -> None:
    def broken(view: StatusView, now: float, req: Request) -> Response:
        raise RuntimeError("bug")

    served.add_route("POST", "broken", broken, unsafe=True)
    with Client(served) as c:
        c.send(b"POST /broken HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        code, _, body = c.read()
        assert code == 500 and b"Error code: 500" in body
    with Client(served) as c:
        c.send(get("/primary"))
        assert c.read()[0] == 200


def test_slow_and_hostile_clients_do_not_delay_others(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), request_timeout=1.0)
    slowloris = [Client(server) for _ in range(20)]
    big_body = Client(server)
    try:
        for i, c in enumerate(slowloris):
            c.send(b"GET /patroni HTTP/1.1\r\nX-Slow-%d: " % i)
        big_body.send(b"POST /restart HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 100000)
        for _ in range(5):
            with Client(server) as other:
                other.send(get("/primary"))
                assert other.read()[0] == 200
        for c in slowloris + [big_body]:  # each gets its 408 at its deadline
            assert c.read()[0] == 408
            assert c.closed_by_server()
    finally:
        for c in slowloris + [big_body]:
            c.sock.close()


def test_client_that_never_reads_is_cut_off(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), request_timeout=0.5)
    flood = socket.create_connection(server.address, timeout=10)
    flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    outcome: List[Optional[BaseException]] = []

    def send_forever() -> None:
        try:
            for _ in range(2000):
                flood.sendall(get("/cluster") * 1000)
            outcome.append(None)
        except OSError as e:
            outcome.append(e)

    sender = threading.Thread(target=send_forever)
    sender.start()
    try:
        with Client(server) as other:
            other.send(get("/primary"))
            assert other.read()[0] == 200
        sender.join(30)
        assert outcome and isinstance(outcome[0], ConnectionError)  # the server cut it (not our timeout)
    finally:
        flood.close()
        sender.join(5)


def test_connection_cap_closes_the_oldest_idle_connection(api_server: MakeServer) -> None:
    """At max_connections a fresh connection is still served: the connection idle the
    longest gives way (issue 12 item 9), the others are not disturbed."""
    server, _ = api_server(primary_view(), max_connections=3)
    held = [Client(server) for _ in range(3)]
    try:
        for c in held:
            c.send(get("/primary"))
            assert c.read()[0] == 200
        with Client(server) as fresh:
            fresh.send(get("/primary"))
            assert fresh.read()[0] == 200
            assert held[0].closed_by_server()  # idle the longest
        for c in held[1:]:
            c.send(get("/primary"))
            assert c.read()[0] == 200
    finally:
        for c in held:
            c.sock.close()


def test_connection_cap_refuses_when_no_connection_is_idle(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), max_connections=3)
    held = [Client(server) for _ in range(3)]
    try:
        for c in held:
            c.send(b"GET /primary HTTP/1.1\r\n")  # a request in progress: never given way
        listener = server._listener
        assert listener is not None
        wait_until(lambda: listener.admission.total == 3 and listener.admission.idle_count == 0,
                   "the listener to read the three partial heads")
        with Client(server) as refused:
            assert refused.closed_by_server()
        for c in held:
            c.send(b"Host: x\r\n\r\n")
            assert c.read()[0] == 200
    finally:
        for c in held:
            c.sock.close()


def from_address(server: RestApiServer, source: str) -> Client:
    client = Client.__new__(Client)
    client.sock = socket.create_connection(server.address, timeout=10, source_address=(source, 0))
    client.buf = b""
    return client


def test_per_address_cap_evicts_only_that_address(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), max_connections=10, max_connections_per_address=2)
    mine = [from_address(server, "127.0.0.1") for _ in range(2)]
    other = from_address(server, "127.0.0.2")
    try:
        for c in mine + [other]:
            c.send(get("/primary"))
            assert c.read()[0] == 200
        with from_address(server, "127.0.0.1") as third:
            third.send(get("/primary"))
            assert third.read()[0] == 200
            assert mine[0].closed_by_server()  # its own oldest idle connection gave way
        other.send(get("/primary"))  # another address's connection is untouched
        assert other.read()[0] == 200
        mine[1].send(get("/primary"))
        assert mine[1].read()[0] == 200
    finally:
        for c in mine + [other]:
            c.sock.close()


def test_limits_follow_reload(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view())
    server.reload({"listen": server.listen, "max_connections": 2, "max_connections_per_address": 1})
    assert server.connection_limits.max_connections == 2 and server.connection_limits.per_address == 1
    first = Client(server)
    try:
        first.send(get("/primary"))
        assert first.read()[0] == 200
        with Client(server) as second:
            second.send(get("/primary"))
            assert second.read()[0] == 200
            assert first.closed_by_server()
    finally:
        first.sock.close()


def test_idle_kept_alive_connection_is_closed(api_server: MakeServer) -> None:
    server, _ = api_server(primary_view(), idle_timeout=0.2)
    with Client(server) as c:
        c.send(get("/primary"))
        assert c.read()[0] == 200
        assert c.closed_by_server()  # silently, no answer
    wait_until(lambda: server.connection_count == 0, "the connection to be forgotten")


def test_an_idle_api_stops_sweeping_and_a_new_connection_starts_it_again(api_server: MakeServer) -> None:
    """No connection, nothing to sweep: the listener's loop sleeps until the next one."""
    server, _ = api_server(primary_view(), idle_timeout=0.2)
    listener = server._listener
    assert listener is not None
    with Client(server) as c:
        c.send(get("/primary"))
        assert c.read()[0] == 200
        assert c.closed_by_server()
    wait_until(lambda: server.connection_count == 0 and listener._sweep_at is None, "the sweep to stop")
    with Client(server) as c:  # its idle deadline is still enforced
        c.send(get("/primary"))
        assert c.read()[0] == 200
        assert c.closed_by_server()
    wait_until(lambda: server.connection_count == 0, "the connection to be forgotten")


def restapi_threads() -> List[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("restapi"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_stop_start_leaves_no_thread_or_descriptor(api_server: MakeServer) -> None:
    baseline_fds = open_fds()
    assert restapi_threads() == []
    server, _ = api_server(primary_view())
    for _ in range(2):
        clients = [Client(server) for _ in range(5)]
        clients[0].send(get("/primary"))
        assert clients[0].read()[0] == 200  # kept alive
        clients[1].send(b"GET /prim")  # mid-request
        wait_until(lambda: server.connection_count == 5, "5 connections")
        assert "restapi" in restapi_threads()
        server.stop()
        for c in clients:
            assert c.closed_by_server()
            c.sock.close()
        assert restapi_threads() == []
        assert open_fds() == baseline_fds
        server.start()
        with Client(server) as c:
            c.send(get("/primary"))
            assert c.read()[0] == 200
    server.stop()
    server.stop()  # idempotent
    assert restapi_threads() == [] and open_fds() == baseline_fds


@pytest.fixture
def unsafe_blocked(api_server: MakeServer) -> Iterator[Tuple[RestApiServer, Gate]]:
    server, _ = api_server(primary_view())
    gate = Gate()
    server.add_route("POST", "slow", gate, unsafe=True)
    yield server, gate
    gate.release.set()


def test_stop_with_an_unsafe_request_in_flight(unsafe_blocked: Tuple[RestApiServer, Gate]) -> None:
    server, gate = unsafe_blocked
    with Client(server) as c:
        c.send(b"POST /slow HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert gate.entered.wait(10)
        server.stop()  # does not wait for the handler
        assert c.closed_by_server()
    gate.release.set()
    wait_until(lambda: restapi_threads() == [], "the worker to finish its request")


# ---- TLS ---------------------------------------------------------------------------




def whoami(view: StatusView, now: float, req: Request) -> Response:
    return json_response(200, {"client_cert": req.client_cert})


class TlsClient(Client):
    def __init__(self, server: RestApiServer, ctx: ssl.SSLContext) -> None:
        super().__init__(server)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")


def test_tls_keep_alive_and_client_cert_flag(cert: Dict[str, str]) -> None:
    board = StatusBoard(primary_view())
    restapi = dict(cert, cafile=cert["certfile"], verify_client="optional", listen=f"127.0.0.1:{free_port()}")
    server = RestApiServer.from_config(restapi, board, clock=lambda: NOW)
    server.add_route("GET", "whoami", whoami)
    server.start()
    try:
        anonymous = ssl.create_default_context(cafile=cert["certfile"])
        with TlsClient(server, anonymous) as c:
            for _ in range(2):  # two requests on one TLS connection
                c.send(get("/whoami"))
                code, headers, body = c.read()
                assert code == 200 and headers["connection"] == "keep-alive"
                assert json.loads(body) == {"client_cert": False}
        with_cert = ssl.create_default_context(cafile=cert["certfile"])
        with_cert.load_cert_chain(cert["certfile"], cert["keyfile"])
        with TlsClient(server, with_cert) as c:
            c.send(get("/whoami", "Connection: close\r\n"))
            assert json.loads(c.read()[2]) == {"client_cert": True}
    finally:
        server.stop()


def test_tls_handshake_is_bounded(cert: Dict[str, str]) -> None:
    board = StatusBoard(primary_view())
    server = RestApiServer(f"127.0.0.1:{free_port()}", board, clock=lambda: NOW, request_timeout=0.3,
                           tls=ssl_context(cert))  # fmt: skip
    server.start()
    try:
        with Client(server) as silent:  # connects, never starts the handshake
            wait_until(lambda: server.connection_count == 1, "the connection to be accepted")
            assert silent.closed_by_server()
        wait_until(lambda: server.connection_count == 0, "the handshake to be given up")
        ctx = ssl.create_default_context(cafile=cert["certfile"])
        with TlsClient(server, ctx) as c:
            c.send(get("/primary"))
            assert c.read()[0] == 200
    finally:
        server.stop()


def test_reload_swaps_tls_for_new_connections_only(cert: Dict[str, str]) -> None:
    board = StatusBoard(primary_view())
    listen = f"127.0.0.1:{free_port()}"
    server = RestApiServer(listen, board, clock=lambda: NOW)
    server.start()
    try:
        with Client(server) as old:
            old.send(get("/primary"))
            assert old.read()[0] == 200
            assert server.reload(dict(cert, listen=listen)) is False  # same port, not unbound
            old.send(get("/primary"))  # the kept-alive plain connection is still served
            assert old.read()[0] == 200
            ctx = ssl.create_default_context(cafile=cert["certfile"])
            with TlsClient(server, ctx) as new:
                new.send(get("/primary"))
                assert new.read()[0] == 200
    finally:
        server.stop()


SERVER_WITH_FEW_FDS = """
import resource, sys, time
from tests.fixtures.api import NOW, primary_server, status_view, two_node_cluster
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.runtime.status import StatusBoard
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
view = status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True)
server = RestApiServer("127.0.0.1:0", StatusBoard(view), clock=lambda: NOW)
server.start()
print(server.address[1], flush=True)
sys.stdin.read()  # until the test closes our stdin
server.stop()
"""


def test_out_of_descriptors_does_not_kill_the_listener() -> None:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    proc = subprocess.Popen([sys.executable, "-c", SERVER_WITH_FEW_FDS], cwd=repo, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=repo))
    clients: List[socket.socket] = []
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        for _ in range(80):  # more than the server has descriptors: the kernel queues the rest
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        for c in clients:
            c.close()
        clients.clear()

        def answered() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(get("/primary", "Connection: close\r\n"))
                    return s.recv(100).startswith(b"HTTP/1.0 200 ")
            except OSError:
                return False

        wait_until(answered, "the listener to accept again", timeout=30)
    finally:
        for c in clients:
            c.close()
        try:
            _, err = proc.communicate(timeout=30)  # closes its stdin: it stops the server and exits
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"cannot accept connections" in err  # it did run out, and said so


def _listen_backlog(port: int) -> int:
    """The backlog of the listening socket on `port` (ss shows it as Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="no ss (iproute2)")
@pytest.mark.parametrize("queue_size", [None, 3])
def test_request_queue_size_is_the_listen_backlog(queue_size: Optional[int]) -> None:
    restapi: Dict[str, Any] = {"listen": f"127.0.0.1:{free_port()}"}
    if queue_size is not None:
        restapi["request_queue_size"] = queue_size
    server = RestApiServer.from_config(restapi, StatusBoard(primary_view()), clock=lambda: NOW)
    server.start()
    try:
        expected = queue_size if queue_size is not None else socket.SOMAXCONN
        assert _listen_backlog(server.address[1]) == expected
    finally:
        server.stop()
