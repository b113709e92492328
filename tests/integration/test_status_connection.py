"""The kept status connection (manager/statusconn.py) against a real server: it is
reused while it works, a backend that went away is replaced within the same call, a
deadline that runs out raises ServerUnresponsive (and the next call starts afresh),
and while paused (the server is about to stop) nothing is kept."""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from qhb_patroni.manager import Manager
from qhb_patroni.manager.connection import ServerUnresponsive, query
from tests.fixtures.pgbin import qhb_node_config

pytestmark = pytest.mark.pg

PID = "SELECT pg_backend_pid()"


@pytest.fixture(scope="module")
def node(qhb_bin_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    manager = Manager(qhb_node_config(tmp_path_factory.mktemp("statusconn"), "sc-a", bin_dir=qhb_bin_dir))
    try:
        assert manager.bootstrap() is True
        yield manager
    finally:
        manager.stop("immediate", timeout=10)


def backend(manager: Manager) -> int:
    return int(manager.server.status_conn.query(manager.server.local_params(), PID)[0][0])


def test_the_connection_is_kept_between_calls(node: Manager) -> None:
    first = backend(node)
    assert backend(node) == first


def test_a_terminated_backend_is_replaced_in_the_same_call(node: Manager) -> None:
    first = backend(node)
    query(node.server.local_params(), "SELECT pg_terminate_backend(%s)", (first,))
    second = backend(node)
    assert second != first
    assert backend(node) == second


def test_a_deadline_that_runs_out_raises_and_the_next_call_starts_afresh(node: Manager) -> None:
    first = backend(node)
    with pytest.raises(ServerUnresponsive):
        node.server.status_conn.query(node.server.local_params(), "SELECT pg_sleep(3)", 0.3)
    assert backend(node) != first


def test_nothing_is_kept_while_paused(node: Manager) -> None:
    conn = node.server.status_conn
    backend(node)
    conn.pause()
    try:
        assert backend(node) != backend(node)  # a one-off connection each time
    finally:
        conn.resume()
    again = backend(node)
    assert backend(node) == again


def test_local_query_runs_with_arguments_on_the_kept_connection(node: Manager) -> None:
    # The promotion's statements (slots, pg_promote, the recovery poll) go this way.
    first = backend(node)
    assert node.server.local_query("SELECT pg_backend_pid(), %s::text", ("x",)) == [(first, "x")]
    assert node.server.in_recovery() is False
    assert backend(node) == first


def test_a_call_that_may_wait_gets_the_kept_connection_once_the_other_thread_lets_go(node: Manager) -> None:
    conn = node.server.status_conn
    first = backend(node)
    conn._lock.acquire()  # another thread's status query in flight
    releaser = threading.Timer(0.1, conn._lock.release)
    releaser.start()
    try:
        assert int(conn.query(node.server.local_params(), PID, wait=10.0)[0][0]) == first
    finally:
        releaser.join()
    # without waiting, a busy kept connection means a one-off connection
    conn._lock.acquire()
    try:
        assert int(conn.query(node.server.local_params(), PID)[0][0]) != first
    finally:
        conn._lock.release()
