"""The schema table is consistent with itself and with the environment parser."""
from __future__ import annotations

from collections import Counter
from typing import Any, Tuple

import pytest

from qhb_patroni.config.checks import check
from qhb_patroni.config.env import environment_config
from qhb_patroni.config.schema import DYNAMIC_KEYS, LOCAL_KEYS, Key, Kind, Scope, find

# Kind -> (environment text, value expected after parsing)
SAMPLES = {
    Kind.STR: ("x", "x"),
    Kind.SCALAR: ("x", "x"),
    Kind.INT: ("7", 7),
    Kind.BOOL: ("on", True),
    Kind.HOSTPORT: ("127.0.0.1:1", "127.0.0.1:1"),
    Kind.BIND: ("127.0.0.1:1", "127.0.0.1:1"),
    Kind.LISTEN: ("127.0.0.1,::1:1", "127.0.0.1,::1:1"),
    Kind.ADDRESS: ("h:1", "h:1"),
    Kind.HOSTS: ("a:1,b:2", ["a:1", "b:2"]),
    Kind.URL: ("http://h:1", "http://h:1"),
    Kind.STR_LIST: ("a,b", ["a", "b"]),
    Kind.LIST: ("[a]", ["a"]),
    Kind.MAP: ("a: 1", {"a": 1}),
}

ENV_KEYS = [k for k in LOCAL_KEYS if k.env]


def _get(config: Any, parts: Tuple[str, ...]) -> Any:
    for part in parts:
        config = config[part]
    return config


def test_paths_are_unique() -> None:
    for table in (LOCAL_KEYS, DYNAMIC_KEYS):
        assert [p for p, n in Counter(k.path for k in table).items() if n > 1] == []


def test_every_kind_has_an_expected_text() -> None:
    assert all(kind.expected for kind in Kind)


def test_required_keys_are_the_documented_ones() -> None:
    assert [k.path for k in LOCAL_KEYS if k.required] == [
        "name", "scope", "restapi", "restapi.listen", "postgresql", "postgresql.listen", "postgresql.data_dir",
        "postgresql.authentication", "postgresql.authentication.superuser",
        "postgresql.authentication.replication", "postgresql.authentication.superuser.username",
        "postgresql.authentication.replication.username",
    ]


def test_dynamic_rows() -> None:
    ttl = find("bootstrap.dcs.ttl")
    assert ttl is not None and ttl.scope is Scope.DYNAMIC and ttl.default == 30
    assert find("postgresql.data_dir", DYNAMIC_KEYS) is None  # local only
    assert find("postgresql.use_slots", DYNAMIC_KEYS) is not None
    assert find("bootstrap.dcs.postgresql.listen") is None


@pytest.mark.parametrize("key", ENV_KEYS, ids=lambda k: k.env)
def test_env_variable_lands_on_its_key(key: Key) -> None:
    assert key.env is not None
    text, expected = SAMPLES[key.kind]
    if key.choices:
        text = expected = key.choices[-1]
    config, origins = environment_config({key.env: text}, {"etcd": {}, "etcd3": {}})
    assert _get(config, key.parts) == expected
    assert origins[key.parts] == key.env
    assert check(key.kind, expected, key.choices) == []


def test_markdown_reference_has_one_row_per_key() -> None:
    from qhb_patroni.config.reference import markdown_reference

    text = markdown_reference()
    rows = text.splitlines()[2:]
    assert len(rows) == len(LOCAL_KEYS)
    assert ("| `restapi.listen` | 'host:port' | yes |  | local | `PATRONI_RESTAPI_LISTEN` | address the REST API "
            "binds to; empty host or `*` = all interfaces |") in rows
    assert all(row.count(" | ") == 6 for row in rows)
