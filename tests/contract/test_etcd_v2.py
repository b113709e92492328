"""etcd v2 specifics beyond the shared contract: host failover, request mapping (4.4)."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid

import pytest

from qhb_patroni.dcs import from_config, keys
from qhb_patroni.dcs.base import DCSError
from qhb_patroni.dcs.etcd import EtcdStore
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.etcd


def _raw(server: EtcdProcess, path: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(server.url + "/v2/keys" + path, timeout=5) as resp:
        return json.loads(resp.read().decode())  # type: ignore[no-any-return]


def test_fails_over_to_the_next_host(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    dcs = from_config({"scope": etcd_scope, "retry_timeout": 5,
                       "etcd": {"hosts": [dead, etcd_server.host_port]}}, "n0")
    assert dcs.attempt_to_acquire_leader() is not None
    assert dcs.get_cluster().leader is not None
    assert isinstance(dcs.store, EtcdStore) and dcs.store.endpoint == etcd_server.url
    dcs.delete_cluster()


def test_all_hosts_down_names_an_endpoint(etcd_scope: str) -> None:
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    store = EtcdStore(urls, keys.base_path(None, etcd_scope), retry_timeout=1.0)
    with pytest.raises(DCSError) as info:
        store.load()
    message = str(info.value)
    assert message.startswith("etcd http://127.0.0.1:") and message.endswith(": connection refused")
    assert any(u in message for u in urls)


def test_keys_and_ttls_as_patroni_writes_them(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    dcs = from_config({"scope": etcd_scope, "namespace": "/qhbtest", "ttl": 17,
                       "etcd": {"url": etcd_server.url}}, "pg0")
    dcs.attempt_to_acquire_leader()
    dcs.touch_member({"conn_url": "postgres://127.0.0.1:5432/postgres", "api_url": "http://127.0.0.1:8008/patroni",
                      "state": "running", "role": "master", "version": "3.0.2"})
    dcs.set_config({"ttl": 17})
    base = "/qhbtest/" + etcd_scope
    leader = _raw(etcd_server, base + "/leader")["node"]
    assert leader["value"] == "pg0" and 0 < leader["ttl"] <= 17
    member = _raw(etcd_server, base + "/members/pg0")["node"]
    assert member["value"] == ('{"conn_url":"postgres://127.0.0.1:5432/postgres",'
                               '"api_url":"http://127.0.0.1:8008/patroni","state":"running",'
                               '"role":"master","version":"3.0.2"}')
    assert 0 < member["ttl"] <= 17
    config = _raw(etcd_server, base + "/config")["node"]
    assert config["value"] == '{"ttl":17}' and "ttl" not in config  # permanent
    dcs.delete_cluster()


def test_reads_keys_written_by_another_client(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    """Values put by any etcd v2 client (as Patroni would) decode the same way."""
    base = f"/service/{etcd_scope}"
    for key, value in {"leader": "pg9", "members/pg9": '{"role":"primary","state":"running"}',
                       "sync": '{"leader":"pg9","sync_standby":null}', "optime/leader": "99"}.items():
        data = urllib.parse.urlencode({"value": value}).encode()
        req = urllib.request.Request(etcd_server.url + "/v2/keys" + base + "/" + key, data=data, method="PUT")
        urllib.request.urlopen(req, timeout=5).close()
    view = from_config({"scope": etcd_scope, "etcd": {"host": etcd_server.host_port}}, "x").get_cluster()
    assert view.leader is not None and view.leader.member is not None and view.leader.member.role == "master"
    assert view.sync is not None and view.sync.sync_standby == () and view.last_lsn == 99


def test_watch_with_an_index_outside_etcd_history_reports_a_change(etcd_server: EtcdProcess) -> None:
    scope = "t-" + uuid.uuid4().hex[:12]
    dcs = from_config({"scope": scope, "etcd": {"url": etcd_server.url}}, "a")
    # etcd v2 keeps the last 1000 events; push index 2 out of that window
    for i in range(1010):
        dcs.store.put("noise", str(i))
    assert dcs.store.watch(keys.LEADER, None, 1, 30.0) is True  # 401 "index cleared" -> report a change
    dcs.delete_cluster()


def test_cluster_members_are_discovered_unless_proxies(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    configured = f"localhost:{etcd_server.client_port}"  # etcd advertises 127.0.0.1
    dcs = from_config({"scope": etcd_scope, "etcd": {"host": configured}}, "n0")
    dcs.get_cluster()
    assert isinstance(dcs.store, EtcdStore)
    assert dcs.store.urls == [etcd_server.url, f"http://{configured}"]
    proxied = from_config({"scope": etcd_scope, "etcd": {"host": configured, "use_proxies": True}}, "n0")
    proxied.get_cluster()
    assert isinstance(proxied.store, EtcdStore) and proxied.store.urls == [f"http://{configured}"]
