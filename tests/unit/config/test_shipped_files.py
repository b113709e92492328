"""The systemd units, etcd/Consul examples and haproxy.cfg shipped for DBAs."""
from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from typing import Dict, List

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    with open(os.path.join(ROOT, "systemd", name), encoding="utf-8") as fh:
        parser.read_string(fh.read())
    return parser


def test_qhb_patroni_unit() -> None:
    svc = _unit("qhb-patroni.service")["Service"]
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert (svc["User"], svc["Group"]) == ("qhb", "qhb")
    assert svc["KillMode"] == "process"
    assert svc["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert svc["ExecStart"].split()[0] == "/usr/bin/patroni"
    assert svc["Restart"] == "no"
    assert svc["EnvironmentFile"] == "-/etc/patroni_env.conf"
    # Room for the REST API's default max_connections and the HA loop's reserve (issue 12 item 9).
    from qhb_patroni.api.limits import DEFAULT_MAX_CONNECTIONS, RESERVED_DESCRIPTORS

    assert int(svc["LimitNOFILE"]) >= DEFAULT_MAX_CONNECTIONS + RESERVED_DESCRIPTORS


def test_etcd_unit_and_member_settings() -> None:
    svc = _unit("etcd.service")["Service"]
    assert svc["Type"] == "notify" and svc["User"] == "etcd"
    assert svc["EnvironmentFile"] == "-/etc/etcd/etcd.conf"
    assert "--listen-client-urls" in svc["ExecStart"]
    settings: Dict[str, str] = {}
    with open(os.path.join(ROOT, "systemd", "etcd.conf"), encoding="utf-8") as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                key, _, value = line.strip().partition("=")
                settings[key] = value.strip('"')
    assert settings["ETCD_ENABLE_V2"] == "true"  # our etcd section talks v2
    assert settings["ETCD_NAME"] in settings["ETCD_INITIAL_CLUSTER"]
    assert len(settings["ETCD_INITIAL_CLUSTER"].split(",")) == 3


def test_consul_unit_and_agent_settings() -> None:
    svc = _unit("consul.service")["Service"]
    assert svc["User"] == "consul" and "-config-dir=/etc/consul.d" in svc["ExecStart"]
    with open(os.path.join(ROOT, "systemd", "consul-server.json"), encoding="utf-8") as fh:
        server = json.load(fh)
    with open(os.path.join(ROOT, "systemd", "consul-client.json"), encoding="utf-8") as fh:
        client = json.load(fh)
    assert server["server"] is True and server["bootstrap_expect"] == 3
    assert client["server"] is False and "bootstrap_expect" not in client
    assert server["retry_join"] == client["retry_join"]


def _haproxy_sections() -> Dict[str, List[str]]:
    sections: Dict[str, List[str]] = {}
    current = ""
    with open(os.path.join(ROOT, "examples", "haproxy.cfg"), encoding="utf-8") as fh:
        for line in fh:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace():
                current = line.strip()
                sections[current] = []
            else:
                sections[current].append(line.strip())
    return sections


def test_haproxy_routes_writes_by_primary_and_reads_by_replica() -> None:
    sections = _haproxy_sections()
    checks = {}
    for title, lines in sections.items():
        if not title.startswith("listen qhb-"):
            continue
        bind = next(line for line in lines if line.startswith("bind "))
        check = next(line for line in lines if line.startswith("option httpchk"))
        checks[bind.split(":")[-1]] = check.split()[-1]
        servers = [line for line in lines if line.startswith("server ")]
        assert len(servers) >= 2
        assert all(re.search(r":5432 .*check port 8008", s) for s in servers), servers
        assert "http-check expect status 200" in lines
    assert checks == {"5000": "/primary", "5001": "/replica"}


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_example() -> None:
    result = subprocess.run(["haproxy", "-c", "-f", os.path.join(ROOT, "examples", "haproxy.cfg")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
