"""Property-based fuzzing of the REST API's value checks (issue 12): health-check query
strings and the bodies of the unsafe endpoints. Whatever value arrives, the checks
answer with a result or their documented refusal (health.QueryError -> 400; a status
code and text for /restart and the schedules), never another exception, and what
they accept is finite and bounded. Budget as in test_api_wire_fuzz.py."""
from __future__ import annotations

import datetime as dt
import math
import os
from typing import Any, Dict

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qhb_patroni.api import health
from qhb_patroni.api.control import MAX_TIMEOUT, bounded_loop_wait, parse_schedule, parse_timeout
from qhb_patroni.runtime.status import StatusView
from tests.fixtures.api import NOW, primary_server, replica_server, status_view, two_node_cluster

settings.register_profile("qhb-fuzz-small", max_examples=150, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("qhb-fuzz-large", max_examples=int(os.environ.get("QHB_FUZZ_EXAMPLES") or 20000),
                          deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile("qhb-fuzz-large" if os.environ.get("QHB_FUZZ_EXAMPLES") else "qhb-fuzz-small")

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["1e400", "inf", "-inf", "nan", "Infinity", "30s", "2min", "1h", "0", "-1", "86400", "86401",
                     "1e400min", " 5 ", "5ms", "1d"]),
)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                  st.dictionaries(st.text(max_size=5), inner,
                                                                                  max_size=3)), max_leaves=8)
SCENARIOS_FOR_FUZZ: Dict[str, StatusView] = {
    "primary": status_view("postgresql0", primary_server(), two_node_cluster(), holds_lock=True),
    "lagging replica": status_view("postgresql1", replica_server(), two_node_cluster(last_lsn=10**12)),
    "paused, no DCS view": status_view("postgresql0", primary_server(), None, paused=True),
}
ISO_PARTS = st.sampled_from(["0001", "9999", "2030", "-", "01", "12", "31", "T", " ", ":", "00", "59", "60",
                             ".", "999999", "123456789", "+", "-14:00", "+14:00", "Z", "+0100", "-00:01", "24"])


@FUZZ
@given(JSON_VALUES)
@example(float("inf"))
@example(float("nan"))
@example("1e400")
def test_restart_timeout_is_finite_and_bounded_or_refused(value: Any) -> None:
    seconds, why = parse_timeout(value)
    if seconds is None:
        assert why.startswith("Timeout should be")
    else:
        assert why == "" and math.isfinite(seconds) and 0 < seconds <= MAX_TIMEOUT


@FUZZ
@given(st.one_of(JSON_VALUES, st.lists(ISO_PARTS, max_size=14).map("".join)))
@example("0001-01-01T00:00:00+01:00")
@example("9999-12-31T23:59:59-14:00")
def test_schedules_are_answered_without_exceptions(value: Any) -> None:
    code, text, when = parse_schedule(value, "restart", 1.7e9)
    if code is None:
        assert when is not None and when.tzinfo is not None and when.timestamp() >= 1.7e9
        when.astimezone(dt.timezone.utc)  # representable in UTC: no later conversion can fail
    else:
        assert code in (400, 422) and text and when is None


@FUZZ
@given(JSON_VALUES)
def test_loop_wait_for_request_waits_is_always_finite(value: Any) -> None:
    assert 1.0 <= bounded_loop_wait(value) <= 3600.0


QUERY = st.dictionaries(
    st.sampled_from(["lag", "tag_zone", "tag_nofailover", "x", "lag "]),
    st.one_of(st.text(max_size=30), st.integers(min_value=0).map(str), st.sampled_from(
        ["9" * 25, "9" * 5000, "18446744073709551615", "18446744073709551616", "16777216TB", "1e400", "-1",
         "0x10", "1_0", " 1 kB ", "\u0661\u0662"])),
    max_size=3,
)
PATHS = st.sampled_from(["/", "/primary", "/replica", "/read-only", "/async", "/sync", "/health", "/leader",
                         "/standby-leader", "/read-only-sync", "/liveness", "/readiness", "/whatever"])


@FUZZ
@given(PATHS, QUERY, st.sampled_from(sorted(SCENARIOS_FOR_FUZZ)))
def test_health_queries_raise_only_query_error(path: str, query: Dict[str, str], scenario: str) -> None:
    try:
        code, _ = health.probe(SCENARIOS_FOR_FUZZ[scenario], NOW, path, query)
    except health.QueryError:
        assert "lag" in query
        return
    assert code in (200, 503)
