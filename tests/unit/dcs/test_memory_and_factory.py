"""Memory-backend specifics (fake clock, partitions, leases) and the from_config factory."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from qhb_patroni.dcs import BACKENDS, from_config
from qhb_patroni.dcs.base import DCSError
from qhb_patroni.dcs.etcd import EtcdStore, endpoints_from_config
from qhb_patroni.dcs.memory import ManualClock, MemoryServer


def test_fake_clock_watch_never_blocks() -> None:
    clock = ManualClock()
    server = MemoryServer(clock=clock)
    a, b = server.client("a"), server.client("b")
    assert a.put("leader", "a", ephemeral=True) is not None
    snap = b.load()
    version = snap.nodes["leader"].version
    # Nothing changed: returns "timed out" at once even with a long timeout.
    assert b.watch("leader", version, snap.index, 3600.0) is False
    clock.advance(31)  # ttl 30 -> expired
    assert b.watch("leader", version, snap.index, 3600.0) is True


def test_keepalive_refreshes_every_key_of_the_lease() -> None:
    clock = ManualClock()
    server = MemoryServer(clock=clock)
    a = server.client("a")
    a.set_ttl(10)
    a.put("leader", "a", ephemeral=True)
    a.put("members/a", "{}", ephemeral=True)
    a.put("config", "{}")
    clock.advance(8)
    a.keepalive()
    clock.advance(8)
    assert set(a.load().nodes) == {"leader", "members/a", "config"}
    clock.advance(3)
    assert set(a.load().nodes) == {"config"}


def test_owner_and_index() -> None:
    server = MemoryServer(clock=ManualClock())
    a = server.client("a")
    v1 = a.put("leader", "a", ephemeral=True)
    v2 = a.put("config", "{}")
    assert v1 is not None and v2 is not None and v2 > v1
    snap = a.load()
    assert snap.nodes["leader"].ephemeral_owner == a.lease_id
    assert snap.nodes["config"].ephemeral_owner is None
    assert snap.index is not None and snap.index >= v2


def test_partition_is_per_client_and_names_the_server() -> None:
    server = MemoryServer(clock=ManualClock(), name="dcs0")
    a, b = server.client("a"), server.client("b")
    server.partition("a")
    with pytest.raises(DCSError, match="memory dcs0"):
        a.load()
    with pytest.raises(DCSError):
        a.put("x", "1")
    assert a.watch("leader", None, None, 5.0) is False
    assert b.put("x", "1") is not None
    server.heal("a")
    assert a.load().nodes["x"].value == "1"


def test_clusters_are_separate_on_one_server() -> None:
    server = MemoryServer(clock=ManualClock())
    one = server.client("a", base="/service/one")
    two = server.client("a2", base="/service/two")
    one.put("leader", "a")
    assert two.load().nodes == {}
    two.delete_tree()
    assert "leader" in one.load().nodes


def test_close_releases_the_lease() -> None:
    server = MemoryServer(clock=ManualClock())
    a, b = server.client("a"), server.client("b")
    a.put("leader", "a", ephemeral=True)
    a.put("config", "{}")
    a.close()
    assert set(b.load().nodes) == {"config"}


# ---- factory ---------------------------------------------------------------------
def test_backends_dict_is_explicit() -> None:
    assert set(BACKENDS) == {"etcd", "etcd3", "consul"}


@pytest.mark.parametrize("section, store", [("consul", "ConsulStore"), ("etcd3", "Etcd3Store")])
def test_section_chooses_the_backend(section: str, store: str) -> None:
    dcs = from_config({"scope": "s", section: {"host": "127.0.0.1:1"}}, "n")
    assert type(dcs.store).__name__ == store


def test_no_dcs_section_names_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="'etcd'") as info:
        from_config({"scope": "s"}, "n")
    assert "'consul'" in str(info.value) and "'etcd3'" in str(info.value)


def test_scope_required() -> None:
    with pytest.raises(ValueError, match="scope"):
        from_config({"etcd": {"host": "h"}}, "n")


def test_from_config_etcd_defaults() -> None:
    dcs = from_config({"scope": "batman", "etcd": {"hosts": "h1:2379,h2"}}, "pg0")
    assert dcs.name == "pg0" and dcs.ttl == 30.0 and dcs.retry_timeout == 10.0
    assert dcs.base == "/service/batman"
    assert isinstance(dcs.store, EtcdStore)
    assert dcs.store.urls == ["http://h1:2379", "http://h2:2379"]
    dcs2 = from_config({"scope": "b", "namespace": "/x/", "ttl": 20, "retry_timeout": "5",
                        "etcd": {"host": "h"}}, "pg0")
    assert dcs2.ttl == 20.0 and dcs2.retry_timeout == 5.0 and dcs2.base == "/x/b"
    assert dcs2.set_ttl(25) is True and dcs2.set_ttl(25) is False and dcs2.ttl == 25.0


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
def test_etcd_endpoints_from_config(
    config: Dict[str, Any], urls: List[str], user: Optional[str], password: Optional[str]
) -> None:
    assert endpoints_from_config(config) == (urls, user, password)


def test_etcd_config_errors() -> None:
    with pytest.raises(ValueError, match="one of host"):
        endpoints_from_config({})
    with pytest.raises(ValueError, match="srv"):
        endpoints_from_config({"srv": "example.com"})
