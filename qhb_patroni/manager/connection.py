"""psycopg2 connections with short timeouts (local server, leader, replication)."""
from __future__ import annotations

import select
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import psycopg2
import psycopg2.extensions

from .settings import Credentials, ManagerError, PgSettings

CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 2000


class ServerUnresponsive(ManagerError):
    """The server did not answer within the deadline (stopped, overloaded, a lock...)."""


def host_port_from_url(url: str) -> Tuple[str, int]:
    """postgres://host:port/db -> (host, port)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port or 5432
    except ValueError as exc:
        raise ManagerError(f"bad connection url {url!r}") from exc
    if not host:
        raise ManagerError(f"bad connection url {url!r}")
    return host, port


def credential_params(credentials: Credentials) -> Dict[str, Any]:
    params: Dict[str, Any] = {"user": credentials.username}
    if credentials.password is not None:
        params["password"] = credentials.password
    for key in ("sslmode", "sslkey", "sslpassword", "sslcert", "sslrootcert", "sslcrl", "sslcrldir",
                "gssencmode", "channel_binding"):
        if key in credentials.extra:
            params[key] = credentials.extra[key]
    return params


def local_params(settings: PgSettings, statement_timeout_ms: Optional[int] = STATEMENT_TIMEOUT_MS) -> Dict[str, Any]:
    """Superuser connection to the local server (7.3)."""
    params: Dict[str, Any] = {
        "host": settings.local_connect_host,
        "port": settings.port,
        "dbname": settings.database,
        "fallback_application_name": "Patroni",
        "connect_timeout": CONNECT_TIMEOUT,
    }
    params.update(credential_params(settings.superuser))
    if statement_timeout_ms is not None:
        params["options"] = f"-c statement_timeout={statement_timeout_ms}"
    return params


def remote_params(url: str, credentials: Credentials, dbname: str) -> Dict[str, Any]:
    host, port = host_port_from_url(url)
    params: Dict[str, Any] = {
        "host": host,
        "port": port,
        "dbname": dbname,
        "fallback_application_name": "Patroni",
        "connect_timeout": CONNECT_TIMEOUT,
        "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
    }
    params.update(credential_params(credentials))
    return params


@contextmanager
def connect(params: Mapping[str, Any], replication: bool = False) -> Iterator[Any]:
    """An autocommit connection, closed on exit; errors become ManagerError."""
    kwargs = dict(params)
    if replication:
        kwargs["replication"] = "1"
        kwargs.pop("options", None)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        raise ManagerError(_one_line(exc)) from exc
    try:
        conn.autocommit = True
        yield conn
    except psycopg2.Error as exc:
        raise ManagerError(_one_line(exc)) from exc
    finally:
        conn.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def query(params: Mapping[str, Any], sql: str, args: Any = None, replication: bool = False) -> List[Any]:
    """Run one statement, return all rows (empty list when it returns none)."""
    with connect(params, replication=replication) as conn:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall()) if cur.description is not None else []


def query_within(params: Mapping[str, Any], sql: str, seconds: float, args: Any = None) -> List[Any]:
    """`query` with a deadline for the whole round trip, connection included (libpq's
    connect_timeout counts whole seconds and at least 2).  Raises ServerUnresponsive when
    the server has not answered within `seconds`: the HA loop must not wait for a stalled
    server before renewing the leader key.  The abandoned statement ends by itself
    (statement_timeout) or when the server notices the closed connection."""
    end = time.monotonic() + seconds
    kwargs = dict(params)
    kwargs.pop("connect_timeout", None)
    try:
        conn = psycopg2.connect(async_=True, **kwargs)
    except psycopg2.Error as exc:
        raise ManagerError(_one_line(exc)) from exc
    try:
        _poll_until(conn, end, seconds)
        cur = conn.cursor()
        cur.execute(sql, args)
        _poll_until(conn, end, seconds)
        return list(cur.fetchall()) if cur.description is not None else []
    except psycopg2.Error as exc:
        raise ManagerError(_one_line(exc)) from exc
    finally:
        conn.close()


def _poll_until(conn: Any, end: float, seconds: float) -> None:
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        left = end - time.monotonic()
        if left <= 0:
            raise ServerUnresponsive(f"no answer from the server within {seconds:g} s")
        fd = conn.fileno()
        if state == psycopg2.extensions.POLL_READ:
            select.select([fd], [], [], left)
        elif state == psycopg2.extensions.POLL_WRITE:
            select.select([], [fd], [], left)
        else:  # pragma: no cover - psycopg2 documents no other state
            raise ManagerError(f"unexpected connection poll state {state}")
