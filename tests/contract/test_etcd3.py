"""etcd v3 specifics beyond the shared contract (spec 4.5): what is stored where,
the lease's life (lost, ttl change, close), host failover, authentication."""
from __future__ import annotations

import base64
import json
import shutil
import tempfile
import urllib.request
import uuid
from typing import Any, Dict, Iterator, Optional

import pytest

from qhb_patroni.dcs import from_config, keys
from qhb_patroni.dcs.base import DCSError
from qhb_patroni.dcs.etcd3 import Etcd3Store
from qhb_patroni.dcs.writer import ClusterDCS
from tests.fixtures.etcd import ETCD_BIN, EtcdProcess
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.etcd


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _rpc(server: EtcdProcess, path: str, body: Dict[str, Any], token: Optional[str] = None) -> Any:
    request = urllib.request.Request(server.url + "/v3" + path, data=json.dumps(body).encode(), method="POST")
    if token:
        request.add_header("Authorization", token)
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read().decode())


def _kv(server: EtcdProcess, key: str) -> Optional[Dict[str, Any]]:
    kvs = _rpc(server, "/kv/range", {"key": _b64(key)}).get("kvs") or []
    return kvs[0] if kvs else None


@pytest.fixture
def make(etcd_server: EtcdProcess, etcd_scope: str) -> Iterator[Any]:
    made = []

    def factory(name: str, ttl: float = 30, **section: Any) -> ClusterDCS:
        dcs = from_config({"scope": etcd_scope, "ttl": ttl, "retry_timeout": 3,
                           "etcd3": dict({"hosts": [etcd_server.host_port]}, **section)}, name)
        made.append(dcs)
        return dcs

    yield factory
    for dcs in made:
        dcs.close()


def test_keys_values_and_lease_are_patronis(etcd_server: EtcdProcess, make: Any, etcd_scope: str) -> None:
    a = make("a", ttl=25)
    assert a.touch_member({"conn_url": "postgres://127.0.0.1:5432/qhb", "state": "running"})
    assert a.attempt_to_acquire_leader() is not None
    assert a.set_config({"ttl": 25})
    store = a.store
    assert isinstance(store, Etcd3Store) and store.lease_id is not None
    leader = _kv(etcd_server, f"/service/{etcd_scope}/leader")
    assert leader is not None and base64.b64decode(leader["value"]).decode() == "a"
    assert leader["lease"] == store.lease_id
    member = _kv(etcd_server, f"/service/{etcd_scope}/members/a")
    assert member is not None and member["lease"] == store.lease_id
    assert json.loads(base64.b64decode(member["value"]))["conn_url"] == "postgres://127.0.0.1:5432/qhb"
    config = _kv(etcd_server, f"/service/{etcd_scope}/config")
    assert config is not None and "lease" not in config  # permanent
    ttl = _rpc(etcd_server, "/kv/lease/timetolive", {"ID": store.lease_id})
    assert ttl["grantedTTL"] == "25"
    assert a.get_cluster().leader.session == store.lease_id  # type: ignore[union-attr]


def test_lost_lease_is_granted_again(etcd_server: EtcdProcess, make: Any) -> None:
    a, b = make("a"), make("b")
    version = a.attempt_to_acquire_leader()
    lost = a.store.lease_id
    _rpc(etcd_server, "/kv/lease/revoke", {"ID": lost})
    assert b.get_cluster().leader is None  # revoking took the key with it
    a.store.keepalive()  # answers without a TTL: forgotten, no exception
    assert a.update_leader(version) is not None
    assert a.store.lease_id not in (None, lost)
    assert b.get_cluster().leader.name == "a"  # type: ignore[union-attr]


def test_ttl_change_grants_a_new_lease_and_keeps_the_leader(etcd_server: EtcdProcess, make: Any) -> None:
    a, b = make("a", ttl=30), make("b", ttl=30)
    version = a.attempt_to_acquire_leader()
    first = a.store.lease_id
    assert a.set_ttl(20)
    assert a.update_leader(version) is not None
    second = a.store.lease_id
    assert second not in (None, first)
    assert b.get_cluster().leader.session == second  # type: ignore[union-attr]
    assert _rpc(etcd_server, "/kv/lease/timetolive", {"ID": second})["grantedTTL"] == "20"


def test_close_revokes_the_lease(make: Any) -> None:
    a, b = make("a"), make("b")
    assert a.attempt_to_acquire_leader() is not None and a.touch_member({"state": "running"})
    a.close()
    view = b.get_cluster()
    assert view.leader is None and view.members == ()


def test_credentials_for_a_server_without_auth_are_not_an_error(make: Any) -> None:
    a = make("a", username="root", password="whatever")
    assert a.attempt_to_acquire_leader() is not None


def test_fails_over_to_the_next_host(etcd_server: EtcdProcess, make: Any) -> None:
    a = make("a", hosts=[f"127.0.0.1:{free_port()}", etcd_server.host_port])
    assert a.attempt_to_acquire_leader() is not None
    assert a.store.endpoint == etcd_server.url


def test_member_discovery_puts_the_cluster_urls_first(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = Etcd3Store([dead, etcd_server.url], keys.base_path(None, etcd_scope), retry_timeout=3)
    try:
        store.load()
        assert store.urls[0] == etcd_server.url and dead in store.urls
        proxied = Etcd3Store([dead, etcd_server.url], keys.base_path(None, etcd_scope), retry_timeout=3,
                             use_proxies=True)
        proxied.load()
        assert proxied.urls == [dead, etcd_server.url]  # use_proxies: no discovery
        proxied.close()
    finally:
        store.close()


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdProcess]:
    """A private etcd with authentication on: user root, password 'rootpw'."""
    import os

    if not os.path.exists(ETCD_BIN):
        pytest.skip(f"{ETCD_BIN} not installed")
    work_dir = tempfile.mkdtemp(prefix="qhb-etcd-auth-")
    server = EtcdProcess(work_dir, free_port(), free_port())
    try:
        server.start()
        _rpc(server, "/auth/user/add", {"name": "root", "password": "rootpw"})
        _rpc(server, "/auth/role/add", {"name": "root"})
        _rpc(server, "/auth/user/grant", {"user": "root", "role": "root"})
        _rpc(server, "/auth/enable", {})
        yield server
    finally:
        server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def test_authentication(auth_etcd: EtcdProcess) -> None:
    base = keys.base_path(None, "t-" + uuid.uuid4().hex[:10])
    good = Etcd3Store([auth_etcd.url], base, username="root", password="rootpw", retry_timeout=2)
    try:
        dcs = ClusterDCS(good, "a", base=base)
        assert dcs.attempt_to_acquire_leader() is not None
        good._token = "bogus.token.1"  # what an expired/revoked token looks like: authenticate again
        assert dcs.get_cluster().leader is not None
        assert good._token not in (None, "bogus.token.1")
    finally:
        good.close()
    for user, password in (("root", "wrong"), (None, None)):
        bad = Etcd3Store([auth_etcd.url], base, username=user, password=password, retry_timeout=2)
        try:
            with pytest.raises(DCSError) as info:
                bad.load()
            message = str(info.value)
            assert message.startswith(f"etcd3 {auth_etcd.url}: ")
            assert ("authentication failed" in message) if user else ("user name is empty" in message
                                                                       or "permission denied" in message)
        finally:
            bad.close()


@pytest.fixture(scope="module")
def tls_etcd() -> Iterator[Any]:
    import os

    from tests.contract.tls import OPENSSL, TlsEtcd, make_certs

    if not os.path.exists(ETCD_BIN) or OPENSSL is None:
        pytest.skip("needs etcd and openssl")
    work_dir = tempfile.mkdtemp(prefix="qhb-etcd-tls-")
    server = TlsEtcd(work_dir, make_certs(os.path.join(work_dir, "certs")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def test_tls_with_client_certificate(tls_etcd: Any) -> None:
    c = tls_etcd.certs
    scope = "t-" + uuid.uuid4().hex[:10]
    host = tls_etcd.url[len("https://"):]
    section = {"hosts": [host], "protocol": "https", "cacert": c["ca_pem"], "cert": c["client_pem"],
               "key": c["client_key"]}
    dcs = from_config({"scope": scope, "retry_timeout": 2, "etcd3": section}, "a")
    try:
        assert dcs.attempt_to_acquire_leader() is not None
        assert dcs.get_cluster().leader is not None
    finally:
        dcs.close()
    for wrong in ({"cacert": c["other-ca_pem"]}, {"cert": None, "key": None}):
        bad = from_config({"scope": scope, "retry_timeout": 1.5, "etcd3": dict(section, **wrong)}, "b")
        try:
            with pytest.raises(DCSError) as info:
                bad.get_cluster()
            message = str(info.value)
            assert message.startswith(f"etcd3 {tls_etcd.url}: ")
            if "cacert" in wrong:  # the server's certificate is not signed by the CA we trust
                assert "TLS error" in message and "CERTIFICATE_VERIFY_FAILED" in message
        finally:
            bad.close()
