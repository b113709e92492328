"""Config acceptance as Patroni 3.0.2: the daemon starts on what 3.0.2 starts on
(with warnings), --validate-config stays strict and names what 3.0.2 accepts,
and every unimplemented key is named in one warning line."""
from __future__ import annotations

import io
import os
from typing import Any, Dict, List, Tuple

import pytest
import yaml

from qhb_patroni.cli import main, start_warnings, validate_command
from qhb_patroni.config import load_config, read_config
from qhb_patroni.config.dynamic import effective_config, initial_dynamic, settings_from
from qhb_patroni.config.unimplemented import unimplemented, warning_line
from tests.unit.config.helpers import base


def _write(tmp_path: Any, config: Dict[str, Any]) -> str:
    path = os.path.join(str(tmp_path), "node.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    return path


@pytest.mark.parametrize("spelled,value", [("true", True), ("on", True), ("yes", True), (1, True),
                                           ("false", False), ("off", False), ("no", False), (0, False),
                                           ("Yes", True), ("OFF", False)])
def test_boolean_spellings_start_and_are_read_as_booleans(tmp_path: Any, spelled: Any, value: bool) -> None:
    config = base()
    config["tags"] = {"nofailover": spelled, "noloadbalance": spelled, "nosync": spelled, "clonefrom": spelled}
    config["postgresql"]["use_pg_rewind"] = spelled
    config["restapi"]["allowlist_include_members"] = spelled
    config["bootstrap"]["dcs"]["synchronous_mode"] = spelled
    loaded = load_config(_write(tmp_path, config), environ={})
    assert loaded["tags"] == {"nofailover": value, "noloadbalance": value, "nosync": value, "clonefrom": value}
    assert loaded["postgresql"]["use_pg_rewind"] is value
    assert loaded["restapi"]["allowlist_include_members"] is value
    assert loaded["bootstrap"]["dcs"]["synchronous_mode"] is value
    settings = settings_from(effective_config(loaded, initial_dynamic(loaded)))
    assert (settings.nofailover, settings.use_pg_rewind, settings.synchronous_mode) == (value, value, value)


def test_validate_config_is_strict_and_says_what_patroni_accepts(tmp_path: Any) -> None:
    config = base()
    config["tags"]["nofailover"] = "off"
    config["postgresql"]["use_pg_rewind"] = 1
    err = io.StringIO()
    assert validate_command(_write(tmp_path, config), environ={}, err=err) == 1
    lines = [line.split(": ", 1)[1] for line in err.getvalue().splitlines() if "boolean" in line]
    assert lines == [
        "postgresql.use_pg_rewind: expected a boolean, got 1 (Patroni 3.0.2 starts with it; "
        "qhb-patroni reads it as true)",
        "tags.nofailover: expected a boolean, got 'off' (Patroni 3.0.2 starts with it; qhb-patroni reads it as false)",
    ]


def test_a_word_that_is_not_a_boolean_still_refuses_to_start(tmp_path: Any) -> None:
    config = base()
    config["tags"]["nofailover"] = "maybe"
    problems = read_config(_write(tmp_path, config), environ={}).problems()
    assert [(p.path, p.lenient) for p in problems] == [(("tags", "nofailover"), False)]
    assert main([_write(tmp_path, config)], environ={}) == 1


def _timing(ttl: int, loop_wait: int, retry_timeout: int) -> Dict[str, Any]:
    config = base()
    config["bootstrap"]["dcs"].update(ttl=ttl, loop_wait=loop_wait, retry_timeout=retry_timeout)
    return config


def test_ttl_rule_is_a_warning_at_start(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import qhb_patroni.daemon

    calls: List[Tuple[Dict[str, Any], List[str]]] = []

    def fake_run(config: Dict[str, Any], config_path: Any = None, warnings: Any = ()) -> int:
        calls.append((config, list(warnings)))
        return 0

    monkeypatch.setattr(qhb_patroni.daemon, "run", fake_run)
    path = _write(tmp_path, _timing(20, 2, 10))
    assert main([path], environ={}) == 0
    config, warnings = calls[0]
    assert config["bootstrap"]["dcs"]["ttl"] == 20
    assert warnings == [f"{path}: bootstrap.dcs: loop_wait + 2*retry_timeout must not exceed ttl (2 + 2*10 > 20); "
                        "Patroni 3.0.2 does not check this and starts: a leader cut off from the DCS may not "
                        "notice before its key expires"]


@pytest.mark.parametrize("dcs,numbers", [({"ttl": 20}, "(10 + 2*10 > 20)"), ({"loop_wait": 15}, "(15 + 2*10 > 30)"),
                                          ({"ttl": 25}, "(10 + 2*10 > 25)")])
def test_ttl_rule_takes_the_defaults_of_missing_keys(tmp_path: Any, dcs: Dict[str, Any], numbers: str) -> None:
    config = base()
    config["bootstrap"]["dcs"] = dcs
    problems = read_config(_write(tmp_path, config), environ={}).problems()
    assert [(p.path, p.lenient) for p in problems] == [(("bootstrap", "dcs"), True)]
    assert f"must not exceed ttl {numbers}" in problems[0].message
    assert load_config(_write(tmp_path, config), environ={})["bootstrap"]["dcs"] == dcs


def test_ttl_rule_fails_validate_config(tmp_path: Any) -> None:
    err = io.StringIO()
    assert validate_command(_write(tmp_path, _timing(20, 2, 10)), environ={}, err=err) == 1
    assert "loop_wait + 2*retry_timeout must not exceed ttl (2 + 2*10 > 20)" in err.getvalue()
    err = io.StringIO()
    validate_command(_write(tmp_path, _timing(30, 10, 10)), environ={}, err=err)
    assert "must not exceed ttl" not in err.getvalue()


def test_unimplemented_keys_are_named_in_one_line() -> None:
    config = base()
    assert warning_line(config) == ""
    config["watchdog"] = {"mode": "required", "device": "/dev/watchdog"}
    config["citus"] = {"group": 0, "database": "citus"}
    config["bootstrap"]["dcs"]["failsafe_mode"] = True
    config["bootstrap"]["dcs"]["ignore_slots"] = [{"name": "x"}]  # implemented: not named
    assert [path for path, _ in unimplemented(config)] == ["citus"]
    line = warning_line(config)
    assert line.startswith("configuration keys accepted but not implemented by qhb-patroni: citus (")
    assert "\n" not in line and "citus (Citus groups are not supported)" in line


def test_unimplemented_keys_only_when_they_would_do_something() -> None:
    config = base()
    config["citus"] = {}
    assert unimplemented(config) == []  # an empty citus section does nothing
    # implemented since: the watchdog, failsafe mode, standby clusters, slots, custom bootstrap
    config["watchdog"] = {"mode": "required"}
    config["bootstrap"]["method"] = "restore"
    assert unimplemented(config) == []
    assert unimplemented(None, {"failsafe_mode": "on", "standby_cluster": {"host": "10.0.0.1", "port": 5432},
                                "slots": {"a": {}}}) == []


def test_unimplemented_keys_are_warned_at_start_and_by_validate_config(tmp_path: Any) -> None:
    config = base()
    config["citus"] = {"group": 0, "database": "citus"}
    path = _write(tmp_path, config)
    loaded = read_config(path, environ={})
    warnings = start_warnings(loaded.config, loaded.problems())
    assert len(warnings) == 1 and warnings[0].startswith("configuration keys accepted but not implemented")
    err = io.StringIO()
    validate_command(path, environ={}, err=err)
    assert f"warning: {warnings[0]}" in err.getvalue().splitlines()


def test_unknown_watchdog_mode_starts_as_in_patroni_302(tmp_path: Any) -> None:
    config = base()
    config["watchdog"] = {"mode": "sometimes"}
    problems = read_config(_write(tmp_path, config), environ={}).problems()
    assert [(p.line().split(": ", 1)[1], p.lenient) for p in problems] == [
        ("watchdog.mode: expected one of off, automatic, required, got 'sometimes' "
         "(Patroni 3.0.2 starts with it and turns the watchdog off)", True)]
    assert load_config(_write(tmp_path, config), environ={})["watchdog"] == {"mode": "sometimes"}
