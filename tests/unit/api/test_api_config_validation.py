"""PATCH and PUT /config refuse a dynamic configuration that cannot be used
(issue 12 items 4 and 6): 400 naming the problem, nothing written to the DCS."""
from __future__ import annotations

import json
from typing import Any, Dict, Tuple

import pytest

from qhb_patroni.config.validator import validate_dynamic
from tests.unit.api import test_api_control as control
from tests.unit.api.test_api_control import Node

make = control.make  # the fixtures of the /config tests next door
trio = control.trio

STORED = {"ttl": 30, "loop_wait": 10}


def _stored(node: Node) -> Dict[str, Any]:
    config = node.dcs.get_cluster().config
    assert config is not None
    return dict(config.data)


def _raw(node: Node, method: str, text: str) -> Tuple[int, str]:
    return node.call(method, "/config", raw=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("text, expected", [
    ('{"ttl": 1e400}', "ttl: expected a finite number, got inf"),
    ('{"ttl": Infinity}', "ttl: expected a finite number, got inf"),
    ('{"loop_wait": NaN}', "loop_wait: expected a finite number, got nan"),
    ('{"loop_wait": -1, "ttl": 0}', "ttl: must be at least 2, got 0"),
    ('{"ttl": "thirty"}', "ttl: expected an integer, got 'thirty'"),
    ('{"synchronous_mode": "maybe"}', "synchronous_mode: expected a boolean"),
    ('{"postgresql": {"parameters": {"work_mem\\ninclude": "/etc/passwd"}}}', "invalid parameter name"),
    ('{"postgresql": {"parameters": {"work_mem": "1MB\\nshared_preload_libraries = x"}}}',
     "postgresql.parameters.work_mem: control character '\\n' not allowed"),
    ('{"postgresql": {"recovery_conf": {"restore_command": "cp %f %p\\r"}}}', "control character"),
    ('{"standby_cluster": {"host": "h", "restore_command": "a\\u0000b"}}', "control character"),
    ('{"x": ' + "[" * 40 + "]" * 40 + "}", "nested deeper than 32 levels"),
])
def test_patch_refuses_an_unusable_configuration(trio: Tuple[Node, Node, Node], text: str, expected: str) -> None:
    n0 = trio[0]
    code, body = _raw(n0, "PATCH", text)
    assert code == 400, body
    assert body.startswith("Invalid dynamic configuration: ") and expected in body
    assert _stored(n0) == STORED
    assert n0.wakes == 0


@pytest.mark.parametrize("text", ['{"ttl": 1e400}', '{"ttl": 0, "loop_wait": -1}',
                                  '{"postgresql": {"parameters": {"a b": 1}}}'])
def test_put_refuses_an_unusable_configuration(trio: Tuple[Node, Node, Node], text: str) -> None:
    n0 = trio[0]
    code, body = _raw(n0, "PUT", text)
    assert code == 400 and body.startswith("Invalid dynamic configuration: ")
    assert _stored(n0) == STORED


def test_a_valid_change_still_goes_through_and_a_fix_of_a_bad_stored_value_too(
        trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    assert n0.call("PATCH", "/config", {"ttl": 40, "postgresql": {"parameters": {"my.option": "a\tb"}}})[0] == 200
    assert _stored(n0)["ttl"] == 40
    # Someone wrote a bad value straight into the DCS: a PATCH that leaves it is refused
    # (naming it), one that fixes it is accepted.
    assert n0.dcs.set_config({"ttl": 30, "loop_wait": "x"})
    code, body = n0.call("PATCH", "/config", {"pause": True})
    assert code == 400 and "loop_wait: expected an integer, got 'x'" in body
    code, body = n0.call("PATCH", "/config", {"loop_wait": 5})
    assert code == 200 and json.loads(body) == {"ttl": 30, "loop_wait": 5}


def test_a_body_nested_too_deep_for_the_json_parser_is_400_not_500(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    for method in ("PATCH", "PUT"):
        code, _ = _raw(n0, method, "[" * 100_000 + "]" * 100_000)
        assert code == 400
    assert _stored(n0) == STORED


def test_the_timing_rule_is_not_a_refusal(trio: Tuple[Node, Node, Node]) -> None:
    # loop_wait + 2*retry_timeout <= ttl: 3.0.2 accepts a /config that breaks it, so do we
    # (--validate-config still reports it).
    n0 = trio[0]
    assert any(p.lenient for p in validate_dynamic({**STORED, "loop_wait": 20}))
    code, body = n0.call("PATCH", "/config", {"loop_wait": 20})
    assert code == 200, body
    assert _stored(n0) == {**STORED, "loop_wait": 20}


def test_a_switchover_time_the_dcs_could_not_hold_is_refused(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    body = {"leader": "node0", "candidate": "node1", "scheduled_at": "9999-12-31T23:59:59-01:00"}
    assert n0.call("POST", "/switchover", body) == (422, "Scheduled switchover time is out of range")
    assert n0.dcs.get_cluster().failover is None
