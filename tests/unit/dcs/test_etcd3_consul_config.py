"""Pure parts of the etcd3 and Consul backends: endpoints, gateway prefix, key
ranges, session TTL arithmetic, and what the factory builds from a section."""
from __future__ import annotations

import base64
from typing import Any, Dict, List, Optional, Tuple

import pytest

from qhb_patroni.dcs import endpoints, from_config
from qhb_patroni.dcs.consul import ConsulStore, go_duration, leader_expiry, refused_ttl_minimum, session_ttl
from qhb_patroni.dcs.etcd3 import Etcd3Store, api_prefix, endpoints_from_config, prefix_end


@pytest.mark.parametrize(
    "config, urls, user, password",
    [
        ({"host": "10.0.0.1"}, ["http://10.0.0.1:2379"], None, None),
        ({"host": "10.0.0.1:4001", "protocol": "https"}, ["https://10.0.0.1:4001"], None, None),
        ({"hosts": ["a:1", "b:2"]}, ["http://a:1", "http://b:2"], None, None),
        ({"hosts": "a:1, b"}, ["http://a:1", "http://b:2379"], None, None),
        ({"url": "https://u:p%40ss@etcd.example:2379"}, ["https://etcd.example:2379"], "u", "p@ss"),
        ({"proxy": "http://proxy:8080", "host": "ignored"}, ["http://proxy:8080"], None, None),
        ({"hosts": ["[::1]:2379"], "username": "root", "password": "pw"}, ["http://[::1]:2379"], "root", "pw"),
    ],
)
def test_etcd3_endpoints(config: Dict[str, Any], urls: List[str], user: Optional[str],
                         password: Optional[str]) -> None:
    assert endpoints_from_config(config) == (urls, user, password)


def test_etcd3_config_errors() -> None:
    with pytest.raises(ValueError, match="one of host, hosts, url, proxy or srv"):
        endpoints_from_config({})
    with pytest.raises(ValueError, match="etcd3.srv: no etcd found through the DNS SRV records of 'example.org'"):
        endpoints.endpoints_from_config({"srv": "example.org"}, "etcd3", resolve=lambda _name: [])


SRV = {
    "_etcd-client-ssl._tcp.example.org": [],
    "_etcd-client._tcp.example.org": [("e1.example.org", 2379), ("e2.example.org", 2379)],
    "_etcd-client-ssl-prod._tcp.example.org": [("p1.example.org", 2380)],
    "_etcd-server._tcp.peers.org": [("peer1.peers.org", 2380)],
}


def _fake_resolve(name: str) -> List[Tuple[str, int]]:
    return SRV.get(name, [])


def test_etcd_srv_discovery_takes_the_first_kind_with_records() -> None:
    found = endpoints.endpoints_from_config({"srv": "example.org", "hosts": ["ignored:1"]}, "etcd",
                                            resolve=_fake_resolve)
    assert found == (["http://e1.example.org:2379", "http://e2.example.org:2379"], None, None)
    # srv_suffix names other records; -ssl records mean https
    assert endpoints.srv_endpoints("example.org", "prod", _fake_resolve) == ["https://p1.example.org:2380"]
    # no records at all: hosts is the fallback, as in 3.0.2
    assert endpoints.endpoints_from_config({"srv": "none.org", "hosts": ["h:1"]}, "etcd",
                                           resolve=_fake_resolve)[0] == ["http://h:1"]


def test_etcd_srv_server_records_list_the_members() -> None:
    asked: List[str] = []

    def members(url: str) -> List[str]:
        asked.append(url)
        return ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]

    urls = endpoints.srv_endpoints("peers.org", None, _fake_resolve, members)
    assert urls == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    assert asked == ["http://peer1.peers.org:2380/members"]


@pytest.mark.parametrize("version, prefix", [("3.5.9", "/v3"), ("3.4.23", "/v3"), ("3.6.0", "/v3"),
                                             ("3.3.27", "/v3beta"), ("3.2.32", "/v3alpha"),
                                             ("garbage", "/v3")])
def test_gateway_prefix(version: str, prefix: str) -> None:
    assert api_prefix(version) == prefix


def test_prefix_range_end() -> None:
    assert base64.b64decode(prefix_end("/service/b/")) == b"/service/b0"  # '/' + 1
    assert base64.b64decode(prefix_end("a\xff")) == "a\xff".encode()[:-1] + b"\xc0"


def test_etcd3_factory() -> None:
    dcs = from_config({"scope": "batman", "ttl": 20, "etcd3": {"hosts": ["h1:2379"], "use_proxies": True,
                                                                "username": "u", "password": "p"}}, "pg0")
    store = dcs.store
    assert isinstance(store, Etcd3Store)
    assert store.urls == ["http://h1:2379"] and store.use_proxies and store.base == "/service/batman"
    assert store.lease_id is None  # granted lazily by the first ephemeral put


@pytest.mark.parametrize("ttl, agent_min, session, expiry", [
    (30, None, 15.0, 30.0), (10, None, 5.0, 10.0), (25, None, 12.5, 25.0), (5, 1.0, 2.5, 5.0),
    (10, 10.0, 10.0, 20.0), (20, 10.0, 10.0, 20.0), (60, 10.0, 30.0, 60.0), (2, 10.0, 10.0, 20.0),
    (1e6, None, 86400.0, 172800.0)])
def test_consul_session_ttl(ttl: float, agent_min: float, session: float, expiry: float) -> None:
    assert session_ttl(ttl, agent_min) == session and leader_expiry(ttl, agent_min) == expiry


def test_consul_stock_leader_expiry() -> None:
    assert leader_expiry(10) == 20.0 and leader_expiry(30) == 30.0  # stock session_ttl_min 10 s


@pytest.mark.parametrize("text, seconds", [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5s", 1.5),
                                           ("24h0m0s", 86400.0), ("", None), ("10", None), ("s", None),
                                           ("10x", None), ("-1s", None)])
def test_go_duration(text: str, seconds: float) -> None:
    assert go_duration(text) == seconds


@pytest.mark.parametrize("message, minimum", [
    ("Invalid Session TTL '5000000000', must be between [10s=24h0m0s]", 10.0),
    ("500 Invalid Session TTL '500000000', must be between [1s=24h0m0s]", 1.0),
    ("Invalid Session TTL '1', must be between [1m0s=24h0m0s]", 60.0),
    ("Invalid Session TTL", None), ("must be between [soon=later]", None)])
def test_refused_ttl_minimum(message: str, minimum: float) -> None:
    assert refused_ttl_minimum(message) == minimum


def test_consul_factory() -> None:
    dcs = from_config({"scope": "batman", "namespace": "/ns/",
                       "consul": {"host": "10.1.1.1:8501", "token": "t", "consistency": "consistent"}}, "pg0")
    store = dcs.store
    assert isinstance(store, ConsulStore)
    assert store.prefix == "ns/batman/" and store.session_name == "batman-pg0"
    assert store.endpoint == "http://10.1.1.1:8501" and store.settings.token == "t"
    assert store.session is None  # created lazily by the first ephemeral put


def test_etcd3_path_never_imports_python_etcd() -> None:
    """etcd 3.6 has no v2 API: nothing on the etcd3 path may need python-etcd."""
    import subprocess
    import sys

    code = ("import sys\nfrom qhb_patroni.dcs import from_config\n"
            "dcs = from_config({'scope': 's', 'etcd3': {'host': '127.0.0.1:1'}}, 'n')\n"
            "print('etcd' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
