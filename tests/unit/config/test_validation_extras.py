"""--validate-config beyond types: value ranges, timing, well-formed addresses,
data_dir creatable, several problems each on its own line; --generate-config."""
from __future__ import annotations

import io
import os
from typing import Any, List

import pytest
import yaml

from qhb_patroni.cli import main, validate_command
from qhb_patroni.config import load_config
from qhb_patroni.config.sample import Node, find_bin_dir, sample_config
from tests.unit.config.helpers import base
from tests.unit.config.test_errors import Mutation, _error, _set, _write

CASES: List[Any] = [
    ("ttl too small", _set("bootstrap.dcs.ttl", 1), "bootstrap.dcs.ttl: must be at least 2, got 1"),
    ("loop_wait zero", _set("bootstrap.dcs.loop_wait", 0), "bootstrap.dcs.loop_wait: must be at least 1, got 0"),
    ("retry_timeout as a string", _set("bootstrap.dcs.retry_timeout", "0"),
     "bootstrap.dcs.retry_timeout: must be at least 1, got 0"),
    ("negative lag", _set("bootstrap.dcs.maximum_lag_on_failover", -5),
     "bootstrap.dcs.maximum_lag_on_failover: must be at least 0, got -5"),
    ("sync node count", _set("bootstrap.dcs.synchronous_node_count", 0),
     "bootstrap.dcs.synchronous_node_count: must be at least 1, got 0"),
    ("standby port", _set("bootstrap.dcs.standby_cluster", {"host": "10.0.0.9", "port": 70000}),
     "bootstrap.dcs.standby_cluster.port: must be between 1 and 65535, got 70000"),
    ("pg_ctl_timeout", _set("postgresql.pg_ctl_timeout", 0), "postgresql.pg_ctl_timeout: must be at least 1, got 0"),
    ("dynamic pg_ctl_timeout", _set("bootstrap.dcs.postgresql.pg_ctl_timeout", -1),
     "bootstrap.dcs.postgresql.pg_ctl_timeout: must be at least 1, got -1"),
    ("log file_num", _set("log", {"file_num": -1}), "log.file_num: must be at least 0, got -1"),
    ("watchdog margin", _set("watchdog", {"safety_margin": -2}),
     "watchdog.safety_margin: must be at least -1, got -2"),
    ("listen host with a space", _set("restapi.listen", "my host:8008"),
     "restapi.listen: expected 'host:port', got 'my host:8008'"),
    ("connect_address wildcard", _set("restapi.connect_address", "*:8008"),
     "restapi.connect_address: expected 'host:port', got '*:8008'"),
    ("postgresql.listen bad host in list", _set("postgresql.listen", "127.0.0.1,10.0.0.1/24:5432"),
     "postgresql.listen: expected 'host:port', got '127.0.0.1,10.0.0.1/24:5432'"),
    ("postgresql.connect_address empty host", _set("postgresql.connect_address", ":5432"),
     "postgresql.connect_address: expected 'host:port', got ':5432'"),
    ("etcd host with a scheme", _set("etcd", {"host": "http://127.0.0.1:2379"}),
     "etcd.host: expected 'host' or 'host:port', got 'http://127.0.0.1:2379'"),
    ("etcd hosts item bad name", _set("etcd.hosts", ["etcd_1.local:2379", "-bad:2379"]),
     "etcd.hosts[1]: expected 'host:port', got '-bad:2379'"),
]


@pytest.mark.parametrize("mutate,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_broken_config_message(tmp_path: Any, mutate: Mutation, message: str) -> None:
    config = base()
    mutate(config)
    path = _write(tmp_path, config)
    assert str(_error(path)) == f"{path}: {message}"


@pytest.mark.parametrize("listen", ["0.0.0.0:8008", "*:8008", ":8008", "[::1]:8008", "::1:8008",
                                    "db-1.example.org:8008"])
def test_good_restapi_listen(tmp_path: Any, listen: str) -> None:
    config = base()
    config["restapi"]["listen"] = listen
    assert load_config(_write(tmp_path, config), environ={})["restapi"]["listen"] == listen


def test_guide_listen_with_ipv6_in_the_list(tmp_path: Any) -> None:
    config = base()
    config["postgresql"]["listen"] = "127.0.0.1,10.1.2.104,::1:5432"
    assert load_config(_write(tmp_path, config), environ={})


def _fake_bin(tmp_path: Any, names: Any = ("qhb", "qhb_ctl", "qhb_bootstrap", "qhb_controldata",
                                            "qhb_basebackup", "qhb_isready")) -> str:
    bin_dir = os.path.join(str(tmp_path), "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for name in names:
        exe = os.path.join(bin_dir, name)
        with open(exe, "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\n")
        os.chmod(exe, 0o755)
    return bin_dir


def _lines(tmp_path: Any, config: Any, env: Any = None) -> List[str]:
    if isinstance(config.get("postgresql"), dict) and "bin_dir" not in config["postgresql"]:
        config["postgresql"]["bin_dir"] = _fake_bin(tmp_path)
    path = _write(tmp_path, config)
    err = io.StringIO()
    code = validate_command(path, environ=env or {}, err=err)
    lines = [line.replace(path + ": ", "") for line in err.getvalue().splitlines()]
    assert code == (1 if lines else 0)
    return lines


def test_every_problem_on_its_own_line(tmp_path: Any) -> None:
    config = base()
    config["bootstrap"]["dcs"]["loop_wait"] = 0
    config["consul"] = {"host": "127.0.0.1:8500", "port": 0}
    del config["postgresql"]["authentication"]["replication"]["username"]
    assert _lines(tmp_path, config) == [
        "consul.port: must be between 1 and 65535, got 0",
        "bootstrap.dcs.loop_wait: must be at least 1, got 0",
        "postgresql.authentication.replication.username: missing required key",
        "several DCS sections (consul, etcd): expected exactly one of consul, etcd, etcd3",
    ]


def test_environment_is_applied_before_validating(tmp_path: Any) -> None:
    config = base()
    config["restapi"]["listen"] = "bad host:1"
    assert _lines(tmp_path, config, {"PATRONI_RESTAPI_LISTEN": "127.0.0.1:8010"}) == []
    assert _lines(tmp_path, base(), {"PATRONI_ETCD_HOSTS": "127.0.0.1:2379,x y:1"}) == [
        "PATRONI_ETCD_HOSTS: etcd.hosts[1]: expected 'host:port', got 'x y:1'"]


def test_data_dir_parent_must_be_a_directory(tmp_path: Any) -> None:
    blocker = os.path.join(str(tmp_path), "file")
    with open(blocker, "w", encoding="utf-8") as fh:
        fh.write("x")
    config = base()
    config["postgresql"]["data_dir"] = os.path.join(blocker, "deeper", "data")
    assert _lines(tmp_path, config) == [
        f"postgresql.data_dir: cannot create {blocker}/deeper/data: {blocker} is not a directory"]


def test_without_bin_dir_the_executables_come_from_path(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    config = base()
    config["postgresql"].pop("bin_dir", None)
    config["postgresql"]["data_dir"] = os.path.join(str(tmp_path), "data")
    path = _write(tmp_path, config)
    half = _fake_bin(tmp_path / "half", ("postgres", "pg_ctl", "initdb", "pg_basebackup"))
    monkeypatch.setenv("PATH", half)
    err = io.StringIO()
    assert validate_command(path, environ={}, err=err) == 1
    assert [line.replace(path + ": ", "") for line in err.getvalue().splitlines()] == [
        "postgresql.bin_dir: not set and no executable for controldata on PATH (qhb_controldata or pg_controldata)",
        "postgresql.bin_dir: not set and no executable for isready on PATH (qhb_isready or pg_isready)",
    ]
    monkeypatch.setenv("PATH", _fake_bin(tmp_path / "full"))
    err = io.StringIO()
    assert validate_command(path, environ={}, err=err) == 0 and err.getvalue() == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_data_dir_parent_must_be_writable(tmp_path: Any) -> None:
    parent = os.path.join(str(tmp_path), "ro")
    os.makedirs(parent)
    os.chmod(parent, 0o555)
    try:
        config = base()
        config["postgresql"]["data_dir"] = os.path.join(parent, "data")
        assert _lines(tmp_path, config) == [
            f"postgresql.data_dir: cannot create {parent}/data: {parent} is not writable"]
        config["postgresql"]["data_dir"] = parent
        assert _lines(tmp_path, config) == [f"postgresql.data_dir: {parent} is not writable"]
    finally:
        os.chmod(parent, 0o755)


# ---------------------------------------------------------------- --generate-config

def test_sample_config_validates_and_is_commented(tmp_path: Any) -> None:
    bin_dir = _fake_bin(tmp_path)
    text = sample_config(Node("db2", "10.1.2.3", bin_dir, True), "s3cret-pass")
    assert sum(1 for line in text.splitlines() if line.lstrip().startswith("#")) >= 10
    data = yaml.safe_load(text)
    assert data["name"] == "db2"
    assert data["restapi"] == {"listen": "10.1.2.3:8008", "connect_address": "10.1.2.3:8008",
                               "authentication": {"username": "patroni", "password": "s3cret-pass"}}
    assert data["postgresql"]["connect_address"] == "10.1.2.3:5432"
    assert data["postgresql"]["bin_dir"] == bin_dir
    assert "host all all 10.1.2.0/24 md5" in data["bootstrap"]["qhb_hba"]
    data["postgresql"]["data_dir"] = os.path.join(str(tmp_path), "data")
    assert _lines(tmp_path, data) == []


def test_find_bin_dir_prefers_qhb(tmp_path: Any) -> None:
    pg, qhb = os.path.join(str(tmp_path), "pg"), os.path.join(str(tmp_path), "qhb")
    for d, name in ((pg, "postgres"), (qhb, "qhb")):
        os.makedirs(d)
        with open(os.path.join(d, name), "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\n")
        os.chmod(os.path.join(d, name), 0o755)
    assert find_bin_dir([pg, qhb]) == qhb
    assert find_bin_dir([pg]) == pg
    assert find_bin_dir([str(tmp_path)]) is None


def test_generate_config_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--generate-config"], environ={}) == 0
    out = capsys.readouterr().out
    assert out.startswith("# qhb-patroni configuration for node ")
    assert yaml.safe_load(out)["postgresql"]["config_base_name"] == "qhb"
    # Issue 12 item 12: a generated password, never a commented-out example, and a new one each time.
    password = yaml.safe_load(out)["restapi"]["authentication"]["password"]
    assert isinstance(password, str) and len(password) >= 20 and "CHANGE" not in password
    assert main(["--generate-config"], environ={}) == 0
    assert yaml.safe_load(capsys.readouterr().out)["restapi"]["authentication"]["password"] != password
