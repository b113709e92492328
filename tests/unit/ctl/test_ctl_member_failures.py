"""restart / reload / reinit with a member that does not answer (issue 12 item
11): each member's failure on its own line, the others proceed, reinit --wait
gives up, the exit code says whether all succeeded.  Real etcd, real REST
servers for the members that answer, a closed port for the one that does not."""
from __future__ import annotations

import json
import socket
from typing import Callable, Iterator, List

import pytest
from click.testing import CliRunner, Result

from patronictl.cli import main
from patronictl.commands import membercmds
from qhb_patroni.core.model import Member
from tests.fixtures.api import dcs_for, member_data
from tests.fixtures.etcd import EtcdProcess
from tests.unit.ctl.test_ctl_opcmds import Members

pytestmark = pytest.mark.etcd


def ctl(etcd: EtcdProcess, *args: str) -> Result:
    return CliRunner().invoke(main, ["-d", f"etcd://{etcd.host_port}", *args],
                              env={"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""}, catch_exceptions=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: connections are refused


@pytest.fixture
def cluster(etcd_server: EtcdProcess, etcd_scope: str, port_factory: Callable[[], int]) -> Iterator[Members]:
    """n0 (leader), n1, n2 answer; 'gone' (a replica, sorted first) has a dead REST API."""
    m = Members(etcd_server, etcd_scope, port_factory)
    gone = dcs_for(etcd_server, etcd_scope, "a-gone")
    assert gone.touch_member(member_data("a-gone", 5439, closed_port(), role="replica"))
    yield m
    m.stop()


def test_reload_reports_each_member_and_fails_at_the_end(etcd_server: EtcdProcess, etcd_scope: str,
                                                         cluster: Members) -> None:
    r = ctl(etcd_server, "reload", etcd_scope, "a-gone", "n1", "n2", "--force")
    assert r.exit_code == 1
    out = r.stdout.splitlines()
    assert any(line.startswith("Failed: reload for member a-gone, not reachable: ") for line in out), out
    assert "Reload request received for member n1 and will be processed within 10 seconds" in out
    assert "Reload request received for member n2 and will be processed within 10 seconds" in out
    assert r.stderr.strip() == "Error: reload failed on 1 of 3 member(s): a-gone"
    assert cluster.queues["n1"].take_reload() and cluster.queues["n2"].take_reload()
    ok = ctl(etcd_server, "reload", etcd_scope, "n1", "--force")
    assert ok.exit_code == 0 and ok.stderr == ""


def test_restart_goes_on_after_an_unreachable_member(etcd_server: EtcdProcess, etcd_scope: str,
                                                     cluster: Members) -> None:
    when = "2100-01-01T00:00:00+00:00"
    r = ctl(etcd_server, "restart", etcd_scope, "a-gone", "n2", "--scheduled", when, "--force")
    assert r.exit_code == 1
    assert any(line.startswith("Failed: restart for member a-gone, not reachable: ") for line in r.stdout.splitlines())
    assert "Success: restart scheduled on member n2" in r.stdout
    assert cluster.queues["n2"].scheduled_restart() is not None
    assert r.stderr.strip() == "Error: restart failed on 1 of 2 member(s): a-gone"


def test_reinit_goes_on_and_fails_at_the_end(etcd_server: EtcdProcess, etcd_scope: str, cluster: Members) -> None:
    r = ctl(etcd_server, "reinit", etcd_scope, "a-gone", "--force", "--wait")
    assert r.exit_code == 1
    assert any(line.startswith("Failed: reinitialize for member a-gone, not reachable: ")
               for line in r.stdout.splitlines())
    assert "Waiting for reinitialize" not in r.stdout  # nothing started: nothing to wait for
    assert r.stderr.strip() == "Error: reinitialize failed on 1 of 1 member(s): a-gone"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Answers:
    """obj.request stand-in: a member that answers a state, or raises."""

    def __init__(self, states: dict) -> None:
        self.states = states

    def request(self, member: Member, method: str, endpoint: str, body: object = None,
                timeout: object = None) -> object:
        state = self.states[member.name]
        if state is None:
            raise ConnectionRefusedError("connection refused")

        class Response:
            status = 200
            data = json.dumps({"state": state}).encode()

        return Response()


def test_reinit_wait_gives_up_on_a_silent_member_and_at_the_deadline(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    obj = Answers({"silent": None, "busy": "creating replica", "done": "running"})
    waiting: List[Member] = [Member(name=n, api_url=f"http://{n}:8008/patroni") for n in ("silent", "busy", "done")]
    given_up = membercmds.wait_reinit(obj, waiting, deadline=300.0, clock=clock, sleep=clock.sleep)  # type: ignore
    out = capsys.readouterr().out.splitlines()
    assert given_up == ["silent", "busy"]
    assert "Reinitialize is completed on: done" in out
    assert any(line.startswith("Failed: reinitialize on member silent: no answer for 60 seconds") for line in out)
    assert "Failed: reinitialize on member busy did not complete in time" in out
    assert 300.0 <= clock.now <= 302.0  # the wait ended at its deadline, not later
