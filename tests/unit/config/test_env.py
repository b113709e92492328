"""PATRONI_* environment overrides, PATRONI_CONFIGURATION and directories."""
from __future__ import annotations

import os
from typing import Any, Dict

import pytest
import yaml

from qhb_patroni.config import ConfigError, load_config, read_config
from qhb_patroni.config.env import environment_config
from tests.unit.config.helpers import base


def _write(tmp_path: Any, config: Dict[str, Any], name: str = "qhb0.yml") -> str:
    path = os.path.join(str(tmp_path), name)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    return path


def test_env_overrides_are_deep_merged_over_the_file(tmp_path: Any) -> None:
    path = _write(tmp_path, base())
    config = load_config(path, environ={
        "PATRONI_NAME": "qhb9",
        "PATRONI_RESTAPI_LISTEN": "127.0.0.1:9008",
        "PATRONI_POSTGRESQL_DATA_DIR": "/tmp/other",
        "PATRONI_SUPERUSER_PASSWORD": "secret",
        "PATRONI_ETCD_HOSTS": "10.0.0.1:2379,10.0.0.2:2379",
        "PATRONI_ETCD_PORT": "2380",
    })
    assert config["name"] == "qhb9"
    assert config["restapi"] == {"listen": "127.0.0.1:9008", "connect_address": "127.0.0.1:8008"}
    assert config["postgresql"]["data_dir"] == "/tmp/other"
    assert config["postgresql"]["listen"] == "127.0.0.1:5432"
    assert config["postgresql"]["authentication"]["superuser"] == {"username": "qhb", "password": "secret"}
    assert config["etcd"] == {"hosts": ["10.0.0.1:2379", "10.0.0.2:2379"], "port": 2380}


def test_booleans_ints_lists_maps() -> None:
    config, _ = environment_config({
        "PATRONI_CTL_INSECURE": "yes",
        "PATRONI_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS": "off",
        "PATRONI_RESTAPI_ALLOWLIST": "127.0.0.1, 10.0.0.0/8",
        "PATRONI_RESTAPI_HTTP_EXTRA_HEADERS": "X-A: 1, X-B: b",
        "PATRONI_LOG_FILE_NUM": "7",
        "PATRONI_LOG_LOGGERS": "{urllib3: DEBUG}",
        "PATRONI_CONSUL_REGISTER_SERVICE": "1",
        "PATRONI_CONSUL_VERIFY": "false",
        "PATRONI_CONSUL_SERVICE_TAGS": "- a\n- b",
        "PATRONI_CONSUL_CHECKS": "[x, y]",
    })
    assert config["ctl"] == {"insecure": True}
    assert config["restapi"] == {
        "allowlist_include_members": False,
        "allowlist": ["127.0.0.1", "10.0.0.0/8"],
        "http_extra_headers": {"X-A": 1, "X-B": "b"},
    }
    assert config["log"] == {"file_num": 7, "loggers": {"urllib3": "DEBUG"}}
    assert config["consul"] == {"register_service": True, "verify": False, "service_tags": ["a", "b"],
                                "checks": ["x", "y"]}


def test_generic_section_rule_creates_any_section() -> None:
    config, origins = environment_config({"PATRONI_FOO_HOST": "h:1", "PATRONI_CITUS_GROUP": "2",
                                          "PATRONI_CITUS_HOST": "ignored", "PATRONI_CITUS_DATABASE": "db"})
    assert config == {"foo": {"host": "h:1"}, "citus": {"group": 2, "database": "db"}}
    assert origins[("citus", "group")] == "PATRONI_CITUS_GROUP"


def test_legacy_log_names_only_when_new_unset() -> None:
    config, _ = environment_config({"PATRONI_LOGLEVEL": "DEBUG", "PATRONI_LOGFORMAT": "%(message)s",
                                    "PATRONI_LOG_FORMAT": "new %(message)s"})
    assert config["log"] == {"level": "DEBUG", "format": "new %(message)s"}


def test_bootstrap_users_rule() -> None:
    config, _ = environment_config({
        "PATRONI_admin_PASSWORD": "pw",
        "PATRONI_admin_OPTIONS": "createrole,createdb",
        "PATRONI_REPLICATION_PASSWORD": "rep",  # an authentication variable, not a user
        "PATRONI_RESTAPI_PASSWORD": "api",
        "PATRONI_RESTAPI_USERNAME": "u",
        "PATRONI_empty_PASSWORD": "",
    })
    assert config["bootstrap"] == {"users": {"admin": {"password": "pw", "options": ["createrole", "createdb"]}}}
    assert config["postgresql"] == {"authentication": {"replication": {"password": "rep"}}}
    assert config["restapi"] == {"authentication": {"username": "u", "password": "api"}}


def test_etcd_credentials_only_with_an_etcd_section() -> None:
    env = {"PATRONI_ETCD3_USERNAME": "root", "PATRONI_ETCD3_PASSWORD": "pw"}
    without, _ = environment_config(env, {"consul": {"host": "h"}})
    assert "etcd3" not in without
    assert without["bootstrap"]["users"] == {"ETCD3": {"password": "pw"}}  # 3.0.2's users rule takes it
    with_section, _ = environment_config(env, {"etcd3": {"host": "h:2379"}})
    assert with_section["etcd3"] == {"username": "root", "password": "pw"}


def test_env_error_names_the_variable(tmp_path: Any) -> None:
    path = _write(tmp_path, base())
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"PATRONI_POSTGRESQL_LISTEN": "5432"})
    assert str(info.value) == "PATRONI_POSTGRESQL_LISTEN: postgresql.listen: expected 'host:port', got '5432'"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"PATRONI_ETCD_USE_PROXIES": "maybe"})
    assert str(info.value) == "PATRONI_ETCD_USE_PROXIES: etcd.use_proxies: expected a boolean, got 'maybe'"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={"PATRONI_ZOOKEEPER_HOSTS": "z:2181"})
    assert str(info.value) == ("PATRONI_ZOOKEEPER_HOSTS: DCS zookeeper is not supported by qhb-patroni "
                               "(use one of consul, etcd, etcd3)")


def test_env_only_configuration() -> None:
    config = load_config(None, environ={
        "PATRONI_NAME": "n0", "PATRONI_SCOPE": "s",
        "PATRONI_RESTAPI_LISTEN": "127.0.0.1:8008",
        "PATRONI_ETCD3_HOST": "127.0.0.1:2379",
        "PATRONI_POSTGRESQL_LISTEN": "127.0.0.1:5432",
        "PATRONI_POSTGRESQL_DATA_DIR": "/tmp/d",
        "PATRONI_SUPERUSER_USERNAME": "qhb",
        "PATRONI_REPLICATION_USERNAME": "rep",
    })
    assert config["etcd3"] == {"host": "127.0.0.1:2379"}
    assert config["postgresql"]["authentication"] == {"superuser": {"username": "qhb"},
                                                      "replication": {"username": "rep"}}


def test_env_only_error_source_is_environment() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("", environ={"PATRONI_NAME": "n0"})
    assert str(info.value) == "environment: scope: missing required key"


def test_patroni_configuration_replaces_every_other_variable() -> None:
    text = yaml.safe_dump(base())
    config = load_config("", environ={"PATRONI_CONFIGURATION": text, "PATRONI_NAME": "ignored"})
    assert config["name"] == "qhb0"
    with pytest.raises(ConfigError) as info:
        load_config(None, environ={"PATRONI_CONFIGURATION": "scope: [a\n"})
    assert str(info.value).startswith("PATRONI_CONFIGURATION: line ")


def test_directory_is_merged_in_sorted_order(tmp_path: Any) -> None:
    config = base()
    postgresql = config.pop("postgresql")
    _write(tmp_path, config, "10-main.yaml")
    _write(tmp_path, {"postgresql": postgresql}, "20-pg.yml")
    _write(tmp_path, {"postgresql": {"data_dir": "/tmp/override"}, "tags": None}, "30-local.yml")
    _write(tmp_path, {"name": "not-read"}, "99-ignored.txt")
    merged = load_config(str(tmp_path), environ={})
    assert merged["postgresql"]["data_dir"] == "/tmp/override"
    assert merged["postgresql"]["listen"] == "127.0.0.1:5432"
    assert merged["name"] == "qhb0"
    assert "tags" not in merged  # a null in a later file removes the key


def test_directory_error_names_the_file_of_the_value(tmp_path: Any) -> None:
    _write(tmp_path, base(), "10-main.yml")
    bad = _write(tmp_path, {"bootstrap": {"dcs": {"ttl": "1MB"}}}, "20-timing.yml")
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path), environ={})
    assert str(info.value) == f"{bad}: bootstrap.dcs.ttl: expected an integer, got '1MB'"


def test_origins_are_recorded(tmp_path: Any) -> None:
    path = _write(tmp_path, base())
    loaded = read_config(path, environ={"PATRONI_SCOPE": "other"})
    assert loaded.origin(("scope",)) == "PATRONI_SCOPE"
    assert loaded.origin(("name",)) == path
    assert loaded.origin(("not", "there")) == path
