"""The REST write endpoints (api/control.py) over real HTTP, on the in-memory DCS:
bodies, validation order, refusal texts and codes of 3.0.2, the /failover intent,
/config merges, and the command queue for restart / reinitialize."""
from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from qhb_patroni.api.control import ControlApi, parse_seconds, patch_config
from qhb_patroni.api.security import AccessPolicy
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.core.operator import ReinitCommand, RestartCommand
from qhb_patroni.dcs import ClusterDCS
from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.runtime.commands import CommandQueue
from qhb_patroni.runtime.probe import PeerProber
from qhb_patroni.runtime.status import ServerStatus, StatusBoard, StatusView
from tests.fixtures.api import primary_server, replica_server, status_view

BASE = "/service/batman"


class Node:
    """One fake member: a real REST API serving a StatusView plus the control endpoints."""

    def __init__(self, store: MemoryServer, name: str, port: int, view: StatusView, **control: Any) -> None:
        self.name = name
        self.dcs = ClusterDCS(store.client(name, BASE), name)
        self.board = StatusBoard(view)
        self.wakes = 0
        self.commands = CommandQueue(self._wake)
        self.server = RestApiServer(f"127.0.0.1:{port}", self.board, access=control.pop("access", None))
        control.setdefault("poll_interval", 0.02)
        control.setdefault("prober", PeerProber(timeout=1.0))
        self.control = ControlApi(dcs=ClusterDCS(store.client(name + "-api", BASE), name),
                                  commands=self.commands, wake=self._wake, **control)
        self.control.install(self.server)
        self.server.start()
        self.api_url = f"http://127.0.0.1:{port}/patroni"

    def _wake(self) -> None:
        self.wakes += 1

    def publish(self, role: str = "replica", **extra: Any) -> None:
        data = {"conn_url": "postgres://127.0.0.1:5432/qhb", "api_url": self.api_url, "state": "running",
                "role": role, "version": "3.0.2"}
        data.update(extra)
        assert self.dcs.touch_member(data)

    def call(self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None,
             headers: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.api_url.replace("/patroni", path), data=data, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@pytest.fixture
def make(port_factory: Callable[[], int]) -> Iterator[Callable[..., Node]]:
    store = MemoryServer()
    nodes: List[Node] = []

    def factory(name: str, view: Optional[StatusView] = None, **control: Any) -> Node:
        node = Node(store, name, port_factory(), view or status_view(name=name), **control)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.server.stop()


@pytest.fixture
def trio(make: Callable[..., Node]) -> Tuple[Node, Node, Node]:
    """node0 leads (config written), node1 and node2 replicas; all answer GET /patroni."""
    n0 = make("node0", status_view(name="node0", server=primary_server()))
    n1 = make("node1", status_view(name="node1", server=replica_server()))
    n2 = make("node2", status_view(name="node2", server=replica_server()))
    n0.publish("master")
    n1.publish()
    n2.publish()
    assert n0.dcs.initialize("7214159812345678901", create=True)
    assert n0.dcs.attempt_to_acquire_leader() is not None
    assert n0.dcs.set_config({"ttl": 30, "loop_wait": 10})
    cluster = n0.dcs.get_cluster()
    for n in (n0, n1, n2):
        n.board.update(cluster=cluster)
    return n0, n1, n2


def raw_status(node: Node, head: bytes) -> int:
    with socket.create_connection(node.server.address, timeout=10) as sock:
        sock.sendall(head)
        return int(sock.recv(100).split(b" ", 2)[1])


def in_hours(hours: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)).isoformat()


# ---- bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", [
    ("POST", "/switchover"), ("POST", "/failover"), ("PATCH", "/config"), ("PUT", "/config"),
])
def test_required_body_errors(trio: Tuple[Node, Node, Node], method: str, path: str) -> None:
    n0 = trio[0]
    assert raw_status(n0, f"{method} {path} HTTP/1.0\r\n\r\n".encode()) == 411  # no Content-Length
    assert n0.call(method, path, raw=b"")[0] == 400
    assert n0.call(method, path, raw=b"{broken")[0] == 400
    assert n0.call(method, path, raw=b"[1, 2]")[0] == 400
    assert n0.call(method, path, raw=b"{}")[0] == 400
    assert n0.call(method, path, raw=b"\xff\xfe")[0] == 400


@pytest.mark.parametrize("method,path", [("POST", "/restart"), ("POST", "/reinitialize")])
def test_optional_body_errors(trio: Tuple[Node, Node, Node], method: str, path: str) -> None:
    n1 = trio[1]
    assert n1.call(method, path, raw=b"{broken")[0] == 400
    assert n1.call(method, path, raw=b'"text"')[0] == 400


def test_huge_and_slow_bodies_get_4xx_and_free_the_thread(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    host, port = n0.server.address
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /switchover HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 413")
    n0.server.request_timeout = 0.5
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /switchover HTTP/1.0\r\nContent-Length: 100\r\n\r\n{")
        assert sock.recv(100).startswith(b"HTTP/1.0 408")
    assert n0.call("DELETE", "/switchover") == (404, "no switchover is scheduled")


# ---- /switchover and /failover -----------------------------------------------------


def test_switchover_validation_texts(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    cases = [
        ("/switchover", {"candidate": "node1"}, 400, "Switchover could be performed only from a specific leader"),
        ("/failover", {"leader": "node0"}, 400, "Failover could be performed only to a specific candidate"),
        ("/switchover", {"leader": "node0", "candidate": "node0"}, 400, "Switchover target and source are the same."),
        ("/failover", {"candidate": "node1", "scheduled_at": in_hours(1)}, 400,
         "Scheduled failover is possible only from a specific leader"),
        ("/switchover", {"leader": "node0", "scheduled_at": "2000-01-01T00:00:00+00:00"}, 422,
         "Cannot schedule switchover in the past"),
        ("/switchover", {"leader": "node0", "scheduled_at": "2999-01-01T00:00:00"}, 400,
         "Timezone information is mandatory for the scheduled switchover"),
        ("/switchover", {"leader": "node0", "scheduled_at": "soon"}, 422,
         "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
        ("/switchover", {"leader": "node0", "scheduled_at": 12}, 422,
         "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
        ("/switchover", {"leader": "node1"}, 412, "leader name does not match"),
        ("/switchover", {"leader": "node0", "candidate": "ghost"}, 412, "candidate does not exists"),
        ("/switchover", {"leader": ["node0"]}, 400, "leader and candidate must be member names"),
    ]
    for path, body, code, text in cases:
        assert n0.call("POST", path, body) == (code, text), body
    assert n0.dcs.get_cluster().failover is None  # nothing was written
    assert n0.wakes == 0


def test_no_good_candidates_and_no_members(trio: Tuple[Node, Node, Node], port_factory: Callable[[], int]) -> None:
    n0, n1, n2 = trio
    n1.server.stop()
    n2.board.update(tags={"nofailover": True})
    assert n0.call("POST", "/switchover", {"leader": "node0"}) == (
        412, "switchover is not possible: no good candidates have been found")
    assert n0.call("POST", "/failover", {"candidate": "node1"}) == (
        412, "failover is not possible: no good candidates have been found")
    n1.dcs.delete_member()
    n2.dcs.delete_member()
    assert n0.call("POST", "/switchover", {"leader": "node0"}) == (
        412, "switchover is not possible: cluster does not have members except leader")


def test_sync_mode_candidate_rules(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    assert n0.dcs.set_config({"ttl": 30, "loop_wait": 10, "synchronous_mode": True})
    assert n0.call("POST", "/switchover", {"leader": "node0"}) == (
        412, "switchover is not possible: can not find sync_standby")
    assert n0.dcs.set_sync("node0", ["node2"])
    assert n0.call("POST", "/switchover", {"leader": "node0", "candidate": "node1"}) == (
        412, "candidate name does not match with sync_standby")


def test_paused_rules(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    assert n0.dcs.set_config({"ttl": 30, "loop_wait": 10, "pause": True})
    assert n0.call("POST", "/switchover", {"leader": "node0"}) == (
        400, "Switchover is possible only to a specific candidate in a paused state")
    assert n0.call("POST", "/switchover", {"leader": "node0", "scheduled_at": in_hours(1)}) == (
        400, "Can't schedule switchover in the paused state")


def test_scheduled_switchover_written_and_deleted(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    when = in_hours(1)
    assert n0.call("POST", "/switchover", {"leader": "node0", "scheduled_at": when}) == (202, "Switchover scheduled")
    fo = n0.dcs.get_cluster().failover
    assert fo is not None and fo.leader == "node0" and fo.candidate is None
    assert fo.scheduled_at is not None and fo.scheduled_at.isoformat() == when
    assert n0.wakes == 1
    assert n0.call("DELETE", "/switchover") == (200, "scheduled switchover deleted")
    assert n0.dcs.get_cluster().failover is None
    assert n0.call("DELETE", "/switchover") == (404, "no switchover is scheduled")


def _take_over(old: Node, new: Node, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        old.dcs.delete_leader(None)
        new.dcs.attempt_to_acquire_leader()
        new.dcs.set_failover({})

    t = threading.Thread(target=run)
    t.start()
    return t


def test_immediate_switchover_waits_for_the_new_leader(trio: Tuple[Node, Node, Node]) -> None:
    n0, n1, n2 = trio
    t = _take_over(n0, n1, 0.2)
    assert n0.call("POST", "/switchover", {"leader": "node0", "candidate": "node1"}) == (
        200, 'Successfully switched over to "node1"')
    t.join()
    assert n0.wakes == 1
    t = _take_over(n1, n2, 0.2)
    assert n1.call("POST", "/failover", {"candidate": "node0"}) == (200, 'Failed over to "node2" instead of "node0"')
    t.join()


def test_immediate_switchover_failed_and_unknown(make: Callable[..., Node], trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]

    def clear() -> None:
        time.sleep(0.2)
        n0.dcs.set_failover({})

    t = threading.Thread(target=clear)
    t.start()
    assert n0.call("POST", "/switchover", {"leader": "node0"}) == (503, "Switchover failed")
    t.join()
    # A request nobody acts on (the real wait is 2*max(10, loop_wait) seconds; shortened here).
    assert n0.dcs.manual_failover("node0", "node1")
    assert n0.control.poll_failover_result("node0", "node1", "switchover", 0.3) == (503, "Switchover status unknown")


# ---- /config ---------------------------------------------------------------------------


def test_patch_and_put_config(trio: Tuple[Node, Node, Node]) -> None:
    n0 = trio[0]
    code, body = n0.call("PATCH", "/config", {"pause": True, "postgresql": {"parameters": {"work_mem": "8MB"}}})
    assert code == 200
    assert json.loads(body) == {"ttl": 30, "loop_wait": 10, "pause": True,
                                "postgresql": {"parameters": {"work_mem": "8MB"}}}
    code, body = n0.call("PATCH", "/config", {"pause": None, "postgresql": {"parameters": {"work_mem": None}}})
    assert json.loads(body) == {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {}}}
    assert n0.dcs.get_cluster().config.data == json.loads(body)  # type: ignore[union-attr]
    assert n0.wakes == 2
    assert n0.call("PUT", "/config", {"ttl": 40}) == (200, '{"ttl": 40}')
    assert dict(n0.dcs.get_cluster().config.data) == {"ttl": 40}  # type: ignore[union-attr]


def test_patch_config_without_config_is_503(make: Callable[..., Node]) -> None:
    n = make("lonely")
    assert n.call("PATCH", "/config", {"pause": True})[0] == 503


def test_patch_config_rules() -> None:
    config: Dict[str, Any] = {"a": 1, "b": {"c": "x", "d": 2}}
    assert not patch_config(config, {"a": "1", "b": {"c": "x"}})  # str() equal: unchanged
    assert patch_config(config, {"b": {"d": None, "e": {"f": None, "g": 1}}})
    assert config == {"a": 1, "b": {"c": "x", "e": {"g": 1}}}


# ---- /reload, /restart, /reinitialize --------------------------------------------------


def _serve(node: Node, answer: Callable[[Any], Tuple[bool, str]], count: int = 1) -> threading.Thread:
    """Stand in for the HA loop: complete the next `count` commands with `answer`."""
    def run() -> None:
        done = 0
        deadline = time.monotonic() + 10
        while done < count and time.monotonic() < deadline:
            for cmd in node.commands.pending():
                ok, message = answer(cmd)
                node.commands.finish(cmd.ident, ok, message)
                done += 1
            time.sleep(0.01)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_reload_is_scheduled(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    assert n1.call("POST", "/reload") == (202, "reload scheduled")
    assert n1.commands.take_reload() and not n1.commands.take_reload()
    assert n1.wakes == 1


def test_restart_validation(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    cases = [
        ({"role": "leader"}, 400, "PostgreSQL role should be either primary or replica"),
        ({"timeout": 0}, 400, "Timeout should be a positive number of seconds"),
        ({"timeout": "abc"}, 400, "Timeout should be a positive number of seconds"),
        ({"postgres_version": "fifteen"}, 400, "'fifteen' is not a valid PostgreSQL version, expected X.Y or X.Y.Z"),
        ({"nosuch": 1}, 400, "Unknown filter for the scheduled restart: nosuch"),
        ({"schedule": "2000-01-01T00:00:00+00:00"}, 422, "Cannot schedule restart in the past"),
        ({"schedule": "2999-01-01T00:00:00"}, 400, "Timezone information is mandatory for the scheduled restart"),
        ({"role": "master"}, 503, "restart conditions are not satisfied"),
        ({"postgres_version": "15.0"}, 503, "restart conditions are not satisfied"),
        ({"restart_pending": True}, 503, "restart conditions are not satisfied"),
    ]
    n1.board.update(server=ServerStatus(state="running", role="replica", query_ok=True, server_version=150004))
    for body, code, text in cases:
        assert n1.call("POST", "/restart", body) == (code, text), body
    assert n1.commands.pending() == ()


def test_immediate_restart_waits_for_the_loop(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    n1.board.update(server=ServerStatus(state="running", role="replica", query_ok=True, server_version=150004,
                                        pending_restart=True))
    seen: List[Any] = []
    t = _serve(n1, lambda cmd: (seen.append(cmd), (True, "restarted successfully"))[1])
    assert n1.call("POST", "/restart", {"restart_pending": True, "postgres_version": "15.5", "timeout": "30s",
                                       "role": "replica"}) == (200, "restarted successfully")
    t.join()
    assert seen == [RestartCommand(seen[0].ident, role="replica", postgres_version=150005, restart_pending=True,
                                   timeout=30.0)]
    t = _serve(n1, lambda cmd: (False, "promote already in progress"))
    assert n1.call("POST", "/restart") == (503, "promote already in progress")
    t.join()


def test_scheduled_restart(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    when = in_hours(1)
    assert n1.call("POST", "/restart", {"schedule": when, "postgres_version": "16.1"}) == (202, "Restart scheduled")
    assert n1.call("POST", "/restart", {"schedule": when}) == (409, "Another restart is already scheduled")
    scheduled = n1.commands.scheduled_restart()
    assert scheduled is not None and scheduled.schedule.isoformat() == when and scheduled.postgres_version == "16.1"
    (cmd,) = n1.commands.pending()
    assert isinstance(cmd, RestartCommand) and cmd.scheduled_at == pytest.approx(
        dt.datetime.fromisoformat(when).timestamp())
    assert n1.call("DELETE", "/restart") == (200, "scheduled restart deleted")
    assert n1.call("DELETE", "/restart") == (404, "no restarts are scheduled")
    assert n1.commands.pending() == ()


def test_scheduled_restart_refused_when_paused(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    assert n1.dcs.set_config({"pause": True})
    n1.board.update(cluster=n1.dcs.get_cluster())
    assert n1.call("POST", "/restart", {"schedule": in_hours(1)}) == (500, "Can't schedule restart in the paused state")


def test_reinitialize(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    seen: List[Any] = []
    t = _serve(n1, lambda cmd: (seen.append(cmd), (True, "reinitialize started"))[1])
    assert n1.call("POST", "/reinitialize", {"force": True}) == (200, "reinitialize started")
    t.join()
    assert seen == [ReinitCommand(seen[0].ident, force=True)]
    assert n1.call("POST", "/reinitialize", {"force": "yes"}) == (400, "force must be true or false")


def test_unsafe_endpoints_are_guarded(make: Callable[..., Node]) -> None:
    policy = AccessPolicy.from_config({"authentication": {"username": "u", "password": "p"}})
    n = make("guarded", access=policy)
    for method, path in [("POST", "/switchover"), ("POST", "/failover"), ("DELETE", "/switchover"),
                         ("PATCH", "/config"), ("PUT", "/config"), ("POST", "/reload"), ("POST", "/restart"),
                         ("DELETE", "/restart"), ("POST", "/reinitialize")]:
        assert n.call(method, path, {"x": 1}) == (401, "no auth header received"), path
    assert n.call("POST", "/reload", headers={"Authorization": "Basic dTpw"}) == (202, "reload scheduled")


def test_parse_seconds() -> None:
    assert parse_seconds(5) == 5.0 and parse_seconds("30s") == 30.0 and parse_seconds("2min") == 120.0
    assert parse_seconds("1h") == 3600.0 and parse_seconds(True) is None and parse_seconds("x") is None
    assert parse_seconds([1]) is None


def test_failover_without_a_leader(trio: Tuple[Node, Node, Node]) -> None:
    n0, n1, n2 = trio
    assert n0.dcs.delete_leader(None)

    def take() -> None:
        time.sleep(0.2)
        n1.dcs.attempt_to_acquire_leader()

    t = threading.Thread(target=take)
    t.start()
    assert n1.call("POST", "/failover", {"candidate": "node1"}) == (200, 'Successfully failed over to "node1"')
    t.join()
    fo = n1.dcs.get_cluster().failover
    assert fo is not None and fo.candidate == "node1" and fo.leader is None  # the intent the candidate acts on
    assert n1.wakes == 1


@pytest.mark.parametrize("raw", [b'{"timeout": 1e400}', b'{"timeout": Infinity}', b'{"timeout": -Infinity}',
                                 b'{"timeout": NaN}', b'{"timeout": "1e400"}', b'{"timeout": "inf"}',
                                 b'{"timeout": "nan"}', b'{"timeout": "1e400min"}', b'{"timeout": 86401}',
                                 b'{"timeout": "25h"}'])
def test_restart_with_an_unbounded_timeout_is_refused_before_queueing(trio: Tuple[Node, Node, Node],
                                                                      raw: bytes) -> None:
    """Issue 12 item 5: 400 (never 500) and nothing queued, scheduled or woken."""
    n1 = trio[1]
    n1.board.update(server=ServerStatus(state="running", role="replica", query_ok=True, server_version=150004))
    code, text = n1.call("POST", "/restart", raw=raw)
    assert code == 400, text
    assert text in ("Timeout should be a finite number of seconds, at most 86400",
                    "Timeout should be a positive number of seconds")
    assert n1.commands.pending() == () and n1.commands.scheduled_restart() is None and n1.wakes == 0
    with_schedule = raw[:-1] + b', "schedule": "' + in_hours(1).encode() + b'"}'
    assert n1.call("POST", "/restart", raw=with_schedule)[0] == 400
    assert n1.commands.scheduled_restart() is None


def test_largest_restart_timeout_is_accepted(trio: Tuple[Node, Node, Node]) -> None:
    n1 = trio[1]
    assert n1.call("POST", "/restart", {"timeout": "24h", "schedule": in_hours(1)}) == (202, "Restart scheduled")


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00",
                                  "9999-12-31T23:59:59.999999-00:01"])
def test_schedules_outside_utc_range_are_refused(trio: Tuple[Node, Node, Node], when: str) -> None:
    """A time that cannot be converted to UTC is refused before anything is written or queued."""
    n0, n1 = trio[0], trio[1]
    code, text = n1.call("POST", "/restart", {"schedule": when})
    assert (code, text) == (422, "Scheduled restart time is out of range")
    assert n1.commands.scheduled_restart() is None
    assert n0.call("POST", "/switchover", {"leader": "node0", "scheduled_at": when})[0] == 422
    assert n0.dcs.get_cluster().failover is None


def test_non_finite_loop_wait_does_not_break_request_waits(trio: Tuple[Node, Node, Node]) -> None:
    """A hostile loop_wait in the view (inf/NaN) still gives the reinitialize wait a finite deadline."""
    from qhb_patroni.api.control import bounded_loop_wait

    assert bounded_loop_wait(float("inf")) == 10.0 and bounded_loop_wait(float("nan")) == 10.0
    assert bounded_loop_wait("x") == 10.0 and bounded_loop_wait(1e9) == 3600.0 and bounded_loop_wait(0) == 1.0
    n1 = trio[1]
    n1.board.update(loop_wait=float("inf"))
    t = _serve(n1, lambda cmd: (False, "I am the leader, can not reinitialize"))
    assert n1.call("POST", "/reinitialize", {"force": False}) == (503, "I am the leader, can not reinitialize")
    t.join()
