"""restapi.max_connections and restapi.max_connections_per_address (issue 12, item 9):
validated by the schema (file and PATRONI_* environment) and --validate-config."""
from __future__ import annotations

import io
from typing import Any, Dict

import pytest

from qhb_patroni.cli import validate_command
from qhb_patroni.config import load_config
from qhb_patroni.config.errors import ConfigError
from tests.unit.config.helpers import base
from tests.unit.config.test_errors import _error, _write


@pytest.mark.parametrize("key", ["max_connections", "max_connections_per_address"])
@pytest.mark.parametrize("value,message", [
    (0, "must be between 1 and 1000000, got 0"),
    (-5, "must be between 1 and 1000000, got -5"),
    (10**9, "must be between 1 and 1000000, got 1000000000"),
    ("many", "expected an integer"),
    (1.5, "expected an integer"),
])
def test_bad_connection_caps_are_named(tmp_path: Any, key: str, value: Any, message: str) -> None:
    config = base()
    config["restapi"][key] = value
    path = _write(tmp_path, config)
    text = str(_error(path))
    assert text.startswith(f"{path}: restapi.{key}: ") and message in text
    err = io.StringIO()
    assert validate_command(path, environ={}, err=err) == 1
    assert f"restapi.{key}" in err.getvalue()


def test_good_caps_and_environment(tmp_path: Any) -> None:
    config = base()
    config["restapi"].update(max_connections=500, max_connections_per_address=20)
    loaded = load_config(_write(tmp_path, config), environ={})
    assert loaded["restapi"]["max_connections"] == 500 and loaded["restapi"]["max_connections_per_address"] == 20
    env: Dict[str, str] = {"PATRONI_RESTAPI_MAX_CONNECTIONS": "300", "PATRONI_RESTAPI_MAX_CONNECTIONS_PER_ADDRESS": "7"}
    loaded = load_config(_write(tmp_path, base()), environ=env)
    assert loaded["restapi"]["max_connections"] == 300 and loaded["restapi"]["max_connections_per_address"] == 7
    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, base()), environ={"PATRONI_RESTAPI_MAX_CONNECTIONS": "0"})
    assert "restapi.max_connections" in str(exc.value)
