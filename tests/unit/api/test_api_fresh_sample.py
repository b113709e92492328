"""The server sample on demand: a request that finds the sample older than a second asks
for the next one and is answered from it; nothing waits for a server that does not answer
(runtime/status.py StatusBoard.wait_for_sample, runtime/sampler.py, api/listener.py)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import replace
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from qhb_patroni.api.server import RestApiServer
from qhb_patroni.runtime.sampler import ServerSampler
from qhb_patroni.runtime.status import ASK_AFTER, FRESH_FOR, WAIT_FOR_SAMPLE, ServerStatus, StatusBoard
from tests.fixtures.api import primary_server, replica_server, status_view, two_node_cluster
from tests.fixtures.ports import free_port


def board_with(server: ServerStatus, sampled_at: float, attached: bool = True) -> StatusBoard:
    board = StatusBoard(status_view("postgresql1", server, two_node_cluster()))
    board.publish_server(server, sampled_at)
    board.sampler_attached = attached
    return board


# ---- the board ---------------------------------------------------------------------------
def test_without_a_sampler_nobody_waits() -> None:
    board = board_with(replica_server(), 0.0, attached=False)
    assert not board.wait_for_sample(100.0, lambda: None)
    assert not board.wanted.is_set()


def test_a_fresh_sample_is_answered_from_at_once() -> None:
    board = board_with(replica_server(), 100.0)
    assert not board.wait_for_sample(100.0 + ASK_AFTER / 2, lambda: None)
    assert not board.wanted.is_set()


def test_a_sample_nearly_a_second_old_asks_for_the_next_without_waiting() -> None:
    board = board_with(replica_server(), 100.0)
    assert not board.wait_for_sample(100.0 + (ASK_AFTER + FRESH_FOR) / 2, lambda: None)
    assert board.wanted.is_set()


def test_an_old_sample_is_waited_for_and_the_publish_calls_back() -> None:
    board = board_with(replica_server(), 100.0)
    called: List[str] = []
    assert board.wait_for_sample(200.0, lambda: called.append("a"))
    assert board.wanted.is_set()
    assert board.wait_for_sample(200.0 + WAIT_FOR_SAMPLE / 2, lambda: called.append("b"))
    assert called == []
    board.publish_server(primary_server(), 200.1)
    assert called == ["a", "b"]
    assert not board.wanted.is_set()
    assert board.get().server.role == "master"
    assert not board.wait_for_sample(200.2, lambda: called.append("c"))  # fresh again


def test_an_overdue_sample_is_not_waited_for() -> None:
    """A server that does not answer holds no request beyond the first WAIT_FOR_SAMPLE."""
    board = board_with(replica_server(), 100.0)
    assert board.wait_for_sample(200.0, lambda: None)
    assert not board.wait_for_sample(200.0 + 2 * WAIT_FOR_SAMPLE, lambda: None)
    assert board.get().server.role == "replica"


def test_a_server_that_did_not_answer_the_last_sample_is_asked_but_not_waited_for() -> None:
    hung = replace(replica_server(), query_ok=False, postmaster_pid=4321)
    board = board_with(hung, 100.0)
    assert not board.wait_for_sample(200.0, lambda: None)
    assert board.wanted.is_set()  # asked: a server that answers again is seen
    stopped = replace(replica_server(), state="stopped", query_ok=False, postmaster_pid=None)
    board.publish_server(stopped, 100.0)  # nothing to wait for either, but cheap: waited for
    assert board.wait_for_sample(200.0, lambda: None)


def test_a_failed_sample_releases_the_waiting_and_the_next_request_asks_again() -> None:
    board = board_with(replica_server(), 100.0)
    called: List[int] = []
    def sample() -> ServerStatus:
        raise RuntimeError("no pid file")

    sampler = ServerSampler(board, sample, clock=lambda: 201.0, idle_interval=lambda: 10.0)
    assert board.wait_for_sample(200.0, lambda: called.append(1))
    sampler.run_once()
    assert called == [1]
    assert not board.wanted.is_set()
    assert board.wait_for_sample(300.0, lambda: called.append(2))  # asks anew, not "overdue"
    assert board.wanted.is_set()


def test_the_sampler_publishes_after_its_before_hook() -> None:
    board = board_with(replica_server(), 100.0)
    seen: List[str] = []
    sampler = ServerSampler(board, sample=lambda: primary_server(), clock=lambda: 150.0,
                            idle_interval=lambda: 10.0, before=lambda: seen.append(board.get().server.role))
    sampler.run_once()
    assert seen == ["replica"]
    assert board.get().server.role == "master"
    assert board.get().server.sampled_at == 150.0


def test_the_sampler_samples_when_asked_and_stops() -> None:
    board = StatusBoard(status_view("postgresql1", replica_server(), two_node_cluster()))
    samples: List[float] = []

    def sample() -> ServerStatus:
        samples.append(time.monotonic())
        return replica_server()

    sampler = ServerSampler(board, sample, time.monotonic, idle_interval=lambda: 3600.0)
    thread = sampler.start()
    deadline = time.monotonic() + 30
    while len(samples) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    done = threading.Event()
    board.publish_server(replica_server(), time.monotonic() - 10)  # an old sample: the next request waits
    assert board.wait_for_sample(time.monotonic(), done.set)
    assert done.wait(30)
    assert len(samples) >= 2
    sampler.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert not board.sampler_attached


# ---- through the REST API ------------------------------------------------------------------
def get_json(server: RestApiServer, path: str) -> Tuple[int, Dict[str, Any]]:
    conn = http.client.HTTPConnection(*server.address, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


@pytest.fixture()
def served() -> Iterator[Tuple[RestApiServer, StatusBoard]]:
    old = replace(replica_server(), replayed_location=1000)
    board = board_with(old, time.monotonic() - 60)  # a minute old: the daemon was idle
    server = RestApiServer(f"127.0.0.1:{free_port()}", board, clock=time.monotonic)
    server.start()
    yield server, board
    server.stop()


def test_a_request_after_an_idle_minute_is_answered_from_a_new_sample(
        served: Tuple[RestApiServer, StatusBoard]) -> None:
    server, board = served

    def sampler() -> None:
        assert board.wanted.wait(30)
        board.publish_server(replace(replica_server(), replayed_location=2000), time.monotonic())

    thread = threading.Thread(target=sampler)
    thread.start()
    code, doc = get_json(server, "/patroni")
    thread.join(30)
    assert code == 200
    assert doc["xlog"]["replayed_location"] == 2000
    assert "stale" not in doc


def test_a_server_that_does_not_answer_holds_no_request(served: Tuple[RestApiServer, StatusBoard]) -> None:
    """Nobody publishes: the request is answered anyway, from the old sample marked stale."""
    server, board = served
    code, doc = get_json(server, "/patroni")
    assert code == 200
    assert doc["xlog"]["replayed_location"] == 1000
    assert doc["stale"]["fields"]
    assert get_json(server, "/replica")[0] == 200  # overdue: answered at once
    assert board.wanted.is_set()


def test_pipelined_requests_on_a_held_connection_are_answered_in_order(
        served: Tuple[RestApiServer, StatusBoard]) -> None:
    server, board = served

    def sampler() -> None:
        assert board.wanted.wait(30)
        board.publish_server(replace(replica_server(), replayed_location=3000), time.monotonic())

    thread = threading.Thread(target=sampler)
    thread.start()
    raw = b"GET /patroni HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(server.address, timeout=30) as s:
        s.sendall(raw)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    thread.join(30)
    answer = b"".join(chunks)
    assert answer.count(b"HTTP/1.0 200") == 2
    assert b'"replayed_location": 3000' in answer or b'"replayed_location":3000' in answer
