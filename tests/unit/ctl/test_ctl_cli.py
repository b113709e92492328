"""patronictl `list` / `version` through click, against a real etcd and real REST servers."""
from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any, Dict, List, Optional

import pytest
import yaml
from click.testing import CliRunner, Result

from patronictl.cli import main
from patronictl.client import CtlError, PatroniRequest, load_ctl_config, parse_dcs
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.core.model import Member
from qhb_patroni.runtime.status import StatusBoard
from tests.fixtures.api import SYSID, dcs_for, member_data, primary_server, status_view, write_cluster
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.ports import free_port


def run(*args: str, env: Optional[Dict[str, str]] = None) -> Result:
    base = {"PATRONICTL_CONFIG_FILE": "", "DCS_URL": ""}
    base.update(env or {})
    return CliRunner().invoke(main, list(args), env=base, catch_exceptions=False)


@pytest.fixture
def three_nodes(etcd_server: EtcdProcess, etcd_scope: str) -> str:
    write_cluster(
        etcd_server,
        etcd_scope,
        [
            ("postgresql0", member_data("postgresql0", 5432, 8008, role="master")),
            ("postgresql1", member_data("postgresql1", 5433, 8009, xlog_location=100)),
            ("postgresql2", member_data("postgresql2", 5434, 8010)),
        ],
        leader="postgresql0",
        sync=("postgresql1",),
        config={"ttl": 30, "loop_wait": 10, "pause": True},
    )
    return etcd_scope


@pytest.mark.etcd
def test_list_against_etcd(etcd_server: EtcdProcess, three_nodes: str) -> None:
    result = run("-d", f"etcd://{etcd_server.host_port}", "list", three_nodes)
    assert result.exit_code == 0, result.output
    title = f" Cluster: {three_nodes} ({SYSID}) "
    border = "+-------------+----------------+--------------+---------+----+-----------+"
    top = border[0] + title + border[1 + len(title):]
    assert result.stdout.splitlines() == [
        top,
        "| Member      | Host           | Role         | State   | TL | Lag in MB |",
        border,
        "| postgresql0 | 127.0.0.1:5432 | Leader       | running |  3 |           |",
        "| postgresql1 | 127.0.0.1:5433 | Sync Standby | running |  3 |         0 |",
        "| postgresql2 | 127.0.0.1:5434 | Replica      | running |  3 |   unknown |",
        border,
        " Maintenance mode: on",
    ]


@pytest.mark.etcd
def test_list_formats_and_scope_from_config(tmp_path: Any, etcd_server: EtcdProcess, three_nodes: str) -> None:
    cfg = tmp_path / "ctl.yaml"
    cfg.write_text(yaml.safe_dump({"scope": three_nodes, "etcd": {"host": etcd_server.host_port}}))
    result = run("-c", str(cfg), "list", "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(m["Member"], m["Role"], m.get("Lag in MB")) for m in doc] == [
        ("postgresql0", "Leader", None),
        ("postgresql1", "Sync Standby", 0),
        ("postgresql2", "Replica", "unknown"),
    ]
    assert all(m["Cluster"] == three_nodes for m in doc)
    tsv = run("-c", str(cfg), "list", "--format", "tsv", "-t").stdout.splitlines()
    assert len(tsv[0]) == len("YYYY-MM-DD HH:MM:SS") and tsv[1].startswith("Cluster\tMember\t")
    extended = run("-c", str(cfg), "list", "-e").stdout
    assert "| Pending restart | Scheduled restart | Tags |" in extended


@pytest.mark.etcd
def test_list_unknown_cluster_is_empty(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    result = run("-d", etcd_server.host_port, "list", etcd_scope)  # no scheme: etcd guessed from the port
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"+ Cluster: {etcd_scope} (uninitialized) ")
    assert len(lines) == 4


def test_list_dcs_down_is_one_line_and_exit_1() -> None:
    result = run("-d", f"etcd://127.0.0.1:{free_port()}", "list", "batman")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "127.0.0.1" in lines[0]


def test_list_without_cluster_name(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    result = run("-d", "etcd://127.0.0.1:1", "list", env={"HOME": str(tmp_path)})
    assert result.exit_code == 0 and result.stdout == ""
    assert "Listing members: No cluster names were provided" in caplog.messages


@pytest.mark.parametrize(
    "args,message",
    [
        (["-c", "/nonexistent/ctl.yaml", "list", "x"], "Provided config file /nonexistent/ctl.yaml not existing"),
        (["-d", "bogus://127.0.0.1:1", "list", "x"], "Unknown dcs scheme: bogus"),
    ],
)
def test_config_errors(args: List[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 1 and message in result.stderr and result.stderr.startswith("Error: ")


def test_version_without_cluster(tmp_path: Any) -> None:
    result = run("version", env={"HOME": str(tmp_path)})
    assert result.exit_code == 0 and result.stdout == "patronictl version 3.0.2\n"


@pytest.mark.etcd
def test_version_with_members(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    api_port, dead_port = free_port(), free_port()
    board = StatusBoard(status_view("m0", primary_server(server_version=150002)))
    server = RestApiServer(f"127.0.0.1:{api_port}", board)
    server.start()
    try:
        write_cluster(
            etcd_server,
            etcd_scope,
            [("m0", member_data("m0", 5432, api_port, role="master")), ("m1", member_data("m1", 5433, dead_port))],
            leader="m0",
        )
        result = run("-d", f"etcd://{etcd_server.host_port}", "version", etcd_scope)
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[:3] == ["patronictl version 3.0.2", "", "m0: Patroni 3.0.2 PostgreSQL 15.2"]
        assert lines[3].startswith("m1: failed to get version: ") and len(lines) == 4
        only = run("-d", f"etcd://{etcd_server.host_port}", "version", etcd_scope, "m1").stdout.splitlines()
        assert len(only) == 3 and only[2].startswith("m1: failed")
        board.update(server=replace(board.get().server, server_version=None, query_ok=False))
        result = run("-d", f"etcd://{etcd_server.host_port}", "version", etcd_scope, "m0")
        assert result.stdout.splitlines()[2] == "m0: Patroni 3.0.2"
    finally:
        server.stop()


@pytest.mark.parametrize(
    "url,section",
    [
        ("etcd://h:1234", {"etcd": {"host": "h:1234"}}),
        ("etcd://h", {"etcd": {"host": "h:2379"}}),
        ("h:8500", {"consul": {"host": "h:8500"}}),
        ("h:2181", {"zookeeper": {"hosts": ["h:2181"]}}),
        ("exhibitor://h", {"exhibitor": {"hosts": ["h"], "port": 8181}}),
        ("h:9999", {"etcd": {"host": "h:9999"}}),
        ("consul://", {"consul": {"host": "localhost:8500"}}),
        ("etcd3://h", {"etcd3": {"host": "h:2379"}}),
    ],
)
def test_parse_dcs(url: str, section: Dict[str, Any]) -> None:
    assert parse_dcs(url) == section


def test_parse_dcs_unknown_scheme() -> None:
    assert parse_dcs(None) is None
    with pytest.raises(CtlError, match="Unknown dcs scheme: zk"):
        parse_dcs("zk://h")


def test_dcs_url_replaces_config_sections(tmp_path: Any) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"scope": "s", "consul": {"host": "c:8500"}, "etcd": {"host": "e:2379"}}))
    config = load_ctl_config(str(cfg), "etcd://x:1", environ={})
    assert config["etcd"] == {"host": "x:1"} and "consul" not in config and config["scope"] == "s"
    kept = load_ctl_config(str(cfg), None, environ={})
    assert kept["consul"] == {"host": "c:8500"}
    from_api = tmp_path / "d.yaml"
    from_api.write_text(yaml.safe_dump({"dcs_api": "consul://y:8500", "namespace": "/n/"}))
    assert load_ctl_config(str(from_api), None, environ={})["consul"] == {"host": "y:8500"}


def test_request_settings() -> None:
    request = PatroniRequest({"ctl": {"insecure": True}, "restapi": {"authentication": {"username": "u",
                                                                                          "password": "p"}}})
    assert request.headers["Authorization"] == "Basic dTpw"
    assert PatroniRequest.endpoint_url("https://h:8008/patroni", "switchover") == "https://h:8008/switchover"
    assert PatroniRequest.endpoint_url("http://h:8008/patroni", None) == "http://h:8008/patroni"
    with pytest.raises(ValueError):
        request(Member(name="x"))


@pytest.mark.etcd
def test_config_file_env_var(tmp_path: Any, etcd_server: EtcdProcess, three_nodes: str) -> None:
    cfg = tmp_path / "ctl.yaml"
    cfg.write_text(yaml.safe_dump({"scope": three_nodes, "etcd": {"host": etcd_server.host_port}}))
    result = run("list", "-f", "yaml", env={"PATRONICTL_CONFIG_FILE": os.fspath(cfg)})
    assert result.exit_code == 0
    assert [m["Member"] for m in yaml.safe_load(result.stdout)] == ["postgresql0", "postgresql1", "postgresql2"]




@pytest.mark.etcd
def test_topology_history_show_config_dsn(etcd_server: EtcdProcess, etcd_scope: str) -> None:
    write_cluster(
        etcd_server,
        etcd_scope,
        [
            ("n0", member_data("n0", 5432, 8008, role="master")),
            ("n1", member_data("n1", 5433, 8009, xlog_location=100)),
            ("n2", member_data("n2", 5434, 8010, xlog_location=100, tags={"replicatefrom": "n1"})),
        ],
        leader="n0",
        config={"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}},
    )
    writer = dcs_for(etcd_server, etcd_scope, "n0")
    assert writer.set_history([[1, 25623960, "no recovery target specified", "2023-03-20T16:57:57+00:00", "n0"],
                               [2, 33554592, "no recovery target specified"]])
    dcs = ["-d", f"etcd://{etcd_server.host_port}"]

    rows = [line for line in run(*dcs, "topology", etcd_scope).stdout.splitlines() if line.startswith("| ")]
    assert [r.split("|")[1].rstrip() for r in rows] == [" Member", " n0", " + n1", "   + n2"]

    hist = run(*dcs, "history", etcd_scope).stdout.splitlines()
    assert hist[1] == "| TL |      LSN | Reason                       | Timestamp                 | New Leader |"
    assert hist[3] == "|  1 | 25623960 | no recovery target specified | 2023-03-20T16:57:57+00:00 | n0         |"
    assert hist[4] == "|  2 | 33554592 | no recovery target specified |                           |            |"
    assert json.loads(run(*dcs, "history", etcd_scope, "-f", "json").stdout)[1] == {
        "TL": 2, "LSN": 33554592, "Reason": "no recovery target specified", "Timestamp": "", "New Leader": "",
    }  # fmt: skip

    shown = yaml.safe_load(run(*dcs, "show-config", etcd_scope).stdout)
    assert shown == {"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}}

    assert run(*dcs, "dsn", etcd_scope).stdout == "host=127.0.0.1 port=5432\n"
    assert run(*dcs, "dsn", etcd_scope, "-m", "n2").stdout == "host=127.0.0.1 port=5434\n"
    assert run(*dcs, "dsn", etcd_scope, "-r", "replica").stdout == "host=127.0.0.1 port=5433\n"
    assert run(*dcs, "dsn", etcd_scope, "-r", "standby-leader").stderr == "Error: Can not find a suitable member\n"
    both = run(*dcs, "dsn", etcd_scope, "-r", "any", "-m", "n1")
    assert both.exit_code == 1 and "mutually exclusive" in both.stderr
