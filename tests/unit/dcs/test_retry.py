"""The DCS clients' one retry loop (dcs/retry.py), on a manual clock: endpoint rotation,
the retry_timeout deadline, backoff, and failures that must not be retried."""
from __future__ import annotations

from typing import List

import pytest

from qhb_patroni.dcs.memory import ManualClock
from qhb_patroni.dcs.retry import RetryExhausted, call_with_retry


class Ring:
    def __init__(self, *urls: str) -> None:
        self.urls: List[str] = list(urls)
        self.current = 0

    @property
    def endpoint(self) -> str:
        return self.urls[self.current]

    def rotate(self) -> None:
        self.current = (self.current + 1) % len(self.urls)


class Refused(Exception):
    pass


def test_moves_to_the_next_endpoint_and_stays_on_the_one_that_answers() -> None:
    clock, ring, tried = ManualClock(), Ring("a", "b", "c"), []

    def attempt(url: str, timeout: float) -> str:
        tried.append(url)
        clock.advance(timeout / 10)
        if url != "c":
            raise ConnectionError(f"{url} down")
        return "answer"

    assert call_with_retry(attempt, ring, 9.0, lambda url, exc: str(exc), clock, clock.advance) == "answer"
    assert tried == ["a", "b", "c"] and ring.endpoint == "c"


def test_gives_up_at_the_deadline_with_backoff_between_rounds() -> None:
    clock, ring, pauses = ManualClock(), Ring("a", "b"), []

    def attempt(url: str, timeout: float) -> str:
        assert timeout <= 10.0
        clock.advance(0.5)
        raise ConnectionError(f"{url} down")

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.advance(seconds)

    start = clock()
    with pytest.raises(RetryExhausted) as caught:
        call_with_retry(attempt, ring, 10.0, lambda url, exc: str(exc), clock, sleep)
    assert clock() - start <= 10.0 + 0.5  # never starts an attempt past the deadline
    assert pauses[:4] == [0.1, 0.2, 0.4, 0.8] and max(pauses) <= 1.0
    assert caught.value.reason.endswith("down")


def test_a_failure_that_must_not_be_retried_goes_through_at_once() -> None:
    clock, ring, tried = ManualClock(), Ring("a", "b"), []

    def attempt(url: str, timeout: float) -> str:
        tried.append(url)
        raise Refused("compare failed")

    def classify(url: str, exc: Exception) -> str:
        if isinstance(exc, Refused):
            raise exc
        return str(exc)

    with pytest.raises(Refused):
        call_with_retry(attempt, ring, 10.0, classify, clock, clock.advance)
    assert tried == ["a"]


def test_each_attempt_gets_its_share_of_the_time_but_never_past_the_deadline() -> None:
    clock, ring, timeouts = ManualClock(), Ring("a", "b", "c", "d"), []

    def attempt(url: str, timeout: float) -> str:
        timeouts.append(timeout)
        clock.advance(timeout)
        raise ConnectionError("timed out")

    with pytest.raises(RetryExhausted):
        call_with_retry(attempt, ring, 6.0, lambda url, exc: str(exc), clock, clock.advance)
    assert timeouts[0] == 1.5  # 6 s over 4 endpoints
    assert sum(timeouts) <= 6.0
