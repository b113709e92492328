"""Access control for unsafe endpoints (spec 1.2) and the TLS listener (1.1)."""
from __future__ import annotations

import base64
import ipaddress
import logging
import socket
import ssl
from typing import Callable, Dict, Iterator, List, Tuple

import pytest

from qhb_patroni.api.security import AccessPolicy, Refusal, member_hosts, ssl_context
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.api.wire import Request, Response, text_response
from qhb_patroni.runtime.status import StatusBoard, StatusView
from tests.fixtures.api import NOW, cluster, member, primary_server, status_view, two_node_cluster
from tests.fixtures.ports import free_port

AUTH_OK = "Basic " + base64.b64encode(b"admin:secret").decode()
CHALLENGE = (("WWW-Authenticate", 'Basic realm="Patroni"'),)


def nets(*entries: str) -> Tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(e) for e in entries)


@pytest.mark.parametrize(
    "policy,ip,auth,cert,expected",
    [
        (AccessPolicy(), "10.1.1.1", None, False, None),
        (AccessPolicy(allowlist=nets("127.0.0.1/32", "10.0.0.0/8")), "10.1.1.1", None, False, None),
        (AccessPolicy(allowlist=nets("127.0.0.1/32")), "10.1.1.1", None, False, Refusal(403, "Access is denied")),
        (AccessPolicy(allowlist=nets("127.0.0.1/32")), "::ffff:127.0.0.1", None, False, None),
        (AccessPolicy(allowlist=nets("127.0.0.1/32")), "garbage", None, False, Refusal(403, "Access is denied")),
        (AccessPolicy(tls_client_check=True), "1.1.1.1", None, False, Refusal(403, "client certificate required")),
        (AccessPolicy(tls_client_check=True), "1.1.1.1", None, True, None),
        (AccessPolicy(auth="admin:secret"), "1.1.1.1", None, False,
         Refusal(401, "no auth header received", CHALLENGE)),
        (AccessPolicy(auth="admin:secret"), "1.1.1.1", "Basic eA==", False,
         Refusal(401, "not authenticated", CHALLENGE)),
        (AccessPolicy(auth="admin:secret"), "1.1.1.1", AUTH_OK, False, None),
        # order: the allowlist answers before authentication, the certificate check before auth
        (AccessPolicy(allowlist=nets("127.0.0.1/32"), auth="admin:secret"), "10.0.0.1", None, False,
         Refusal(403, "Access is denied")),
        (AccessPolicy(tls_client_check=True, auth="admin:secret"), "1.1.1.1", None, False,
         Refusal(403, "client certificate required")),
    ],
)  # fmt: skip
def test_policy_checks(policy: AccessPolicy, ip: str, auth: str, cert: bool, expected: object) -> None:
    assert policy.check(ip, auth, cert) == expected


def test_allowlist_include_members_uses_member_api_hosts() -> None:
    resolved: List[str] = []

    def resolve(host: str) -> List[ipaddress.IPv4Network]:
        resolved.append(host)
        return [ipaddress.IPv4Network("10.0.0.2/32")] if host == "node-b" else []

    c = cluster([member("a", host="10.0.0.1"), member("b", host="node-b")], leader="a")
    assert member_hosts(c) == ["10.0.0.1", "node-b"]
    policy = AccessPolicy(include_members=True, resolve=resolve)
    assert policy.check("10.0.0.2", None, False, c) is None
    assert policy.check("10.0.0.9", None, False, c) == Refusal(403, "Access is denied")
    assert policy.check("10.0.0.2", None, False, None) == Refusal(403, "Access is denied")
    assert "node-b" in resolved


def test_policy_from_config() -> None:
    policy = AccessPolicy.from_config(
        {
            "allowlist": ["127.0.0.1", "10.0.0.0/8", "localhost"],
            "authentication": {"username": "admin", "password": "secret"},
            "certfile": "/x.pem",
            "verify_client": "optional",
        }
    )
    assert ipaddress.ip_network("10.0.0.0/8") in policy.allowlist
    assert ipaddress.ip_network("127.0.0.1/32") in policy.allowlist
    assert policy.auth == "admin:secret" and policy.tls_client_check
    assert not AccessPolicy.from_config({"verify_client": "required"}).tls_client_check  # no TLS, no check
    assert AccessPolicy.from_config({}) == AccessPolicy()


# ---- through the server --------------------------------------------------------------


def echo_restart(view: StatusView, now: float, req: Request) -> Response:
    return text_response(202, f"restart requested: {req.body.decode()}")


def raw_exchange(address: Tuple[str, int], raw: bytes, wrap: Callable[[socket.socket], socket.socket] = lambda s: s
                 ) -> bytes:
    with wrap(socket.create_connection(address, timeout=10)) as s:
        s.sendall(raw)
        out = b""
        while True:
            data = s.recv(65536)
            if not data:
                return out
            out += data


@pytest.fixture
def guarded() -> Iterator[RestApiServer]:
    board = StatusBoard(status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True))
    server = RestApiServer(f"127.0.0.1:{free_port()}", board, clock=lambda: NOW,
                           access=AccessPolicy(auth="admin:secret"), extra_headers={"X-Extra": "1"})
    server.add_route("POST", "restart", echo_restart, unsafe=True)
    server.start()
    yield server
    server.stop()


def test_unsafe_route_requires_auth(guarded: RestApiServer) -> None:
    answer = raw_exchange(guarded.address, b"POST /restart HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 401 Unauthorized\r\n")
    assert b'\r\nWWW-Authenticate: Basic realm="Patroni"' in head
    assert b"\r\nContent-Type: text/html\r\n" in head and b"\r\nX-Extra: 1" in head
    assert body == b"no auth header received"
    authorized = b"POST /restart HTTP/1.0\r\nAuthorization: " + AUTH_OK.encode() + b"\r\nContent-Length: 2\r\n\r\n{}"
    ok = raw_exchange(guarded.address, authorized)
    assert ok.startswith(b"HTTP/1.0 202 Accepted\r\n") and ok.endswith(b"restart requested: {}")
    # safe endpoints stay open
    assert raw_exchange(guarded.address, b"GET /primary HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")


# ---- TLS ---------------------------------------------------------------------------------




def client_context(cafile: str, certfile: str = "", keyfile: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def tls_server(restapi: Dict[str, object]) -> RestApiServer:
    board = StatusBoard(status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True))
    server = RestApiServer.from_config(dict(restapi, listen=f"127.0.0.1:{free_port()}"), board, clock=lambda: NOW)
    server.add_route("POST", "restart", echo_restart, unsafe=True)
    server.start()
    return server


def test_tls_listener_and_https_headers(cert: Dict[str, str]) -> None:
    server = tls_server({**cert, "http_extra_headers": {"X-A": "1"}, "https_extra_headers": {"X-B": "2"}})
    try:
        ctx = client_context(cert["certfile"])
        answer = raw_exchange(server.address, b"GET /patroni HTTP/1.0\r\n\r\n",
                              lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1"))
        assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
        assert b"\r\nX-A: 1\r\n" in answer and b"\r\nX-B: 2\r\n" in answer
        # a plain-text client gets no HTTP answer (closed or reset) and does not hurt the listener
        try:
            plain = raw_exchange(server.address, b"GET /patroni HTTP/1.0\r\n\r\n")
        except ConnectionResetError:
            plain = b""
        assert not plain.startswith(b"HTTP/")
        again = raw_exchange(server.address, b"HEAD / HTTP/1.0\r\n\r\n",
                             lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1"))
        assert again == b"HTTP/1.0 200 OK\r\n\r\n"
    finally:
        server.stop()


def test_tls_optional_client_cert_guards_unsafe_routes(cert: Dict[str, str]) -> None:
    server = tls_server({**cert, "cafile": cert["certfile"], "verify_client": "optional"})
    try:
        anonymous = client_context(cert["certfile"])
        wrap_anon: Callable[[socket.socket], socket.socket] = lambda s: anonymous.wrap_socket(  # noqa: E731
            s, server_hostname="127.0.0.1")
        post = b"POST /restart HTTP/1.0\r\nContent-Length: 0\r\n\r\n"
        refused = raw_exchange(server.address, post, wrap_anon)
        assert refused.startswith(b"HTTP/1.0 403 ") and refused.endswith(b"client certificate required")
        assert raw_exchange(server.address, b"GET /primary HTTP/1.0\r\n\r\n", wrap_anon).startswith(b"HTTP/1.0 200")
        with_cert = client_context(cert["certfile"], cert["certfile"], cert["keyfile"])
        accepted = raw_exchange(server.address, post,
                                lambda s: with_cert.wrap_socket(s, server_hostname="127.0.0.1"))
        assert accepted.startswith(b"HTTP/1.0 202 ")
    finally:
        server.stop()


def test_ssl_context_config_errors(cert: Dict[str, str]) -> None:
    assert ssl_context({}) is None
    ctx = ssl_context({**cert, "verify_client": "required", "cafile": cert["certfile"]})
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ValueError):
        ssl_context({**cert, "verify_client": "sometimes"})


def test_reload_swaps_tls_headers_access_and_listener(cert: Dict[str, str]) -> None:
    server = tls_server({})  # plain HTTP first
    try:
        assert raw_exchange(server.address, b"HEAD / HTTP/1.0\r\n\r\n") == b"HTTP/1.0 200 OK\r\n\r\n"
        listen = server.listen
        restarted = server.reload({**cert, "listen": listen, "http_extra_headers": {"X-New": "1"},
                                   "authentication": {"username": "admin", "password": "secret"}})
        assert restarted is False and server.listen == listen
        ctx = client_context(cert["certfile"])
        wrap: Callable[[socket.socket], socket.socket] = lambda s: ctx.wrap_socket(  # noqa: E731
            s, server_hostname="127.0.0.1")
        answer = raw_exchange(server.address, b"GET /patroni HTTP/1.0\r\n\r\n", wrap)
        assert answer.startswith(b"HTTP/1.0 200 ") and b"\r\nX-New: 1\r\n" in answer
        refused = raw_exchange(server.address, b"POST /restart HTTP/1.0\r\nContent-Length: 0\r\n\r\n", wrap)
        assert refused.startswith(b"HTTP/1.0 401 ")
        new_listen = f"127.0.0.1:{free_port()}"
        assert server.reload({"listen": new_listen}) is True
        assert server.address[1] == int(new_listen.rsplit(":", 1)[1])
        assert raw_exchange(server.address, b"HEAD / HTTP/1.0\r\n\r\n") == b"HTTP/1.0 200 OK\r\n\r\n"
    finally:
        server.stop()


# ---- an allowlist that resolves to nothing (issue 12, item 1) ------------------------


def test_allowlist_resolving_to_nothing_refuses_everyone(caplog: pytest.LogCaptureFixture) -> None:
    def nothing(entry: str) -> List[ipaddress.IPv4Network]:
        return []

    with caplog.at_level(logging.WARNING, logger="qhb_patroni.api.security"):
        policy = AccessPolicy.from_config({"allowlist": ["db-admin.invalid", "ops.invalid"]}, nothing)
    for ip in ("127.0.0.1", "10.0.0.1", "::1"):
        assert policy.check(ip, None, False) == Refusal(403, "Access is denied")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "restapi.allowlist" in errors[0] and "db-admin.invalid" in errors[0]
    assert sum("does not resolve" in r.getMessage() for r in caplog.records) == 2


def test_allowlist_partly_resolving_keeps_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="qhb_patroni.api.security"):
        policy = AccessPolicy.from_config({"allowlist": ["10.0.0.0/8", "gone.invalid"]},
                                          lambda e: [] if e == "gone.invalid" else list(nets(e)))
    assert policy.check("10.1.2.3", None, False) is None
    assert policy.check("192.168.0.1", None, False) == Refusal(403, "Access is denied")
    assert not any(r.levelno == logging.ERROR for r in caplog.records)
    assert any("gone.invalid" in r.getMessage() for r in caplog.records)


def test_empty_allowlist_is_no_allowlist_and_string_form_is_split() -> None:
    assert AccessPolicy.from_config({"allowlist": []}).check("10.9.9.9", None, False) is None
    policy = AccessPolicy.from_config({"allowlist": "127.0.0.1, 10.0.0.0/8"})
    assert policy.check("10.0.0.5", None, False) is None
    assert policy.check("192.168.1.1", None, False) == Refusal(403, "Access is denied")


def test_allowlist_is_resolved_again_on_reload(api_server: Callable[..., Tuple[RestApiServer, StatusBoard]]) -> None:
    addresses: Dict[str, List[ipaddress.IPv4Network]] = {"admin.example": []}
    server, _ = api_server(status_view(), access=AccessPolicy.from_config(
        {"allowlist": ["admin.example"]}, lambda e: list(addresses.get(e, []))))
    server.add_route("POST", "restart", echo_restart, unsafe=True)
    post = b"POST /restart HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"
    assert raw_exchange(server.address, post).startswith(b"HTTP/1.0 403 ")
    addresses["admin.example"] = list(nets("127.0.0.0/8"))  # the name now resolves
    assert raw_exchange(server.address, post).startswith(b"HTTP/1.0 403 ")  # not until a reload
    server.reload({"listen": server.listen, "allowlist": ["admin.example"]})
    assert raw_exchange(server.address, post).startswith(b"HTTP/1.0 202 ")


# ---- unsafe endpoints without a password (issue 12, item 12) -------------------------

UNSAFE = {("POST", "restart"), ("POST", "switchover"), ("PATCH", "config")}


def test_open_endpoints_warning_names_them() -> None:
    from qhb_patroni.api.security import open_endpoints_warning

    text = open_endpoints_warning(AccessPolicy(), UNSAFE, "0.0.0.0:8008")
    assert text is not None
    assert "restapi.authentication" in text and "PATCH /config, POST /restart, POST /switchover" in text
    assert "any client that can reach 0.0.0.0:8008" in text
    allow = open_endpoints_warning(AccessPolicy(allowlist=nets("10.0.0.0/8")), UNSAFE, "x:1")
    assert allow is not None and "restapi.allowlist" in allow
    assert open_endpoints_warning(AccessPolicy(auth="a:b"), UNSAFE, "x:1") is None
    assert open_endpoints_warning(AccessPolicy(), set(), "x:1") is None


def test_server_warns_at_start_and_when_reload_opens_them(
        api_server: Callable[..., Tuple[RestApiServer, StatusBoard]], caplog: pytest.LogCaptureFixture) -> None:
    board = StatusBoard(status_view())
    server = RestApiServer(f"127.0.0.1:{free_port()}", board, access=AccessPolicy(auth="admin:secret"))
    server.add_route("POST", "restart", echo_restart, unsafe=True)
    with caplog.at_level(logging.WARNING, logger="qhb_patroni.api.server"):
        server.start()
        try:
            assert not [r for r in caplog.records if "restapi.authentication" in r.getMessage()]
            server.reload({"listen": server.listen})  # authentication removed
            server.reload({"listen": server.listen})  # unchanged: not repeated
        finally:
            server.stop()
    warnings = [r for r in caplog.records if "restapi.authentication" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "POST /restart" in warnings[0].getMessage()
