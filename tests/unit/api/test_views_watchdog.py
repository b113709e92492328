"""GET /patroni: what the watchdog says (watchdog_failed, and the `watchdog` object)."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.api.views import node_status
from qhb_patroni.runtime.status import StatusView, WatchdogStatus

VIEW = StatusView(name="n0", scope="s", version="3.0.2", api_url="http://x/patroni", conn_url="postgres://x")


def test_off_says_nothing() -> None:
    doc = node_status(VIEW, 0.0)
    assert "watchdog" not in doc and "watchdog_failed" not in doc


def test_required_and_broken_is_watchdog_failed_with_the_reason() -> None:
    err = "watchdog.device /dev/watchdog: cannot open it: no such file"
    doc = node_status(replace(VIEW, watchdog=WatchdogStatus(mode="required", error=err)), 0.0)
    assert doc["watchdog_failed"] is True
    assert doc["watchdog"] == {"mode": "required", "armed": False, "error": err}


def test_automatic_and_broken_runs_without_it_and_says_so() -> None:
    err = "watchdog.device /dev/watchdog: cannot open it: no such file"
    doc = node_status(replace(VIEW, watchdog=WatchdogStatus(mode="automatic", error=err)), 0.0)
    assert "watchdog_failed" not in doc
    assert doc["watchdog"]["error"] == err and "running without a watchdog" in doc["watchdog"]["note"]


def test_armed() -> None:
    doc = node_status(replace(VIEW, watchdog=WatchdogStatus(mode="required", armed=True, timeout=5)), 0.0)
    assert doc["watchdog"] == {"mode": "required", "armed": True, "timeout": 5}
    assert "watchdog_failed" not in doc
