"""--validate-config warns about watchdog timings that cannot fence in time (fast profile)."""
from __future__ import annotations

from typing import Any, Dict, List

from qhb_patroni.config.validator import validate_local


def _config(ttl: int, loop_wait: int, retry_timeout: int, **dog: Any) -> Dict[str, Any]:
    return {"scope": "s", "name": "n", "etcd": {"host": "127.0.0.1:2379"},
            "restapi": {"listen": "127.0.0.1:8008", "connect_address": "127.0.0.1:8008"},
            "postgresql": {"listen": "127.0.0.1:5432", "connect_address": "127.0.0.1:5432", "data_dir": "/d",
                           "authentication": {"superuser": {"username": "a"}, "replication": {"username": "r"}}},
            "bootstrap": {"dcs": {"ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout}},
            "watchdog": dict(dog)}


def _watchdog_lines(cfg: Dict[str, Any]) -> List[str]:
    return [p.line() for p in validate_local(cfg) if p.path == ("watchdog", "safety_margin")]


def test_fast_profile_with_the_default_margin_is_warned_about_naming_the_keys() -> None:
    lines = _watchdog_lines(_config(5, 1, 2, mode="required"))
    assert len(lines) == 1
    assert "bootstrap.dcs.loop_wait + bootstrap.dcs.retry_timeout" in lines[0]
    assert "use watchdog.safety_margin 1 or less" in lines[0]


def test_fast_profile_with_margin_1_passes() -> None:
    assert _watchdog_lines(_config(5, 1, 2, mode="required", safety_margin=1)) == []


def test_ten_two_four_with_the_default_margin_is_warned_about() -> None:
    assert _watchdog_lines(_config(10, 2, 4, mode="automatic"))
    assert _watchdog_lines(_config(10, 2, 4, mode="automatic", safety_margin=3)) == []


def test_watchdog_off_is_not_checked() -> None:
    assert _watchdog_lines(_config(5, 1, 2, mode="off")) == []
