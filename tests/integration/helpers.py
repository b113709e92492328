"""Small helpers shared by the integration tests (real servers)."""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, TypeVar

import psycopg2

from qhb_patroni.manager import Manager

T = TypeVar("T")


def connect(manager: Manager, user: Optional[str] = None, password: Optional[str] = None,
            dbname: Optional[str] = None, **extra: Any) -> Any:
    s = manager.settings
    conn = psycopg2.connect(
        host="127.0.0.1",
        port=s.port,
        dbname=dbname or s.database,
        user=user or s.superuser.username,
        password=password if password is not None else s.superuser.password,
        connect_timeout=3,
        **extra,
    )
    conn.autocommit = True
    return conn


def sql(manager: Manager, text: str, args: Any = None, **kwargs: Any) -> List[Any]:
    conn = connect(manager, **kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute(text, args)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def eventually(probe: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns a truthy value (exceptions count as falsy);
    a generous bound only guards against hanging, it is not a speed assertion."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - keep polling through transient errors
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached; last result: {last!r}")
        time.sleep(0.2)
