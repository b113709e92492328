"""Member-to-member requests use the ctl.* / restapi.* client certificate and
basic auth (as Patroni 3.0.2's daemon does); a bare client is refused."""
from __future__ import annotations

import base64
import json
from typing import Any, Dict, List

from qhb_patroni.api.server import RestApiServer
from qhb_patroni.api.wire import Request, Response, text_response
from qhb_patroni.core.model import Member
from qhb_patroni.runtime.probe import PeerProber, peer_client_settings
from qhb_patroni.runtime.status import StatusBoard
from tests.fixtures.api import NOW, primary_server, status_view, two_node_cluster
from tests.fixtures.ports import free_port


def _server(restapi: Dict[str, Any], seen: List[str]) -> RestApiServer:
    board = StatusBoard(status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True))
    server = RestApiServer.from_config(dict(restapi, listen=f"127.0.0.1:{free_port()}"), board, clock=lambda: NOW)

    def record(_view: Any, _now: float, req: Request) -> Response:
        seen.append(req.headers.get("authorization", ""))
        return text_response(200, "ok")

    server.add_route("POST", "echo", record, unsafe=True)
    server.start()
    return server


def _member(server: RestApiServer) -> Member:
    host, port = server.address
    return Member(name="postgresql0", api_url=f"https://{host}:{port}/patroni")


def test_settings_prefer_ctl_then_restapi() -> None:
    tls, headers = peer_client_settings({
        "ctl": {"certfile": "/c/ctl.pem", "keyfile": "/c/ctl.key", "keyfile_password": "pw"},
        "restapi": {"certfile": "/r/api.pem", "keyfile": "/r/api.key", "cafile": "/r/ca.pem",
                    "authentication": {"username": "admin", "password": "secret"}},
    })
    assert tls == {"cert_reqs": "CERT_NONE", "assert_hostname": False, "cert_file": "/c/ctl.pem",
                   "key_file": "/c/ctl.key", "key_password": "pw", "ca_certs": "/r/ca.pem"}
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"admin:secret").decode()
    tls, headers = peer_client_settings({"restapi": {"certfile": "/r/api.pem", "keyfile": "/r/api.key"},
                                         "ctl": {"authentication": {"username": "ctl", "password": "p"}}})
    assert (tls["cert_file"], tls["key_file"]) == ("/r/api.pem", "/r/api.key")
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ctl:p").decode()
    tls, headers = peer_client_settings({})
    assert "cert_file" not in tls and "Authorization" not in headers


def test_probe_over_https_with_a_required_client_certificate(cert: Dict[str, str]) -> None:
    restapi = {**cert, "cafile": cert["certfile"], "verify_client": "required",
               "authentication": {"username": "admin", "password": "secret"}}
    seen: List[str] = []
    server = _server(restapi, seen)
    try:
        member = _member(server)
        configured = PeerProber(timeout=5.0, config={"restapi": restapi})
        status = configured.fetch(member)
        assert status is not None and status.role == "master" and status.in_recovery is False
        answer = configured.request(member, "POST", "/echo", json.dumps({}).encode())
        assert answer.status == 200
        assert seen == ["Basic " + base64.b64encode(b"admin:secret").decode()]
        bare = PeerProber(timeout=5.0)
        assert bare.fetch(member) is None  # no client certificate: the TLS handshake is refused
    finally:
        server.stop()


def test_reconfigure_takes_new_credentials(cert: Dict[str, str]) -> None:
    restapi = {**cert, "cafile": cert["certfile"], "verify_client": "required"}
    server = _server(restapi, [])
    try:
        prober = PeerProber(timeout=5.0, config={})
        assert prober.fetch(_member(server)) is None
        prober.reconfigure({"ctl": {"certfile": cert["certfile"], "keyfile": cert["keyfile"]}})
        assert prober.fetch(_member(server)) is not None
    finally:
        server.stop()
