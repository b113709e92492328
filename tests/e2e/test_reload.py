"""SIGHUP end to end: a real daemon re-reads its file. Tags, log format, server
parameters and the REST listen address change without a restart; an invalid
file (or a changed name) is refused with one log line and the running
configuration is kept."""
from __future__ import annotations

import json
import os
import signal
from typing import Any, Dict, Iterator

import psycopg2
import pytest
import yaml

from tests.e2e.harness import LocalCluster, Node, healthy, http_get, running, wait_for
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[Node]:
    cluster = LocalCluster(str(tmp_path_factory.mktemp("cluster")), etcd.host_port, nodes=1, scope="qhb-reload")
    with running(cluster):
        healthy(cluster)
        yield cluster.nodes[0]


def _patroni(port: int) -> Dict[str, Any]:
    code, body = http_get(f"http://127.0.0.1:{port}/patroni", timeout=2.0)
    doc = json.loads(body)
    assert isinstance(doc, dict)
    return doc


def _show(node: Node, guc: str) -> str:
    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute(f"SHOW {guc}")
        return str(cur.fetchone()[0])


def _rewrite(node: Node, config: Dict[str, Any]) -> None:
    tmp = node.config_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, node.config_path)


def _log(node: Node) -> str:
    with open(node.log_path, encoding="utf-8", errors="replace") as f:
        return f.read()


def test_sighup_applies_local_changes_and_refuses_a_bad_file(node: Node) -> None:
    assert node.proc is not None
    old_port = node.api_port
    assert "tags" not in _patroni(old_port)  # false booleans are not published
    assert _show(node, "work_mem") == "4MB"

    with open(node.config_path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    new_port = free_port()
    config["tags"] = {"nofailover": True, "zone": "dc1"}
    config["log"] = {"level": "DEBUG", "format": "%(levelname)s RELOADED %(message)s"}
    config["postgresql"]["parameters"]["work_mem"] = "8MB"
    config["restapi"]["listen"] = config["restapi"]["connect_address"] = f"127.0.0.1:{new_port}"
    _rewrite(node, config)
    node.proc.send_signal(signal.SIGHUP)

    wait_for(lambda: _patroni(new_port).get("tags") == {"nofailover": True, "zone": "dc1"}, 30,
             "the new tags on the new REST address")
    wait_for(lambda: _show(node, "work_mem") == "8MB", 30, "work_mem reloaded into the server")
    wait_for(lambda: "INFO RELOADED " in _log(node), 30, "log lines in the new format")
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{old_port}/patroni", timeout=1.0)
    # The member key carries the tags too (what the other nodes and patronictl see).
    wait_for(lambda: json.loads(http_get(f"http://127.0.0.1:{new_port}/cluster")[1])["members"][0].get("tags")
             == {"nofailover": True, "zone": "dc1"}, 30, "the tags in the member key")

    bad = dict(config, restapi={"listen": "nowhere", "connect_address": "nowhere"})
    bad["tags"] = {"zone": "dc2"}
    _rewrite(node, bad)
    node.proc.send_signal(signal.SIGHUP)
    line = (f"ERROR RELOADED reload: {node.config_path}: restapi.listen: expected 'host:port', got 'nowhere'; "
            "keeping the running configuration")
    wait_for(lambda: line in _log(node), 30, "the refusal in the log")

    renamed = dict(config, name="other", tags={"zone": "dc3"})
    _rewrite(node, renamed)
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: name cannot change while running (restart qhb-patroni); keeping the running "
             "configuration" in _log(node), 30, "the refused rename in the log")

    # A key the daemon reads only at start: kept, and the log says it waits for a restart.
    moved = dict(config, postgresql=dict(config["postgresql"], bin_dir="/nonexistent/bin"))
    _rewrite(node, moved)
    node.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload: postgresql.bin_dir changed; the running value stays until qhb-patroni is "
             "restarted" in _log(node), 30, "the restart-only key in the log")

    assert node.running()
    status = _patroni(new_port)
    assert status["tags"] == {"nofailover": True, "zone": "dc1"} and status["state"] == "running"
    assert status["role"] == "master"
    assert _show(node, "work_mem") == "8MB"
    # DEBUG shows connection strings and requests; the passwords never appear.
    text = _log(node)
    assert "DEBUG RELOADED " in text
    for secret in ("rep-pass", "rewind_password"):
        assert secret not in text
    _rewrite(node, config)  # leave a valid file behind
