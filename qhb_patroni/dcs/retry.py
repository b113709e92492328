"""The one retry loop of the DCS clients (etcd v2, etcd v3, Consul): try the current
endpoint, move on to the next on a retriable failure, pause with exponential backoff
once every endpoint failed, and give up when `retry_timeout` is spent.  The clock and
the sleep are injected (tests and the simulation never wait for real time)."""
from __future__ import annotations

import time
from typing import Callable, List, Protocol, TypeVar

T = TypeVar("T")

FIRST_PAUSE = 0.1  # seconds after the first round of failures, doubling
MAX_PAUSE = 1.0
MIN_REQUEST_TIMEOUT = 1.0  # no single attempt gets less time than this (unless the deadline is closer)
MARGIN = 0.05  # no attempt is started with less time than this left


class EndpointRing(Protocol):
    """The client's endpoints, the current one first; `rotate()` moves to the next."""

    @property
    def urls(self) -> List[str]: ...

    @property
    def endpoint(self) -> str: ...

    def rotate(self) -> None: ...


class RetryExhausted(Exception):
    """retry_timeout spent: `url` is the endpoint tried last, `reason` its failure."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def call_with_retry(
    attempt: Callable[[str, float], T],
    ring: EndpointRing,
    retry_timeout: float,
    classify: Callable[[str, Exception], str],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`attempt(url, timeout)` until one answers.  `classify(url, exc)` returns the reason
    of a retriable failure, or raises what the caller should see instead (a refused
    compare-and-swap, an authentication error...).  Raises RetryExhausted."""
    deadline = clock() + retry_timeout
    per_request = max(MIN_REQUEST_TIMEOUT, retry_timeout / max(1, len(ring.urls)))
    pause = FIRST_PAUSE
    url, reason = ring.endpoint, "no attempt made"
    while True:
        for _ in range(len(ring.urls)):
            remaining = deadline - clock()
            if remaining <= MARGIN:
                break
            url = ring.endpoint
            try:
                return attempt(url, min(per_request, remaining))
            except Exception as exc:
                reason = classify(url, exc)
            ring.rotate()
        remaining = deadline - clock()
        if remaining <= MARGIN:
            raise RetryExhausted(url, reason)
        sleep(min(pause, remaining))
        pause = min(pause * 2, MAX_PAUSE)
