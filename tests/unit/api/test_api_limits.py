"""Connection caps and descriptor reserve (issue 12, item 9): pure bookkeeping of
limits.Admission, the caps derived from the open files limit, raising RLIMIT_NOFILE."""
from __future__ import annotations

import resource
from typing import List

import pytest

from qhb_patroni.api.limits import (
    RESERVED_DESCRIPTORS,
    Admission,
    ConnectionLimits,
    connection_limits,
    descriptor_budget,
    raise_nofile_limit,
)


class Closed:
    def __init__(self) -> None:
        self.names: List[str] = []

    def closer(self, name: str) -> Closer:
        return Closer(self, name)


class Closer:
    def __init__(self, log: Closed, name: str) -> None:
        self.log, self.name = log, name

    def __call__(self) -> None:
        self.log.names.append(self.name)


def test_global_cap_evicts_the_oldest_idle() -> None:
    closed = Closed()
    adm = Admission(ConnectionLimits(max_connections=3, per_address=3))
    a = adm.admit("10.0.0.1", closed.closer("a"))
    b = adm.admit("10.0.0.2", closed.closer("b"))
    c = adm.admit("10.0.0.3", closed.closer("c"))
    assert a and b and c and adm.total == 3
    adm.busy(a)  # a request in progress: not a candidate
    adm.busy(b)
    adm.idle(b)  # b idle again: now younger than c
    d = adm.admit("10.0.0.4", closed.closer("d"))
    assert d is not None and closed.names == ["c"] and adm.total == 3 and adm.evicted == 1
    assert adm.per_address == {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.4": 1}


def test_nothing_idle_refuses_the_new_connection() -> None:
    closed = Closed()
    adm = Admission(ConnectionLimits(max_connections=2, per_address=2))
    slots = [adm.admit("10.0.0.1", closed.closer(str(i))) for i in range(2)]
    for slot in slots:
        assert slot is not None
        adm.busy(slot)
    assert adm.admit("10.0.0.9", closed.closer("x")) is None
    assert closed.names == [] and adm.refused == 1 and adm.total == 2


def test_per_address_cap_takes_from_that_address_only() -> None:
    closed = Closed()
    adm = Admission(ConnectionLimits(max_connections=10, per_address=2))
    other = adm.admit("10.0.0.2", closed.closer("other"))  # oldest idle overall
    first = adm.admit("10.0.0.1", closed.closer("first"))
    second = adm.admit("10.0.0.1", closed.closer("second"))
    assert other and first and second
    third = adm.admit("10.0.0.1", closed.closer("third"))
    assert third is not None
    assert closed.names == ["first"] and adm.per_address["10.0.0.1"] == 2 and first.released
    adm.busy(second)
    adm.busy(third)
    assert adm.admit("10.0.0.1", closed.closer("fourth")) is None  # its own are all busy
    assert closed.names == ["first"]


def test_release_is_idempotent_and_released_slots_never_idle() -> None:
    adm = Admission(ConnectionLimits(max_connections=5, per_address=5))
    slot = adm.admit("h", lambda: None)
    assert slot is not None
    adm.release(slot)
    adm.release(slot)
    adm.idle(slot)
    assert adm.total == 0 and adm.per_address == {} and adm.idle_count == 0


def test_bookkeeping_stays_exact_under_churn() -> None:
    adm = Admission(ConnectionLimits(max_connections=50, per_address=7))
    live = []
    for i in range(2000):
        slot = adm.admit(f"10.0.0.{i % 13}", lambda: None)
        if slot is not None:
            live.append(slot)
            if i % 3:
                adm.busy(slot)
        if i % 5 == 0 and live:
            adm.release(live.pop(0))
        live = [s for s in live if not s.released]
        assert adm.total == len(live) <= 50
        assert all(n <= 7 for n in adm.per_address.values())
        assert sum(adm.per_address.values()) == adm.total


@pytest.mark.parametrize("nofile,expected", [(65536, 65536 - RESERVED_DESCRIPTORS), (1024, 1024 - RESERVED_DESCRIPTORS),
                                             (100, 50), (1, 1)])
def test_descriptor_budget_keeps_the_reserve(nofile: int, expected: int) -> None:
    assert descriptor_budget(nofile) == expected


def test_connection_limits_are_clamped_under_the_descriptor_limit() -> None:
    limits, note = connection_limits({}, 65536)
    assert limits == ConnectionLimits(1000, 100) and note is None
    limits, note = connection_limits({"max_connections": 5000, "max_connections_per_address": 20}, 1024)
    assert limits == ConnectionLimits(1024 - RESERVED_DESCRIPTORS, 20)
    assert note is not None and "restapi.max_connections" in note and "LimitNOFILE" in note
    limits, _ = connection_limits({"max_connections": 10, "max_connections_per_address": 50}, 65536)
    assert limits == ConnectionLimits(10, 10)


def test_raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 256:
        pytest.skip("hard open files limit too low to test")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        assert raise_nofile_limit(target=200) == (200, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 200
        assert raise_nofile_limit(target=150) == (200, hard)  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_total_cap_takes_from_the_heaviest_address() -> None:
    """A peer with one idle connection, older than all of the flooder's, is kept."""
    closed = Closed()
    adm = Admission(ConnectionLimits(max_connections=4, per_address=4))
    assert adm.admit("10.0.0.9", closed.closer("peer"))
    for i in range(3):
        assert adm.admit("10.0.0.1", closed.closer(f"flood{i}"))
    assert adm.admit("10.0.0.5", closed.closer("check")) is not None
    assert closed.names == ["flood0"]
    assert adm.admit("10.0.0.6", closed.closer("check2")) is not None
    assert closed.names == ["flood0", "flood1"]
    # now 10.0.0.1 holds 1 like the others: the one idle the longest (the peer) gives way
    assert adm.admit("10.0.0.7", closed.closer("check3")) is not None
    assert closed.names == ["flood0", "flood1", "peer"]
