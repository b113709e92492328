"""effective_config: defaults <- dynamic <- local, and settings_from."""
from __future__ import annotations

from typing import Any, Dict

import pytest

from qhb_patroni.config import ConfigError
from qhb_patroni.config.dynamic import apply_dynamic, defaults, effective_config, initial_dynamic, settings_from
from qhb_patroni.config.validator import validate_dynamic
from tests.unit.config.helpers import base


def test_defaults_without_dynamic() -> None:
    eff = effective_config(base(), None)
    assert (eff["ttl"], eff["loop_wait"], eff["retry_timeout"]) == (30, 10, 10)
    assert eff["maximum_lag_on_failover"] == 1048576
    assert eff["maximum_lag_on_syncnode"] == -1
    assert eff["primary_start_timeout"] == 300
    assert eff["synchronous_mode"] is False
    assert eff["watchdog"] == {"mode": "automatic"}
    assert eff["postgresql"]["use_slots"] is True
    assert eff["postgresql"]["parameters"]["max_connections"] == 100
    assert eff["postgresql"]["parameters"]["wal_level"] == "hot_standby"
    assert "wal_keep_size" not in eff["postgresql"]["parameters"]


def test_timing_keys_only_from_dynamic() -> None:
    local = base()
    local["ttl"] = 99
    local["loop_wait"] = 1
    eff = effective_config(local, {"ttl": 40, "retry_timeout": "12"})
    assert (eff["ttl"], eff["loop_wait"], eff["retry_timeout"]) == (40, 10, 12)


def test_int_coercion_and_booleans_as_is() -> None:
    eff = effective_config(base(), {"check_timeline": True, "maximum_lag_on_failover": 30.7,
                                    "synchronous_mode": "on", "failsafe_mode": True})
    assert eff["check_timeline"] == 1
    assert eff["maximum_lag_on_failover"] == 30
    assert eff["synchronous_mode"] == "on"  # taken as-is, like Patroni
    assert eff["failsafe_mode"] is True


@pytest.mark.parametrize("key,value,shown", [("ttl", "1MB", "'1MB'"), ("check_timeline", "true", "'true'"),
                                             ("loop_wait", None, "null"), ("primary_start_timeout", [1], "a list")])
def test_bad_int_rejects_the_whole_dynamic_config(key: str, value: Any, shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        effective_config(base(), {"ttl": 40, key: value})
    assert str(info.value) == f"dynamic configuration: {key}: expected an integer, got {shown}"


def test_apply_dynamic_keeps_the_previous_config() -> None:
    previous = effective_config(base(), {"ttl": 40})
    new, error = apply_dynamic(base(), {"ttl": "forty"}, previous)
    assert new is previous
    assert error is not None and str(error) == "dynamic configuration: ttl: expected an integer, got 'forty'"
    new, error = apply_dynamic(base(), {"ttl": 50}, previous)
    assert error is None and new["ttl"] == 50


def test_legacy_master_timeouts() -> None:
    assert effective_config(base(), {"master_start_timeout": 10})["primary_start_timeout"] == 10
    eff = effective_config(base(), {"master_start_timeout": 10, "primary_start_timeout": 20})
    assert eff["primary_start_timeout"] == 20


def test_postgresql_layers() -> None:
    local = base()
    local["postgresql"]["use_slots"] = False  # global only: ignored locally
    local["postgresql"]["use_pg_rewind"] = False
    local["postgresql"]["parameters"] = {"work_mem": "8MB", "max_connections": 500, "Shared_Buffers": "1GB"}
    dynamic = {"postgresql": {
        "use_slots": False, "use_pg_rewind": True, "data_dir": "/dynamic/ignored", "listen": "0.0.0.0:1",
        "authentication": {"superuser": {"username": "evil"}}, "pg_hba": ["host all all 0.0.0.0/0 md5"],
        "parameters": {"work_mem": "4MB", "max_connections": 200, "shared_buffers": "512MB", "port": 1},
    }}
    pg = effective_config(local, dynamic)["postgresql"]
    assert pg["use_slots"] is False  # from dynamic
    assert pg["use_pg_rewind"] is False  # local wins
    assert pg["data_dir"] == "/tmp/qhb0"
    assert pg["listen"] == "127.0.0.1:5432"
    assert pg["authentication"]["superuser"] == {"username": "qhb", "password": "qhb"}
    assert pg["pg_hba"] == ["host all all 0.0.0.0/0 md5"]
    params = pg["parameters"]
    assert params["work_mem"] == "8MB"  # local wins
    assert params["max_connections"] == 200  # cmdline GUC: dynamic only
    assert params["shared_buffers"] == "1GB"  # names are case-insensitive
    assert "port" not in params  # forced GUCs never come from the config
    assert pg["hba_file"] == "qhb_hba.conf" and pg["config_base_name"] == "qhb"


def test_invalid_cmdline_values_keep_the_default() -> None:
    dynamic = {"postgresql": {"parameters": {"max_connections": 10, "wal_level": "minimal",
                                             "max_wal_senders": "5", "track_commit_timestamp": "maybe",
                                             "wal_keep_size": "8MB", "hot_standby": "off"}}}
    params = effective_config(base(), dynamic)["postgresql"]["parameters"]
    assert params["max_connections"] == 100
    assert params["wal_level"] == "hot_standby"
    assert params["max_wal_senders"] == "5"
    assert params["track_commit_timestamp"] == "off"
    assert params["hot_standby"] == "on"
    assert "wal_keep_size" not in params
    ok = effective_config(base(), {"postgresql": {"parameters": {"wal_keep_size": "1GB"}}})
    assert ok["postgresql"]["parameters"]["wal_keep_size"] == "1GB"


def test_standby_cluster_known_keys_from_dynamic_only() -> None:
    local = base()
    local["standby_cluster"] = {"host": "local-ignored"}
    eff = effective_config(local, {"standby_cluster": {"host": "remote", "port": 5432, "junk": 1}})
    assert eff["standby_cluster"]["host"] == "remote"
    assert eff["standby_cluster"]["port"] == 5432
    assert "junk" not in eff["standby_cluster"]
    assert defaults()["standby_cluster"]["primary_slot_name"] == ""


def test_watchdog_and_other_local_keys() -> None:
    local = base()
    local["watchdog"] = {"mode": "off"}
    local["citus"] = {"group": "x", "database": "d"}  # invalid: dropped
    eff = effective_config(local, {"watchdog": {"mode": "required"}, "pause": True})
    assert eff["watchdog"] == {"mode": "off"}
    assert eff["tags"] == {"nofailover": False}
    assert "citus" not in eff
    assert "pause" not in eff  # read from the DCS view, not merged


def test_derived_keys() -> None:
    local = base()
    local["restapi"]["authentication"] = {"username": "u", "password": "p"}
    local["postgresql"]["authentication"]["superuser"]["sslmode"] = "require"
    local["postgresql"]["authentication"]["superuser"]["bogus"] = "x"
    local["citus"] = {"group": 0, "database": "citus"}
    eff = effective_config(local, {"retry_timeout": 7, "synchronous_node_count": 2})
    assert eff["restapi"]["auth"] == "u:p"
    assert eff["postgresql"]["authentication"]["superuser"] == {"username": "qhb", "password": "qhb",
                                                                "sslmode": "require"}
    assert eff["bootstrap"]["dcs"]["synchronous_mode"] is True
    pg = eff["postgresql"]
    assert (pg["name"], pg["scope"], pg["retry_timeout"], pg["synchronous_node_count"]) == ("qhb0", "cluster", 7, 2)
    assert pg["citus"] == {"group": 0, "database": "citus"}


def test_legacy_authentication_layout() -> None:
    local: Dict[str, Any] = base()
    pg = local["postgresql"]
    del pg["authentication"]
    pg["superuser"] = {"username": "su"}
    pg["replication"] = {"username": "rep"}
    pg["pg_rewind"] = {"username": "rw"}
    pg["name"] = "from-pg"
    del local["name"]
    eff = effective_config(local, None)
    assert eff["postgresql"]["authentication"] == {"replication": {"username": "rep"}, "superuser": {"username": "su"}}
    assert eff["postgresql"]["use_pg_rewind"] is True
    assert eff["name"] == "from-pg"


def test_settings_from() -> None:
    local = base()
    local["tags"]["nofailover"] = True
    local["postgresql"]["remove_data_directory_on_rewind_failure"] = True
    dynamic = initial_dynamic(local)
    assert dynamic == local["bootstrap"]["dcs"]
    settings = settings_from(effective_config(local, {**dynamic, "ttl": 45, "primary_start_timeout": 0}))
    assert settings.name == "qhb0" and settings.scope == "cluster"
    assert (settings.ttl, settings.loop_wait, settings.retry_timeout) == (45.0, 10.0, 10.0)
    assert settings.use_pg_rewind is True and settings.use_slots is True
    assert settings.remove_data_directory_on_rewind_failure is True
    assert settings.remove_data_directory_on_diverged_timelines is False
    assert settings.nofailover is True
    assert settings.has_bootstrap is True
    assert settings.bootstrap_dcs["ttl"] == 30
    assert settings.primary_start_timeout == 0.0
    without = base()
    del without["bootstrap"]
    assert settings_from(effective_config(without, None)).has_bootstrap is False


def test_validate_dynamic() -> None:
    assert validate_dynamic({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "postgresql": {"use_slots": True}}) == []
    lines = [p.line() for p in validate_dynamic({"ttl": 20, "loop_wait": 10, "retry_timeout": 10,
                                                 "postgresql": {"parameters": []}})]
    assert lines == [
        "dynamic configuration: postgresql.parameters: expected a mapping of names to scalar values, got a list",
        "dynamic configuration: loop_wait + 2*retry_timeout must not exceed ttl (10 + 2*10 > 20)",
    ]
