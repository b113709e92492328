"""Broken configurations: each one gives its exact one-line message."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List

import pytest
import yaml

from qhb_patroni.config import ConfigError, load_config
from tests.unit.config.helpers import base

Mutation = Callable[[Dict[str, Any]], None]


def _write(tmp_path: Any, config: Dict[str, Any]) -> str:
    path = os.path.join(str(tmp_path), "qhb0.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    return path


def _error(path: str, env: Dict[str, str] = {}) -> ConfigError:  # noqa: B006 (never mutated)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=env)
    return info.value


def _set(path: str, value: Any) -> Mutation:
    def mutate(config: Dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(config: Dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


# (id, mutation, message after "<file>: ")
CASES: List[Any] = [
    ("missing name", _drop("name"), "name: missing required key"),
    ("missing scope", _drop("scope"), "scope: missing required key"),
    ("empty name", _set("name", ""), "name: must not be empty"),
    ("null scope", _set("scope", None), "scope: missing required value"),
    ("name not a string", _set("name", ["a"]), "name: expected a string, got a list"),
    ("missing restapi", _drop("restapi"), "restapi: missing required key"),
    ("missing restapi.listen", _drop("restapi.listen"), "restapi.listen: missing required key"),
    ("restapi.listen without port", _set("restapi.listen", "127.0.0.1"),
     "restapi.listen: expected 'host:port', got '127.0.0.1'"),
    ("restapi.connect_address bad port", _set("restapi.connect_address", "h:99999"),
     "restapi.connect_address: expected 'host:port', got 'h:99999'"),
    ("postgresql.listen only a port", _set("postgresql.listen", 5432),
     "postgresql.listen: expected 'host:port', got 5432"),
    ("postgresql.listen without port", _set("postgresql.listen", "127.0.0.1"),
     "postgresql.listen: expected 'host:port', got '127.0.0.1'"),
    ("missing data_dir", _drop("postgresql.data_dir"), "postgresql.data_dir: missing required key"),
    ("empty data_dir", _set("postgresql.data_dir", ""), "postgresql.data_dir: must not be empty"),
    ("missing superuser", _drop("postgresql.authentication.superuser"),
     "postgresql.authentication.superuser: missing required key"),
    ("missing replication username", _drop("postgresql.authentication.replication.username"),
     "postgresql.authentication.replication.username: missing required key"),
    ("rewind without username", _set("postgresql.authentication.rewind", {"password": "x"}),
     "postgresql.authentication.rewind.username: missing required key"),
    ("postgresql not a mapping", _set("postgresql", "pg"), "postgresql: expected a mapping, got 'pg'"),
    ("ttl not an integer", _set("bootstrap.dcs.ttl", "abc"), "bootstrap.dcs.ttl: expected an integer, got 'abc'"),
    ("loop_wait a boolean", _set("bootstrap.dcs.loop_wait", True),
     "bootstrap.dcs.loop_wait: expected an integer, got true"),
    ("synchronous_mode not a boolean", _set("bootstrap.dcs.synchronous_mode", "yes please"),
     "bootstrap.dcs.synchronous_mode: expected a boolean, got 'yes please'"),
    ("use_pg_rewind not a boolean", _set("bootstrap.dcs.postgresql.use_pg_rewind", "sometimes"),
     "bootstrap.dcs.postgresql.use_pg_rewind: expected a boolean, got 'sometimes'"),
    ("initdb two-key map", _set("bootstrap.initdb", [{"encoding": "UTF8", "locale": "C"}, "data-checksums"]),
     "bootstrap.initdb[0]: expected a string or a single-key mapping, got a mapping with 2 keys"),
    ("initdb a number", _set("bootstrap.initdb", 5),
     "bootstrap.initdb: expected a list of strings or single-key mappings, or a mapping, got 5"),
    ("initdb list item", _set("bootstrap.initdb", ["data-checksums", 3]),
     "bootstrap.initdb[1]: expected a string or a single-key mapping, got 3"),
    ("qhb_hba not a list", _set("bootstrap.qhb_hba", "host all all 0.0.0.0/0 md5"),
     "bootstrap.qhb_hba: expected a list of strings, got 'host all all 0.0.0.0/0 md5'"),
    ("pg_hba item not a string", _set("bootstrap.pg_hba", ["host all all 0.0.0.0/0 md5", {"a": 1}]),
     "bootstrap.pg_hba[1]: expected a string, got a mapping"),
    ("tag not a boolean", _set("tags.nofailover", "never"), "tags.nofailover: expected a boolean, got 'never'"),
    ("custom tag a list", _set("tags.zone", [1]), "tags.zone: expected a scalar value, got a list"),
    ("watchdog mode", _set("watchdog", {"mode": ["a list"]}),
     "watchdog.mode: expected one of off, automatic, required, got a list"),
    ("log level", _set("log", {"level": "LOUD"}),
     "log.level: expected one of DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL, FATAL, NOTSET, got 'LOUD'"),
    ("pg_ctl_timeout", _set("postgresql.pg_ctl_timeout", "1m"),
     "postgresql.pg_ctl_timeout: expected an integer, got '1m'"),
    ("parameter value a map", _set("postgresql.parameters", {"work_mem": {"x": 1}}),
     "postgresql.parameters.work_mem: expected a scalar value, got a mapping"),
    ("empty unix_socket_directories", _set("postgresql.parameters", {"unix_socket_directories": ""}),
     "postgresql.parameters.unix_socket_directories: must not be empty"),
    ("etcd hosts item", _set("etcd.hosts", ["127.0.0.1:2379", "h:x"]),
     "etcd.hosts[1]: expected 'host:port', got 'h:x'"),
    ("etcd without address", _set("etcd", {"protocol": "http"}),
     "etcd: one of host, hosts, url, proxy, srv is required"),
    ("etcd bad protocol", _set("etcd.protocol", "ftp"), "etcd.protocol: expected one of http, https, got 'ftp'"),
    ("etcd url", _set("etcd.url", "127.0.0.1:2379"),
     "etcd.url: expected an http:// or https:// URL, got '127.0.0.1:2379'"),
]


@pytest.mark.parametrize("mutate,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_config_message(tmp_path: Any, mutate: Mutation, message: str) -> None:
    config = base()
    mutate(config)
    path = _write(tmp_path, config)
    assert str(_error(path)) == f"{path}: {message}"


def test_the_base_config_is_valid(tmp_path: Any) -> None:
    path = _write(tmp_path, base())
    assert load_config(path, environ={})["name"] == "qhb0"


def test_missing_file(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "nope.yml")
    assert str(_error(path)) == f"{path}: no such file"


def test_yaml_syntax_error_names_the_line(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "bad.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("scope: cluster\nname: qhb0\nrestapi:\n  listen: 127.0.0.1:8008\n  connect: a: b\n")
    assert str(_error(path)) == f"{path}: line 5: mapping values are not allowed here"


def test_top_level_list(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "list.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("- a\n- b\n")
    assert str(_error(path)) == f"{path}: expected a mapping at the top level, got a list"


def test_empty_file_is_an_empty_config(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "empty.yml")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# nothing here\n")
    assert str(_error(path)) == "Config is empty."


def test_no_path_and_no_environment_is_empty() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"HOME": "/root"})
    assert str(info.value) == "Config is empty."


@pytest.mark.parametrize("dcs", ["zookeeper", "kubernetes", "raft", "exhibitor"])
def test_unsupported_dcs(tmp_path: Any, dcs: str) -> None:
    config = base()
    del config["etcd"]
    config[dcs] = {"hosts": ["127.0.0.1:2181"]}
    path = _write(tmp_path, config)
    assert str(_error(path)) == f"{path}: DCS {dcs} is not supported by qhb-patroni (use one of consul, etcd, etcd3)"


def test_no_dcs(tmp_path: Any) -> None:
    config = base()
    del config["etcd"]
    path = _write(tmp_path, config)
    assert str(_error(path)) == f"{path}: no DCS section: expected one of consul, etcd, etcd3"


def test_two_dcs(tmp_path: Any) -> None:
    config = base()
    config["consul"] = {"host": "127.0.0.1:8500"}
    path = _write(tmp_path, config)
    assert str(_error(path)) == (f"{path}: several DCS sections (consul, etcd): "
                                 "expected exactly one of consul, etcd, etcd3")


def test_consul_needs_host_or_url(tmp_path: Any) -> None:
    config = base()
    del config["etcd"]
    config["consul"] = {"token": "t"}
    path = _write(tmp_path, config)
    assert str(_error(path)) == f"{path}: consul: one of host, url is required"


def test_all_problems_are_kept_in_schema_order(tmp_path: Any) -> None:
    config = base()
    del config["name"]
    config["bootstrap"]["dcs"]["ttl"] = "abc"
    config["tags"]["nosync"] = "nah"
    path = _write(tmp_path, config)
    assert _error(path).lines == (
        f"{path}: name: missing required key",
        f"{path}: bootstrap.dcs.ttl: expected an integer, got 'abc'",
        f"{path}: tags.nosync: expected a boolean, got 'nah'",
    )


def test_unknown_keys_are_allowed(tmp_path: Any) -> None:
    config = base()
    config["my_extension"] = {"anything": [1, 2]}
    config["postgresql"]["something_new"] = {"x": 1}
    config["bootstrap"]["my_method"] = {"command": "/bin/true"}
    path = _write(tmp_path, config)
    assert load_config(path, environ={})["my_extension"] == {"anything": [1, 2]}


def test_accepted_variants(tmp_path: Any) -> None:
    """Shapes that are valid although they look unusual."""
    config = base()
    config["restapi"]["listen"] = ":8008"  # all addresses
    config["postgresql"]["listen"] = "*,::1:5432"
    config["bootstrap"]["initdb"] = {"encoding": "UTF8", "locale": "C"}  # a map is accepted
    config["bootstrap"]["dcs"]["ttl"] = "40"  # int() works on it, as in Patroni
    config["etcd"] = {"hosts": "10.0.0.1:2379,10.0.0.2"}
    config["watchdog"] = {"mode": False}
    config["tags"]["zone"] = "eu-1"
    path = _write(tmp_path, config)
    assert load_config(path, environ={})["watchdog"] == {"mode": False}


def test_validate_false_returns_an_invalid_config(tmp_path: Any) -> None:
    config = base()
    del config["name"]
    path = _write(tmp_path, config)
    assert "name" not in load_config(path, environ={}, validate=False)
