"""Hostile configuration values (issue 12 items 4 and 6): the dynamic-config
validator (finite numbers, depth, parameter names and values on top of the
schema checks), the last-valid-wins tracker the daemon uses for /config,
the local validator (config files, --validate-config), and the file writer's
own refusal."""
from __future__ import annotations

import io
import os
from typing import Any, Dict, List

import pytest
import yaml

from qhb_patroni.cli import validate_command
from qhb_patroni.config import validate_local
from qhb_patroni.config.checks import as_int
from qhb_patroni.config.dynamic import effective_config
from qhb_patroni.config.dynvalid import DynamicTracker, dynamic_problems, require_valid_dynamic
from qhb_patroni.config.errors import ConfigError
from qhb_patroni.config.gucnames import name_problem, value_problem
from qhb_patroni.config.validator import validate_dynamic
from qhb_patroni.manager import conffiles as cf
from qhb_patroni.manager.settings import ManagerError

from .helpers import base


def lines(data: Any) -> List[str]:
    return [p.line() for p in dynamic_problems(data)]


@pytest.mark.parametrize("data, expected", [
    ({"ttl": float("inf")}, "dynamic configuration: ttl: expected a finite number, got inf"),
    ({"loop_wait": float("nan")}, "dynamic configuration: loop_wait: expected a finite number, got nan"),
    ({"postgresql": {"parameters": {"x": float("-inf")}}},
     "dynamic configuration: postgresql.parameters.x: expected a finite number, got -inf"),
    ({"unknown": [1, {"a": float("inf")}]}, "dynamic configuration: unknown[1].a: expected a finite number, got inf"),
    ({"ttl": 0, "loop_wait": -1}, "dynamic configuration: ttl: must be at least 2, got 0"),
    ({"ttl": 1.5}, "dynamic configuration: ttl: expected an integer, got 1.5"),
    ({"ttl": [30]}, "dynamic configuration: ttl: expected an integer, got a list"),
    ({"postgresql": {"parameters": {"a=1\ninclude '/etc/passwd'\nb": 1}}}, "invalid parameter name"),
    ({"postgresql": {"parameters": {"work_mem": "1MB\n"}}}, "control character '\\n'"),
    ({"postgresql": {"recovery_conf": {"restore_command\n": "x"}}}, "invalid parameter name"),
    ({"postgresql": {"pg_hba": ["host all all 0.0.0.0/0 trust\nlocal all all trust"]}}, "pg_hba[0]: control"),
    ({"standby_cluster": {"host": "a\rb"}}, "standby_cluster.host: control character '\\r'"),
    ([1, 2], "dynamic configuration: expected a mapping, got list"),
    ({"postgresql": {"parameters": {"work_mem": "\udcff"}}}, "postgresql.parameters.work_mem: not valid Unicode"),
    ({"ttl": None}, "dynamic configuration: ttl: expected an integer, got null"),  # the merge refuses it
])
def test_dynamic_problems(data: Any, expected: str) -> None:
    found = lines(data)
    assert any(expected in line for line in found), found


def test_the_timing_rule_does_not_make_a_dynamic_configuration_unusable() -> None:
    timing = [p for p in validate_dynamic({"retry_timeout": 30}) if "loop_wait + 2*retry_timeout" in p.message]
    assert timing and all(p.lenient for p in timing)  # reported (by --validate-config), as 3.0.2 accepts it
    assert not [line for line in lines({"retry_timeout": 30}) if "loop_wait + 2*retry_timeout" in line]


def test_deep_nesting_is_one_problem_not_a_recursion_error() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = {"a": deep}
    assert lines({"x": deep}) == ["dynamic configuration: x.a.a: nested deeper than 32 levels"]


def test_valid_configurations_pass() -> None:
    assert dynamic_problems({}) == []
    assert dynamic_problems({"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": "1048576",
                             "postgresql": {"parameters": {"work_mem": "8MB", "auto_explain.log_min_duration": 5,
                                                           "log_line_prefix": "%t\t[%p] "},
                                            "pg_hba": ["host all all 0.0.0.0/0 md5"]},
                             "synchronous_mode": True, "slots": {"s": {"type": "physical"}}}) == []
    require_valid_dynamic({"ttl": 40})
    with pytest.raises(ConfigError) as info:
        require_valid_dynamic({"ttl": float("inf"), "loop_wait": "x"})
    assert str(info.value) == "dynamic configuration: ttl: expected a finite number, got inf"


def test_non_finite_numbers_never_overflow_the_merge() -> None:
    assert as_int(float("inf")) is None and as_int(float("nan")) is None
    with pytest.raises(ConfigError):  # it used to be an OverflowError the daemon did not catch
        effective_config(base(), {"ttl": float("inf")})


@pytest.mark.parametrize("name, ok", [
    ("work_mem", True), ("_x1", True), ("auto_explain.log_min_duration", True), ("Work_Mem", True),
    ("1abc", False), ("a.b.c", False), ("a b", False), ("a\nb", False), ("a=b", False), ("", False),
    ("x" * 200, False), ("über", False),
])
def test_guc_names(name: str, ok: bool) -> None:
    assert (name_problem(name) == "") is ok


def test_guc_values() -> None:
    assert value_problem("it's a \\ path\twith tab") == ""
    for bad in ("a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb", "a\udcffb"):
        assert value_problem(bad)


class Tracker:
    def __init__(self) -> None:
        self.tracker = DynamicTracker()
        self.errors: List[str] = []

    def offer(self, data: Dict[str, Any], version: int) -> Any:
        effective, error = self.tracker.offer(base(), data, version)
        if error is not None:
            self.errors.append(str(error))
        return effective


def test_an_invalid_stored_configuration_keeps_the_last_valid_one_and_is_reported_once() -> None:
    t = Tracker()
    first = t.offer({"ttl": 40}, 1)
    assert first is not None and first["ttl"] == 40 and t.tracker.valid == {"ttl": 40}
    assert t.offer({"ttl": 40}, 1) is None  # same version: nothing to do
    for _ in range(3):  # the loop looks every cycle: one error for the version
        assert t.offer({"ttl": float("inf")}, 2) is None
    assert t.errors == ["dynamic configuration: ttl: expected a finite number, got inf"]
    assert t.tracker.valid == {"ttl": 40}
    assert t.offer({"ttl": 0, "loop_wait": -1}, 3) is None and len(t.errors) == 2
    fixed = t.offer({"ttl": 50}, 4)
    assert fixed is not None and fixed["ttl"] == 50 and len(t.errors) == 2


def test_local_files_refuse_bad_parameter_names_and_values(tmp_path: Any) -> None:
    config = base()
    config["postgresql"]["parameters"] = {"shared_buffers\ninclude": "/etc/passwd", "work_mem": "1MB\n"}
    config["postgresql"]["recovery_conf"] = {"restore_command": "cp\x00"}
    config["postgresql"]["authentication"]["replication"]["password"] = "pw\nlocalhost:*:*:x:y"
    config["bootstrap"]["dcs"]["postgresql"]["parameters"] = {"bad name": 1}
    found = [p.line() for p in validate_local(config)]
    assert any(line.startswith("postgresql.parameters: invalid parameter name 'shared_buffers\\ninclude'")
               for line in found), found
    for where in ("postgresql.parameters.work_mem", "postgresql.recovery_conf.restore_command",
                  "postgresql.authentication.replication.password", "bootstrap.dcs.postgresql.parameters"):
        assert any(line.startswith(where + ": ") for line in found), (where, found)
    path = os.path.join(str(tmp_path), "bad.yml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    err = io.StringIO()
    assert validate_command(path, environ={}, err=err) == 1
    assert f"{path}: postgresql.parameters.work_mem: control character '\\n' not allowed" in err.getvalue()


def test_the_writer_refuses_what_the_validators_refuse() -> None:
    good = cf.render_main_conf("qhb.base.conf", {"work_mem": "8MB"}, "/d/hba", "/d/ident", {"restore_command": "x"})
    assert "work_mem = '8MB'" in good and "restore_command = 'x'" in good
    with pytest.raises(ManagerError, match="refusing to write parameter 'a\\\\ninclude'"):
        cf.render_main_conf("b", {"a\ninclude": "x"}, "h", "i")
    with pytest.raises(ManagerError, match="control character"):
        cf.render_main_conf("b", {"work_mem": "1\n"}, "h", "i")
    with pytest.raises(ManagerError, match="restore_command"):
        cf.render_main_conf("b", {}, "h", "i", {"restore_command": "cp\r"})
    with pytest.raises(ManagerError):
        cf.render_main_conf("b", {}, "h\nx", "i")
    with pytest.raises(ManagerError):
        cf.render_lines_file(["local all all trust\nhost all all 0.0.0.0/0 trust"])
    with pytest.raises(ManagerError):
        cf.pgpass_line("h", 5432, "u", "pw\n*:*:*:*:x")
