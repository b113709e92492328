"""The shipped examples load and validate; the `patroni` command line."""
from __future__ import annotations

import glob
import io
import os
import subprocess
import sys
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from qhb_patroni import __version__
from qhb_patroni.cli import main, validate_command
from qhb_patroni.config import load_config
from qhb_patroni.config.dynamic import effective_config, initial_dynamic, settings_from
from tests.unit.config.helpers import base

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yml")) +
                  glob.glob(os.path.join(ROOT, "examples", "local", "*.yml")))


def test_all_examples_are_there() -> None:
    names = [os.path.relpath(p, os.path.join(ROOT, "examples")) for p in EXAMPLES]
    assert names == ["local/node0.yml", "local/node1.yml", "local/node2.yml", "qhb0.yml", "qhb1.yml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.basename(p))
def test_example_loads_and_validates(path: str) -> None:
    config = load_config(path, environ={})
    pg = config["postgresql"]
    assert (pg["config_base_name"], pg["hba_file"], pg["ident_file"], pg["database"]) == (
        "qhb", "qhb_hba.conf", "qhb_ident.conf", "qhb")
    assert pg["authentication"]["superuser"]["username"] == "qhb"
    assert config["bootstrap"]["qhb_hba"]
    settings = settings_from(effective_config(config, initial_dynamic(config)))
    assert settings.name == config["name"] and settings.use_pg_rewind is True


def test_local_demo_nodes_do_not_collide() -> None:
    configs = [load_config(p, environ={}) for p in EXAMPLES if "/local/" in p]
    for key in (("name",), ("restapi", "listen"), ("postgresql", "listen"), ("postgresql", "data_dir")):
        values = []
        for config in configs:
            node: Any = config
            for part in key:
                node = node[part]
            values.append(node)
        assert len(set(values)) == 3, key
    assert [c["restapi"]["listen"] for c in configs] == ["127.0.0.1:8008", "127.0.0.1:8009", "127.0.0.1:8010"]
    assert [c["postgresql"]["listen"] for c in configs] == ["127.0.0.1:5432", "127.0.0.1:5433", "127.0.0.1:5434"]
    assert all(c["etcd"] == {"host": "127.0.0.1:2379"} for c in configs)


def test_guide_examples_have_a_commented_consul_section() -> None:
    for name in ("qhb0.yml", "qhb1.yml"):
        with open(os.path.join(ROOT, "examples", name), encoding="utf-8") as fh:
            text = fh.read()
        assert "#consul:" in text and "#  host: 127.0.0.1:8500" in text
        uncommented = text.replace("#consul:", "consul:").replace("#  host: 127.0.0.1:8500", "  host: 127.0.0.1:8500")
        data = yaml.safe_load(uncommented)
        assert data["consul"] == {"host": "127.0.0.1:8500"}


def _run(args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, "-m", "qhb_patroni", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=60)


def test_version_subprocess() -> None:
    result = _run(["--version"], {})
    assert result.returncode == 0
    assert result.stdout.strip() == f"patroni 3.0.2 (qhb-patroni {__version__})"


def test_bad_config_exits_1_without_touching_the_disk(tmp_path: Any) -> None:
    config = base()
    data_dir = os.path.join(str(tmp_path), "data")
    config["postgresql"]["data_dir"] = data_dir
    config["bootstrap"]["dcs"]["ttl"] = "abc"
    path = os.path.join(str(tmp_path), "qhb0.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    result = _run([path], {})
    assert result.returncode == 1
    assert result.stderr.strip() == f"{path}: bootstrap.dcs.ttl: expected an integer, got 'abc'"
    assert sorted(os.listdir(str(tmp_path))) == ["qhb0.yml"]


def test_empty_config_subprocess() -> None:
    result = _run([], {})
    assert (result.returncode, result.stderr.strip()) == (1, "Config is empty.")


def test_validate_config_subprocess(tmp_path: Any) -> None:
    config = load_config(os.path.join(ROOT, "examples", "qhb0.yml"), environ={})
    config["postgresql"]["bin_dir"] = _fake_bin_dir(tmp_path)
    config["postgresql"]["data_dir"] = os.path.join(str(tmp_path), "data")
    path = os.path.join(str(tmp_path), "good.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    good = _run(["--validate-config", path], {})
    assert (good.returncode, good.stderr) == (0, "")
    config = base()
    del config["scope"]
    config["tags"]["nofailover"] = "yes"
    path = os.path.join(str(tmp_path), "bad.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    bad = _run(["--validate-config", path], {"PATRONI_RESTAPI_LISTEN": "nowhere"})
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        f"{path}: scope: missing required key",
        "PATRONI_RESTAPI_LISTEN: restapi.listen: expected 'host:port', got 'nowhere'",
        f"{path}: tags.nofailover: expected a boolean, got 'yes' (Patroni 3.0.2 starts with it; "
        "qhb-patroni reads it as true)",
    ]


def _fake_bin_dir(tmp_path: Any, names: Tuple[str, ...] = ("qhb", "qhb_ctl", "qhb_bootstrap", "qhb_controldata",
                                                          "qhb_basebackup", "qhb_isready")) -> str:
    bin_dir = os.path.join(str(tmp_path), "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for name in names:
        exe = os.path.join(bin_dir, name)
        with open(exe, "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\nexit 0\n")
        os.chmod(exe, 0o755)
    return bin_dir


def _validate(tmp_path: Any, **pg: Any) -> List[str]:
    config = base()
    config["postgresql"].update(pg)
    path = os.path.join(str(tmp_path), "sys.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    err = io.StringIO()
    code = validate_command(path, environ={}, err=err)
    lines = [line.replace(path + ": ", "") for line in err.getvalue().splitlines()]
    assert code == (1 if lines else 0)
    return lines


def test_validate_config_checks_the_machine(tmp_path: Any) -> None:
    good_bin = _fake_bin_dir(tmp_path)
    data = os.path.join(str(tmp_path), "data")
    assert _validate(tmp_path, bin_dir=good_bin, data_dir=data) == []
    missing = os.path.join(str(tmp_path), "nope")
    assert _validate(tmp_path, bin_dir=missing, data_dir=data) == [
        f"postgresql.bin_dir: directory {missing} does not exist"]
    partial = _fake_bin_dir(tmp_path / "p", ("postgres", "pg_ctl", "initdb", "pg_controldata", "pg_basebackup"))
    assert _validate(tmp_path, bin_dir=partial, data_dir=data) == [
        f"postgresql.bin_dir: no executable for isready ({partial}/pg_isready)"]
    os.makedirs(data)
    with open(os.path.join(data, "stray"), "w", encoding="utf-8") as fh:
        fh.write("x")
    assert _validate(tmp_path, bin_dir=good_bin, data_dir=data) == [
        f"postgresql.data_dir: {data} is not empty and has no PG_VERSION: not a data directory"]
    with open(os.path.join(data, "PG_VERSION"), "w", encoding="utf-8") as fh:
        fh.write("15\n")
    assert _validate(tmp_path, bin_dir=good_bin, data_dir=data) == [
        f"postgresql.data_dir: {data} has no pg_wal directory"]
    os.makedirs(os.path.join(data, "pg_wal"))
    assert _validate(tmp_path, bin_dir=good_bin, data_dir=data, pgpass=str(tmp_path)) == [
        f"postgresql.pgpass: {tmp_path} is a directory"]
    a_file = os.path.join(data, "stray")
    assert _validate(tmp_path, bin_dir=good_bin, data_dir=a_file) == [
        f"postgresql.data_dir: {a_file} is not a directory"]


def test_validate_command_in_process(tmp_path: Any) -> None:
    err = io.StringIO()
    missing = os.path.join(str(tmp_path), "missing.yml")
    assert validate_command(missing, environ={}, err=err) == 1
    assert err.getvalue() == f"{missing}: no such file\n"


def test_main_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-option"], environ={})
    assert info.value.code == 2


def test_main_hands_the_validated_config_to_the_daemon(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import qhb_patroni.daemon

    calls: List[Tuple[Dict[str, Any], Any]] = []

    def fake_run(config: Dict[str, Any], config_path: Any = None, warnings: Any = ()) -> int:
        calls.append((config, config_path))
        return 7

    monkeypatch.setattr(qhb_patroni.daemon, "run", fake_run)
    path = os.path.join(str(tmp_path), "qhb0.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(base(), fh)
    assert main([path], environ={"PATRONI_NAME": "from-env"}) == 7
    assert len(calls) == 1
    config, config_path = calls[0]
    assert config_path == path
    assert config["name"] == "from-env" and config["postgresql"]["data_dir"] == "/tmp/qhb0"
    calls.clear()
    env = {"PATRONI_CONFIGURATION": yaml.safe_dump(base())}
    assert main([], environ=env) == 7
    assert calls[0][1] is None
