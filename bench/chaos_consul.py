"""Consul as the chaos harness's DCS (`--dcs consul`): three server agents, one per
node namespace, each on its node's DCS address.

Every agent is a server (`bootstrap_expect` 3, `retry_join` the two others), so a
partition that cuts a node from the DCS also cuts its agent from the raft quorum,
as with the etcd members.  Each daemon talks to the agent of its own node (the usual
Consul deployment: `consul: {host: <own agent>}`), so killing that agent leaves the
daemon without a DCS although the two others still have a quorum.  The servers set
`session_ttl_min = "1s"` so that a session TTL of ttl/2 is accepted and a dead
leader's key goes after about ttl (docs/dcs.md), and `raft_multiplier = 2` (the
machine is shared; 5 is Consul's default for production).
"""
from __future__ import annotations

import os
import shutil
import signal
from typing import Any, Dict, List

import chaos_cluster as cc
import chaos_net as net

from tests.e2e.harness import http_get

CONSUL_BIN = os.environ.get("QHB_TEST_CONSUL") or shutil.which("consul") or "/usr/local/bin/consul"
HTTP_PORT = 8500


def _is_consul(c: List[str]) -> bool:
    return len(c) >= 2 and c[0] == CONSUL_BIN and c[1] == "agent"


class ConsulMember:
    """One Consul server agent in node `index`'s namespace (same interface as EtcdMember)."""

    def __init__(self, base: str, index: int, nodes: int) -> None:
        self.index = index
        self.name = f"consul{index}"
        self.ns = net.node_ns(index)
        self.dir = os.path.join(base, self.name)
        self.ip = net.etcd_ip(index)
        self.url = f"http://{self.ip}:{HTTP_PORT}"
        self.peers = [net.etcd_ip(i) for i in range(nodes) if i != index]
        self.nodes = nodes
        self.log_path = os.path.join(self.dir, "consul.log")

    @property
    def host_port(self) -> str:
        return f"{self.ip}:{HTTP_PORT}"

    def hcl(self) -> str:
        join = ", ".join(f'"{p}"' for p in self.peers)
        return "\n".join([
            f'node_name = "{self.name}"',
            "server = true",
            f"bootstrap_expect = {self.nodes}",
            f'data_dir = "{os.path.join(self.dir, "data")}"',
            f'bind_addr = "{self.ip}"',
            f'client_addr = "{self.ip}"',
            f"retry_join = [{join}]",
            "retry_interval = \"1s\"",
            f"ports {{ http = {HTTP_PORT}, dns = -1 }}",
            "disable_update_check = true",
            "disable_host_node_id = true",
            'session_ttl_min = "1s"',
            "performance { raft_multiplier = 2 }",
            'log_level = "INFO"',
            "",
        ])

    def start(self) -> None:
        with cc.LIFECYCLE:
            if self.pids():
                return  # already up again (an emulated watchdog reset restarted it)
            os.makedirs(self.dir, exist_ok=True)
            config = os.path.join(self.dir, "consul.hcl")
            with open(config, "w", encoding="utf-8") as f:
                f.write(self.hcl())
            cc.chown_tree(self.dir)
            cc.spawn(self.ns, [CONSUL_BIN, "agent", "-config-file", config], self.log_path,
                     {"PATH": "/usr/bin:/bin", "HOME": self.dir}, self.dir)

    def pids(self) -> List[int]:
        return net.find_pids(self.ns, _is_consul)

    def kill(self) -> None:
        with cc.LIFECYCLE:
            cc.signal_pids(self.pids(), signal.SIGKILL)
            if net.wait_gone(self.ns, _is_consul, 10):
                raise RuntimeError(f"{self.name} survives SIGKILL")

    def healthy(self) -> bool:
        """This agent answers and knows a raft leader."""
        try:
            code, body = http_get(self.url + "/v1/status/leader", timeout=1.0)
            return code == 200 and len(body.strip()) > 2  # '""' while there is none
        except OSError:
            return False


def members(base: str, nodes: int) -> List[ConsulMember]:
    return [ConsulMember(base, i, nodes) for i in range(nodes)]


def node_section(member: ConsulMember) -> Dict[str, Any]:
    """A daemon's DCS section: its own node's agent."""
    return {"consul": {"host": member.host_port}}
