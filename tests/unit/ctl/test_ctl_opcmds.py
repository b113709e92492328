"""switchover / failover / flush / pause / resume / restart / reload / reinit against a
real etcd and members that are real REST servers with the control endpoints (no
database behind them): prompts, messages and exit codes of patronictl 3.0.2."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest
import yaml
from click.testing import CliRunner, Result

from patronictl.cli import main
from patronictl.client import CtlError
from patronictl.commands.opcmds import parse_scheduled
from qhb_patroni.api.control import ControlApi
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.runtime.commands import CommandQueue
from qhb_patroni.runtime.status import StatusBoard
from tests.fixtures.api import dcs_for, member_data, replica_server, status_view, write_cluster
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.etcd


def ctl(etcd: EtcdProcess, *args: str, input: Optional[str] = None) -> Result:
    env = {"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""}
    return CliRunner().invoke(main, ["-d", f"etcd://{etcd.host_port}", *args], input=input, env=env,
                              catch_exceptions=False)


class Members:
    """n0 (leader), n1, n2: REST servers with the control endpoints, registered in etcd."""

    def __init__(self, etcd: EtcdProcess, scope: str, port_factory: Callable[[], int]) -> None:
        self.servers: List[RestApiServer] = []
        self.queues: Dict[str, CommandQueue] = {}
        entries = []
        for i in range(3):
            name = f"n{i}"
            board = StatusBoard(status_view(name=name, server=replica_server()))
            server = RestApiServer(f"127.0.0.1:{port_factory()}", board)
            queue = CommandQueue()
            ControlApi(dcs=dcs_for(etcd, scope, name), commands=queue, wake=lambda: None,
                       poll_interval=0.05).install(server)
            server.start()
            self.servers.append(server)
            self.queues[name] = queue
            entries.append((name, member_data(name, 5432 + i, server.address[1],
                                              role="master" if i == 0 else "replica")))
        write_cluster(etcd, scope, entries, leader="n0", config={"ttl": 30, "loop_wait": 10})

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def members(etcd_server: EtcdProcess, etcd_scope: str, port_factory: Callable[[], int]) -> Iterator[Members]:
    m = Members(etcd_server, etcd_scope, port_factory)
    yield m
    m.stop()


def in_hours(hours: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)).replace(microsecond=0).isoformat()


def test_switchover_prompts_and_schedules(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    when = in_hours(2)
    r = ctl(etcd_server, "switchover", etcd_scope, input=f"n0\nn2\n{when}\ny\n")
    assert r.exit_code == 0, r.output
    out = r.output
    assert "Primary [n0]: n0" in out
    assert "Candidate ['n1', 'n2'] []: n2" in out
    assert "When should the switchover take place (e.g. " in out and " )  [now]: " in out
    assert f"Are you sure you want to schedule switchover of cluster {etcd_scope} at {when}, demoting current " \
           "leader n0? [y/N]: y" in out
    assert out.count("Current cluster topology") == 1
    assert " Switchover scheduled" in out
    fo = dcs_for(etcd_server, etcd_scope, "x").get_cluster().failover
    assert fo is not None and fo.leader == "n0" and fo.candidate == "n2" and fo.scheduled_at is not None
    assert " Switchover scheduled at: " in ctl(etcd_server, "list", etcd_scope).output
    r = ctl(etcd_server, "flush", etcd_scope, "switchover", "--force")
    assert r.output.strip() == "Success: scheduled switchover deleted"
    assert ctl(etcd_server, "flush", etcd_scope, "switchover").output.strip() == "No pending scheduled switchover"


@pytest.mark.parametrize("args,error", [
    (["--leader", "n1", "--force"], "Member n1 is not the leader of cluster {scope}"),
    (["--leader", "n0", "--candidate", "n0", "--force"], "Switchover target and source are the same."),
    (["--leader", "n0", "--candidate", "ghost", "--force"], "Member ghost does not exist in cluster {scope}"),
    (["--force", "--scheduled", "tomorrow-ish"],
     "Unable to parse scheduled timestamp (tomorrow-ish). It should be in an unambiguous format (e.g. ISO 8601)"),
])
def test_switchover_refusals(etcd_server: EtcdProcess, etcd_scope: str, members: Members, args: List[str],
                             error: str) -> None:
    r = ctl(etcd_server, "switchover", etcd_scope, *args)
    assert r.exit_code == 1
    assert r.stderr.strip() == "Error: " + error.format(scope=etcd_scope)


def test_failover_needs_a_candidate_and_aborts(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    r = ctl(etcd_server, "failover", etcd_scope, "--force")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: Failover could be performed only to a specific candidate"
    r = ctl(etcd_server, "failover", etcd_scope, "--candidate", "n1", input="n\n")
    assert r.exit_code == 1 and "Error: Aborting failover" in r.stderr
    assert f"Are you sure you want to failover cluster {etcd_scope}, demoting current leader n0? [y/N]" in r.output


def test_switchover_without_leader(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    dcs_for(etcd_server, etcd_scope, "n0").delete_leader(None)
    r = ctl(etcd_server, "switchover", etcd_scope, "--force")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: This cluster has no leader"


def test_switchover_falls_back_to_the_dcs(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    members.servers[0].stop()
    r = ctl(etcd_server, "switchover", etcd_scope, "--leader", "n0", "--candidate", "n1", "--force",
            "--scheduled", in_hours(1))
    assert r.exit_code == 0, r.output
    assert "Could not switchover using Patroni api, falling back to DCS" in r.output
    fo = dcs_for(etcd_server, etcd_scope, "x").get_cluster().failover
    assert fo is not None and fo.candidate == "n1"


def test_pause_and_resume(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    r = ctl(etcd_server, "pause", etcd_scope)
    assert r.exit_code == 0 and r.output.strip() == "Success: cluster management is paused"
    assert dcs_for(etcd_server, etcd_scope, "x").get_cluster().paused
    r = ctl(etcd_server, "pause", etcd_scope)
    assert r.exit_code == 1 and r.stderr.strip() == "Error: Cluster is already paused"
    r = ctl(etcd_server, "resume", etcd_scope)
    assert r.exit_code == 0 and r.output.strip() == "Success: cluster management is resumed"
    r = ctl(etcd_server, "resume", etcd_scope)
    assert r.exit_code == 1 and r.stderr.strip() == "Error: Cluster is not paused"


def test_restart_scheduled_and_reload(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    when = in_hours(1)
    r = ctl(etcd_server, "restart", etcd_scope, "n1", "--scheduled", when, "--pg-version", "99.1", "--force")
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1] == "Success: restart scheduled on member n1"
    scheduled = members.queues["n1"].scheduled_restart()
    assert scheduled is not None and scheduled.postgres_version == "99.1"
    r = ctl(etcd_server, "restart", etcd_scope, "n1", "--scheduled", when, "--force")
    assert r.exit_code == 1
    assert r.stdout.strip().splitlines()[-1] == "Failed: another restart is already scheduled on member n1"
    assert r.stderr.strip() == "Error: restart failed on 1 of 1 member(s): n1"
    r = ctl(etcd_server, "restart", etcd_scope, "n1", "--pg-version", "abc", "--force")
    assert r.exit_code == 1 and "is not a valid PostgreSQL version" in r.stderr
    r = ctl(etcd_server, "restart", etcd_scope, "ghost", "--force")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: ghost is not a member of cluster"
    r = ctl(etcd_server, "reload", etcd_scope, "n1", "n2", input="y\n")
    assert "Are you sure you want to reload members n1, n2? [y/N]: y" in r.output
    assert "Reload request received for member n1 and will be processed within 10 seconds" in r.output
    assert "Reload request received for member n2 and will be processed within 10 seconds" in r.output
    assert members.queues["n1"].take_reload() and members.queues["n2"].take_reload()


def test_reinit_refusal_is_reported(etcd_server: EtcdProcess, etcd_scope: str, members: Members) -> None:
    # Nobody serves the queue here: the member answers 503 after its wait, which is reported.
    r = ctl(etcd_server, "reinit", etcd_scope, "n0", "--force")
    assert r.exit_code == 1 and r.stderr.strip() == "Error: n0 is not a member of cluster"  # replicas only


def test_parse_scheduled() -> None:
    assert parse_scheduled(None) is None and parse_scheduled("now") is None
    when = parse_scheduled("2030-01-01T10:00")
    assert when is not None and when.tzinfo is not None
    with pytest.raises(CtlError):
        parse_scheduled("whenever")
    for out_of_range in ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59-01:00"):
        with pytest.raises(CtlError, match="out of range"):
            parse_scheduled(out_of_range)


def test_credentials_from_the_config_file(etcd_server: EtcdProcess, etcd_scope: str, tmp_path: Path,
                                          port_factory: Callable[[], int]) -> None:
    from qhb_patroni.api.security import AccessPolicy

    policy = AccessPolicy.from_config({"authentication": {"username": "admin", "password": "s3cret"}})
    m = Members(etcd_server, etcd_scope, port_factory)
    try:
        for server in m.servers:
            server.access = policy

        def run(password: str, *args: str) -> Result:
            config = tmp_path / f"ctl-{password}.yml"
            config.write_text(yaml.safe_dump({
                "scope": etcd_scope, "etcd": {"host": etcd_server.host_port},
                "restapi": {"authentication": {"username": "admin", "password": password}},
            }))
            return CliRunner().invoke(main, ["-c", str(config), *args], env={"PATRONICTL_CONFIG_FILE": "",
                                                                            "DCS_URL": ""},
                                      catch_exceptions=False)

        r = run("wrong", "pause")
        assert r.output.strip() == "Failed: pause cluster management status code=401, (not authenticated)"
        r = run("s3cret", "pause")
        assert r.output.strip() == "Success: cluster management is paused"
    finally:
        m.stop()


def test_restart_any_picks_one_member_and_prompts(etcd_server: EtcdProcess, etcd_scope: str,
                                                   members: Members) -> None:
    when = in_hours(1)
    r = ctl(etcd_server, "restart", etcd_scope, "--any", "--scheduled", when, "--force")
    assert r.exit_code == 0, r.output
    assert r.output.count("Success: restart scheduled on member") == 1
    assert sum(q.scheduled_restart() is not None for q in members.queues.values()) == 1
    r = ctl(etcd_server, "restart", etcd_scope, "--role", "replica", input=f"n2\n{when}\n\ny\n")
    assert "Which member do you want to restart [n1, n2]? []: n2" in r.output
    assert "When should the restart take place (e.g. " in r.output
    assert "Restart if the PostgreSQL version is less than provided (e.g. 9.5.2)  []: " in r.output
    assert f"Are you sure you want to restart members n2 at {when}? [y/N]: y" in r.output
