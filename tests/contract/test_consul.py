"""Consul specifics beyond the shared contract (spec 4.6): the session, what is
stored where, ttl changes, lost sessions, ACL tokens and config parsing."""
from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any, Iterator, Optional

import pytest

from qhb_patroni.dcs import from_config, keys
from qhb_patroni.dcs.base import DCSError
from qhb_patroni.dcs.consul import ConsulSettings, ConsulStore
from qhb_patroni.dcs.writer import ClusterDCS
from tests.fixtures.consul import ConsulProcess, consul_available, private_agent

pytestmark = pytest.mark.consul


def _raw(server: ConsulProcess, path: str, method: str = "GET", token: Optional[str] = None) -> Any:
    request = urllib.request.Request(server.url + path, method=method)
    if token:
        request.add_header("X-Consul-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return json.loads(resp.read().decode() or "null")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


@pytest.fixture
def scope() -> str:
    return "c-" + uuid.uuid4().hex[:10]


@pytest.fixture
def make(consul_server: ConsulProcess, scope: str) -> Iterator[Any]:
    made = []

    def factory(name: str, ttl: float = 30, **section: Any) -> ClusterDCS:
        dcs = from_config({"scope": scope, "ttl": ttl, "retry_timeout": 3,
                           "consul": dict({"host": consul_server.host_port}, **section)}, name)
        made.append(dcs)
        return dcs

    yield factory
    for dcs in made:
        dcs.close()


def test_session_and_keys_are_patronis(consul_server: ConsulProcess, make: Any, scope: str) -> None:
    a = make("a", ttl=30)
    assert a.touch_member({"conn_url": "postgres://127.0.0.1:5432/qhb", "state": "running", "role": "replica"})
    assert a.attempt_to_acquire_leader() is not None
    store = a.store
    assert isinstance(store, ConsulStore) and store.session is not None
    info = _raw(consul_server, f"/v1/session/info/{store.session}")[0]
    assert info["Name"] == f"{scope}-a" and info["Behavior"] == "delete"
    assert info["TTL"] == "15s" and info["LockDelay"] == 1_000_000  # ttl/2; 0.001 s in ns
    assert info["NodeChecks"] in ([], None)  # no serfHealth: only the TTL decides
    leader = _raw(consul_server, f"/v1/kv/service/{scope}/leader")[0]
    assert leader["Session"] == store.session
    member = _raw(consul_server, f"/v1/kv/service/{scope}/members/a")[0]
    assert member["Session"] == store.session
    with urllib.request.urlopen(consul_server.url + f"/v1/kv/service/{scope}/leader?raw", timeout=5) as resp:
        assert resp.read().decode() == "a"


def test_small_ttl_is_clamped_to_the_agent_minimum(consul_server: ConsulProcess, make: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    a = make("a", ttl=10)  # ttl/2 = 5 s: a stock agent refuses that and states its minimum
    with caplog.at_level("WARNING", logger="qhb_patroni.dcs.consul"):
        assert a.attempt_to_acquire_leader() is not None
        info = _raw(consul_server, f"/v1/session/info/{a.store.session}")[0]
        assert info["TTL"] == "10s"
        first = a.store.session
        _raw(consul_server, f"/v1/session/destroy/{first}", method="PUT")
        a.store.keepalive()  # renew answers 404: forgotten
        assert a.attempt_to_acquire_leader() is not None  # a new session: asks for 10 s at once
        assert a.store.session not in (None, first)
    warnings = [r.getMessage() for r in caplog.records if "session_ttl_min" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "below 10s" in warnings[0] and "effective ttl is 20s instead of 10s" in warnings[0]


@pytest.fixture(scope="module")
def low_min_server() -> Iterator[ConsulProcess]:
    """An agent configured with session_ttl_min 1s, as the fast failover profile needs."""
    with private_agent("qhb-consul-lowmin-", extra_hcl=['session_ttl_min = "1s"']) as server:
        yield server


@pytest.mark.parametrize("ttl, session, warned", [(10, "5s", False), (5, "2.5s", False), (1, "1s", True)])
def test_session_ttl_is_half_the_ttl_where_the_agent_allows(
        low_min_server: ConsulProcess, scope: str, caplog: pytest.LogCaptureFixture,
        ttl: float, session: str, warned: bool) -> None:
    dcs = from_config({"scope": scope, "ttl": ttl, "retry_timeout": 3,
                       "consul": {"host": low_min_server.host_port}}, "a")
    try:
        with caplog.at_level("WARNING", logger="qhb_patroni.dcs.consul"):
            assert dcs.attempt_to_acquire_leader() is not None
        info = _raw(low_min_server, f"/v1/session/info/{dcs.store.session}")[0]
        assert info["TTL"] == session
        assert any("session_ttl_min" in r.getMessage() for r in caplog.records) is warned
    finally:
        dcs.close()


def test_ttl_change_makes_a_new_session_and_keeps_the_leader(consul_server: ConsulProcess, make: Any) -> None:
    a, b = make("a", ttl=30), make("b", ttl=30)
    version = a.attempt_to_acquire_leader()
    assert a.touch_member({"state": "running"})
    first = a.store.session
    assert a.set_ttl(50)
    version = a.update_leader(version)
    assert version is not None  # moved to the new session, not lost
    second = a.store.session
    assert second is not None and second != first
    view = b.get_cluster()
    assert view.leader is not None and view.leader.name == "a" and view.leader.session == second
    assert a.touch_member({"state": "running"})
    assert b.get_cluster().member("a") is not None
    assert b.attempt_to_acquire_leader() is None
    assert _raw(consul_server, f"/v1/session/info/{second}")[0]["TTL"] == "25s"


def test_lost_session_is_recreated(consul_server: ConsulProcess, make: Any) -> None:
    a, b = make("a"), make("b")
    version = a.attempt_to_acquire_leader()
    lost = a.store.session
    _raw(consul_server, f"/v1/session/destroy/{lost}", method="PUT")
    assert b.get_cluster().leader is None  # behavior=delete took the key with it
    a.store.keepalive()  # renew answers 404: forgotten, no exception
    assert a.update_leader(version) is not None  # re-acquired with a new session
    assert a.store.session not in (None, lost)
    assert b.get_cluster().leader.name == "a"  # type: ignore[union-attr]


def test_close_destroys_the_session_and_its_keys(make: Any) -> None:
    a, b = make("a"), make("b")
    assert a.attempt_to_acquire_leader() is not None and a.touch_member({"state": "running"})
    a.close()
    view = b.get_cluster()
    assert view.leader is None and view.members == ()


def test_settings_from_section() -> None:
    s = ConsulSettings({"url": "https://consul.example:8501", "token": "t", "dc": "dc2",
                        "consistency": "stale", "cacert": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"})
    assert (s.scheme, s.host, s.port, s.url) == ("https", "consul.example", 8501, "https://consul.example:8501")
    assert (s.token, s.dc, s.consistency, s.verify, s.cert) == ("t", "dc2", "stale", "/ca.pem", ("/c.pem", "/k.pem"))
    d = ConsulSettings({})
    assert (d.url, d.token, d.verify, d.cert, d.checks) == ("http://127.0.0.1:8500", None, True, None, [])
    assert ConsulSettings({"host": "10.0.0.1", "port": 8600}).url == "http://10.0.0.1:8600"
    assert ConsulSettings({"host": "10.0.0.1:8555", "verify": False}).verify is False
    with pytest.raises(ValueError):
        ConsulSettings({"consistency": "eventual"})


@pytest.fixture(scope="module")
def acl_server() -> Iterator[ConsulProcess]:
    with private_agent("qhb-consul-acl-", acl_token="root-secret") as server:
        yield server


def test_acl_token_is_sent_and_a_bad_one_is_a_clear_error(acl_server: ConsulProcess, scope: str) -> None:
    base = keys.base_path(None, scope)

    def client(token: Optional[str]) -> ClusterDCS:
        section = {"url": acl_server.url, **({"token": token} if token else {})}
        store = ConsulStore(ConsulSettings(section), base, session_name=f"{scope}-x", retry_timeout=2)
        return ClusterDCS(store, "x", base=base)

    good = client("root-secret")
    try:
        assert good.attempt_to_acquire_leader() is not None
        assert good.get_cluster().leader is not None
    finally:
        good.close()
    bad = client("wrong-token")
    for call in (bad.get_cluster, bad.attempt_to_acquire_leader, lambda: bad.set_config({"ttl": 30})):
        with pytest.raises(DCSError) as info:
            call()
        assert acl_server.url in str(info.value) and "ACL not found" in str(info.value)
    anonymous = client(None)
    with pytest.raises(DCSError) as info:  # anonymous reads see nothing under deny; writes are refused
        anonymous.set_config({"ttl": 30})
    assert "Permission denied" in str(info.value) or "permission denied" in str(info.value)


def test_tls_with_client_certificate(tmp_path: Any) -> None:
    from tests.contract.tls import OPENSSL, make_certs
    from tests.fixtures.ports import free_port

    if not consul_available() or OPENSSL is None:
        pytest.skip("needs consul and openssl")
    c = make_certs(str(tmp_path / "certs"))
    https_port = free_port()
    server = ConsulProcess(str(tmp_path / "agent"), extra_hcl=[
        f"ports {{ https = {https_port} }}", f'cert_file = "{c["server_pem"]}"', f'key_file = "{c["server_key"]}"',
        f'ca_file = "{c["ca_pem"]}"', "verify_incoming_https = true"])
    server.start()
    url = f"https://127.0.0.1:{https_port}"
    base = keys.base_path(None, "c-" + uuid.uuid4().hex[:10])
    section = {"url": url, "cacert": c["ca_pem"], "cert": c["client_pem"], "key": c["client_key"]}
    try:
        good = ClusterDCS(ConsulStore(ConsulSettings(section), base, retry_timeout=2), "a", base=base)
        try:
            assert good.attempt_to_acquire_leader() is not None
            assert good.get_cluster().leader is not None
        finally:
            good.close()
        for wrong in ({"cacert": c["other-ca_pem"]}, {"cert": None, "key": None}):
            settings = ConsulSettings(dict(section, **wrong))
            bad = ClusterDCS(ConsulStore(settings, base, retry_timeout=1.5), "b", base=base)
            with pytest.raises(DCSError) as info:
                bad.get_cluster()
            assert str(info.value).startswith(f"consul {url}: ") and "TLS error" in str(info.value)
            bad.close()
    finally:
        server.stop()


def test_register_service_follows_the_member_key(consul_server: ConsulProcess, make: Any, scope: str) -> None:
    a = make("a", ttl=30, register_service=True, service_tags=["qhb"], service_check_interval="1s")
    data = {"conn_url": "postgres://127.0.0.2:5433/qhb", "api_url": "http://127.0.0.2:8009/patroni",
            "state": "running", "role": "master"}

    def registered() -> Any:
        return (_raw(consul_server, "/v1/agent/services") or {}).get(f"{scope}/a")

    assert a.touch_member(data)
    service = registered()
    assert service is not None and service["Service"] == scope and service["Address"] == "127.0.0.2"
    assert service["Port"] == 5433 and service["Tags"] == ["qhb", "master", "primary"]
    assert service["EnableTagOverride"] is True

    def check() -> Any:
        checks = _raw(consul_server, "/v1/agent/checks") or {}
        return next((c for c in checks.values() if c["ServiceID"] == f"{scope}/a"), None)

    assert check()["Type"] == "http"
    # Consul 1.8.7 does not show the check's definition; its output names the URL once it ran
    deadline = time.monotonic() + 20
    while "http://127.0.0.2:8009/master" not in check()["Output"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "http://127.0.0.2:8009/master" in check()["Output"]
    assert a.touch_member(dict(data, role="replica"))
    assert registered()["Tags"] == ["qhb", "replica"]
    assert a.touch_member(dict(data, state="stopped"))
    assert registered() is None


def test_service_name_mapping() -> None:
    from qhb_patroni.dcs.consul import service_name

    assert service_name("Batman_1.prod db") == "batman-1-prod-db"
    assert service_name("caf\u00e9") == "cafu0233"
    assert len(service_name("x" * 300)) == 230


def test_a_renewal_never_takes_a_lock_another_session_holds_even_under_our_name(
        consul_server: ConsulProcess, make: Any, scope: str) -> None:
    """A daemon restarted after a crash (or a reset) finds the leader key still holding
    its own name, locked by its previous process's session.  Renewing with the key's
    current version (the writer's by-name fallback) must fail, not move the lock to the
    new session: only the old session's expiry frees the key."""
    old, new, other = make("a"), make("a"), make("b")
    assert old.attempt_to_acquire_leader() is not None
    held_by = old.store.session
    node = other.store.load().nodes[keys.LEADER]
    assert node.value == "a" and node.ephemeral_owner == held_by
    assert new.store.put(keys.LEADER, "a", version=node.version, ephemeral=True) is None
    assert new.update_leader(node.version) is None
    assert new.update_leader(None) is None
    after = other.store.load().nodes[keys.LEADER]
    assert (after.value, after.ephemeral_owner, after.version) == ("a", held_by, node.version)
    assert new.store.session not in (None, held_by)
