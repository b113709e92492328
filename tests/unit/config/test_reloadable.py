"""A reload names the local keys that only a restart of the daemon applies."""
from __future__ import annotations

from qhb_patroni.config.reloadable import restart_only_changes

BASE = {
    "scope": "c", "name": "n0", "namespace": "/service/",
    "etcd": {"hosts": ["127.0.0.1:2379"]},
    "restapi": {"listen": "127.0.0.1:8008"},
    "postgresql": {"data_dir": "/d", "bin_dir": "/b", "parameters": {"work_mem": "4MB"}},
    "tags": {"nofailover": False},
}


def changed(**kw: object) -> dict:
    new = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for dotted, value in kw.items():
        *parents, last = dotted.split("__")
        node = new
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return new


def test_nothing_changed_or_only_reloadable_keys() -> None:
    assert restart_only_changes(BASE, changed()) == []
    assert restart_only_changes(BASE, changed(tags={"nofailover": True}, restapi={"listen": "0.0.0.0:8008"})) == []
    assert restart_only_changes(BASE, changed(postgresql__parameters={"work_mem": "8MB"})) == []


def test_restart_only_keys_are_named() -> None:
    new = changed(etcd={"hosts": ["10.0.0.1:2379"]}, postgresql__data_dir="/other", namespace="/x/")
    assert restart_only_changes(BASE, new) == ["namespace", "etcd", "postgresql.data_dir"]
    assert restart_only_changes(BASE, changed(postgresql__bin_dir=None)) == ["postgresql.bin_dir"]
    assert restart_only_changes(BASE, changed(consul={"host": "127.0.0.1:8500"})) == ["consul"]
