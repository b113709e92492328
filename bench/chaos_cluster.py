"""The chaos harness's cluster: a 3-member etcd (or Consul, chaos_consul.py) and our
daemons, one node per namespace.

Nodes reuse the end-to-end harness (tests/e2e/harness.py): its Node builds the
daemon's configuration (QHB names over the PostgreSQL 15 binaries, see
tests/fixtures/pgbin.py); ChaosNode only moves the addresses onto the node's
namespace, points the DCS at the etcd members (`etcd3` section, v3 API) and starts
the daemon inside the namespace as the unprivileged user.  Every process runs as
that user under `ip netns exec <ns> runuser -u <user> --`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Protocol

import chaos_net as net

from tests.e2e.harness import LocalCluster, Node, http_get, wait_for

USER = os.environ.get("QHB_TEST_USER", "qhbtest")
ETCD_BIN = os.environ.get("QHB_TEST_ETCD", "/usr/bin/etcd")
API_PORT, PG_PORT, ETCD_CLIENT, ETCD_PEER = 8008, 5432, 2379, 2380
processes: List[subprocess.Popen[bytes]] = []  # reaped at teardown
# Starting and killing a node's processes: the faults (main thread) and the emulated
# watchdog's resets and reboots (its own threads) take turns.
LIFECYCLE = threading.RLock()


def chown_tree(path: str) -> None:
    subprocess.run(["chown", "-R", f"{USER}:", path], check=True)


def spawn(ns: str, argv: List[str], log_path: str, env: Dict[str, str], cwd: str) -> None:
    """Start `argv` as USER inside `ns`, output appended to `log_path`."""
    with open(log_path, "ab") as log:
        processes.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, "runuser", "-u", USER, "--", "env", "-i",
             *(f"{k}={v}" for k, v in env.items()), *argv],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True))


def signal_pids(pids: List[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def reap() -> None:
    for p in processes:
        p.poll()


class DcsMember(Protocol):
    """A DCS server in a node's namespace: EtcdMember, chaos_consul.ConsulMember."""
    index: int
    name: str
    ns: str

    def start(self) -> None: ...
    def kill(self) -> None: ...
    def pids(self) -> List[int]: ...
    def healthy(self) -> bool: ...


class EtcdMember:
    def __init__(self, base: str, index: int, nodes: int) -> None:
        self.index = index
        self.name = f"etcd{index}"
        self.ns = net.node_ns(index)
        self.dir = os.path.join(base, self.name)
        self.url = f"http://{net.etcd_ip(index)}:{ETCD_CLIENT}"
        self.cluster = ",".join(f"etcd{i}=http://{net.etcd_ip(i)}:{ETCD_PEER}" for i in range(nodes))
        self.log_path = os.path.join(self.dir, "etcd.log")

    def start(self) -> None:
        with LIFECYCLE:
            if self.pids():
                return  # already up again (an emulated watchdog reset restarted it)
            self._start()

    def _start(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        chown_tree(self.dir)
        peer = f"http://{net.etcd_ip(self.index)}:{ETCD_PEER}"
        # Longer heartbeat/election than etcd's defaults: the machine is shared and slow,
        # and a spurious etcd election is not the fault under test.  Pre-vote (the default
        # from etcd 3.5 on) keeps a member coming back from a partition from deposing
        # the leader, and with it extending every lease by a new election.
        spawn(self.ns, [ETCD_BIN, "--name", self.name, "--data-dir", os.path.join(self.dir, "data"),
                        "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                        "--initial-cluster", self.cluster, "--initial-cluster-state", "new",
                        "--initial-cluster-token", "qhbchaos", "--heartbeat-interval", "200",
                        "--election-timeout", "2000", "--pre-vote"],
              self.log_path, {"PATH": "/usr/bin:/bin", "HOME": self.dir}, self.dir)

    def pids(self) -> List[int]:
        return net.find_pids(self.ns, lambda c: bool(c) and c[0] == ETCD_BIN and self.name in c)

    def kill(self) -> None:
        with LIFECYCLE:
            signal_pids(self.pids(), signal.SIGKILL)
            if net.wait_gone(self.ns, lambda c: bool(c) and c[0] == ETCD_BIN, 10):
                raise RuntimeError(f"{self.name} survives SIGKILL")

    def healthy(self) -> bool:
        try:
            code, body = http_get(self.url + "/health", timeout=1.0)
            return code == 200 and json.loads(body).get("health") == "true"
        except (OSError, ValueError):
            return False


def _is_daemon(c: List[str]) -> bool:
    return len(c) >= 3 and c[1:3] == ["-m", "qhb_patroni"]


class ChaosNode(Node):
    """A harness Node living in its own namespace, on the node's address."""

    def __init__(self, cluster: LocalCluster, index: int, src: str, dcs: Dict[str, Any],
                 watchdog_margin: Optional[int] = None) -> None:
        super().__init__(cluster, index)
        self.api_port, self.pg_port = API_PORT, PG_PORT
        self.ip = net.db_ip(index)
        self.ns = net.node_ns(index)
        self.src = src
        self.dcs = dcs  # the DCS section of this node's configuration
        self.watchdog_margin = watchdog_margin  # None: no watchdog section (mode automatic, no device)

    @property
    def watchdog_device(self) -> str:
        return os.path.join(self.dir, "watchdog")

    @property
    def api(self) -> str:
        return f"http://{self.ip}:{self.api_port}"

    def config(self) -> Dict[str, Any]:
        c = super().config()
        for section in ("etcd", "etcd3", "consul"):
            c.pop(section, None)
        c.update(self.dcs)
        c["restapi"] = {"listen": f"{self.ip}:{API_PORT}", "connect_address": f"{self.ip}:{API_PORT}"}
        pg = c["postgresql"]
        pg["listen"] = pg["connect_address"] = f"{self.ip}:{PG_PORT}"
        pg["parameters"].update({"shared_buffers": "16MB", "max_connections": 40, "wal_keep_size": "64MB"})
        if self.watchdog_margin is not None:  # the harness's emulated device (bench/chaos_watchdog.py)
            c["watchdog"] = {"mode": "required", "driver": "testing", "device": self.watchdog_device,
                             "safety_margin": self.watchdog_margin}
        c["bootstrap"]["qhb_hba"] = [  # every net's addresses lie in 10.213.0.0/16
            "host replication replicator 10.213.0.0/16 md5",
            "host all all 10.213.0.0/16 md5",
            "host all all 127.0.0.1/32 md5",
        ]
        return c

    def start(self) -> None:
        with LIFECYCLE:
            if self.running():
                raise RuntimeError(f"{self.name} already running")
            self._start()

    def ensure_started(self) -> None:
        """Start the daemon unless it runs already (an emulated watchdog reset restarted it)."""
        with LIFECYCLE:
            if not self.running():
                self._start()

    def _start(self) -> None:
        self.write_config()
        chown_tree(self.dir)
        env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": self.dir,
               "PYTHONPATH": self.src, "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        spawn(self.ns, [sys.executable, "-m", "qhb_patroni", self.config_path], self.log_path, env, self.dir)

    def daemon_pids(self) -> List[int]:
        return net.find_pids(self.ns, _is_daemon)

    def running(self) -> bool:
        return bool(self.daemon_pids())

    def kill_daemon(self) -> None:
        with LIFECYCLE:
            signal_pids(self.daemon_pids(), signal.SIGKILL)
            if net.wait_gone(self.ns, _is_daemon, 10):
                raise RuntimeError(f"daemon of {self.name} survives SIGKILL")

    def kill_postmaster(self) -> Optional[int]:
        with LIFECYCLE:
            pm = self.postmaster_pid()
            if pm is not None:
                signal_pids([pm], signal.SIGKILL)
            return pm

    def terminate_daemon(self, timeout: float) -> None:
        signal_pids(self.daemon_pids(), signal.SIGCONT)
        signal_pids(self.daemon_pids(), signal.SIGTERM)
        net.wait_gone(self.ns, _is_daemon, timeout)

    def dsn(self, dbname: str = "qhb") -> str:
        return f"host={self.ip} port={PG_PORT} dbname={dbname} user=qhb password=qhb connect_timeout=2"


def etcd_section(index: int, nodes: int) -> Dict[str, Any]:
    """`etcd3` with every member, the node's own first."""
    hosts = [f"{net.etcd_ip(i)}:{ETCD_CLIENT}" for i in range(nodes)]
    return {"etcd3": {"hosts": [hosts[index]] + [h for h in hosts if h != hosts[index]]}}


def build(base: str, nodes: int, ttl: int, loop_wait: int, retry_timeout: int, dynamic: Dict[str, Any],
          watchdog_margin: Optional[int] = None, dcs: str = "etcd") -> tuple[LocalCluster, List[DcsMember]]:
    """The DCS members and a cluster of ChaosNodes under `base` (nothing started)."""
    src = os.path.join(base, "src")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pkg in ("qhb_patroni", "patronictl"):
        shutil.copytree(os.path.join(repo, pkg), os.path.join(src, pkg),
                        ignore=shutil.ignore_patterns("__pycache__"))
    members: List[DcsMember]
    section: Callable[[int], Dict[str, Any]]
    if dcs == "consul":
        import chaos_consul  # imports this module

        consul = chaos_consul.members(base, nodes)
        members, section = list(consul), lambda i: chaos_consul.node_section(consul[i])
    else:
        members, section = [EtcdMember(base, i, nodes) for i in range(nodes)], lambda i: etcd_section(i, nodes)
    cluster = LocalCluster(base, etcd_host="", nodes=0, ttl=ttl, loop_wait=loop_wait,
                           retry_timeout=retry_timeout, scope="qhb-chaos", dynamic=dynamic,
                           dcs=lambda: section(0))
    cluster.nodes = [ChaosNode(cluster, i, src, section(i), watchdog_margin) for i in range(nodes)]
    return cluster, members


def hard_reset(node: ChaosNode) -> None:
    """What a hardware reset does to a node: every process in its namespace (daemon,
    database, DCS member) dies at once."""
    with LIFECYCLE:
        net.kill_namespace_processes(node.ns)
    reap()


def reboot(node: ChaosNode, member: DcsMember) -> None:
    """The node comes back after a reset: its DCS member and its daemon start, as at boot."""
    with LIFECYCLE:
        member.start()
        node.ensure_started()


def start_dcs(members: List[DcsMember], timeout: float = 90) -> None:
    for m in members:
        m.start()
    wait_for(lambda: all(m.healthy() for m in members), timeout, "the DCS members to be healthy", 0.2)


def streaming(node: Node) -> List[str]:
    """application_name of every standby streaming from `node` over a connection older
    than two seconds: a standby whose timeline diverged connects, is briefly listed as
    streaming and is dropped again every few seconds, and must not count."""
    import psycopg2

    with psycopg2.connect(node.dsn(), options="-c statement_timeout=2000") as conn, conn.cursor() as cur:
        cur.execute("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' "
                    "AND backend_start < now() - interval '2 seconds'")
        return sorted(str(r[0]) for r in cur.fetchall())


def unhealthy(cluster: LocalCluster) -> Optional[str]:
    """None when the cluster is healthy (one leader, every other member running and
    streaming from it, every member's REST API up), else what is wrong."""
    nodes = cluster.nodes
    primaries = [n for n in nodes if n.is_primary()]
    if len(primaries) != 1:
        return f"{len(primaries)} primaries"
    leader = primaries[0]
    try:
        _, body = http_get(leader.api + "/cluster", timeout=1.0)
        members = json.loads(body)["members"]
    except (OSError, ValueError, KeyError) as exc:
        return f"no /cluster from {leader.name}: {exc}"
    leaders = [m["name"] for m in members if m.get("role") == "leader"]
    if leaders != [leader.name]:
        return f"leaders in /cluster: {leaders}, /primary answers on {leader.name}"
    if sorted(m["name"] for m in members) != sorted(n.name for n in nodes):
        return f"members in /cluster: {sorted(m['name'] for m in members)}"
    not_running = [m["name"] for m in members if m.get("state") != "running"]
    if not_running:
        return f"not running: {not_running}"
    try:
        streams = streaming(leader)
    except Exception as exc:
        return f"pg_stat_replication on {leader.name}: {exc}"
    missing = sorted({n.name for n in nodes if n is not leader} - set(streams))
    return f"not streaming from {leader.name}: {missing}" if missing else None


def stuck_replicas(cluster: LocalCluster) -> List[str]:
    """Members that are neither the (single) primary nor streaming from it."""
    primaries = [n for n in cluster.nodes if n.is_primary()]
    if len(primaries) != 1:
        return []
    try:
        streams = set(streaming(primaries[0]))
    except Exception:
        return []
    return [n.name for n in cluster.nodes if n is not primaries[0] and n.name not in streams]


def wait_healthy(cluster: LocalCluster, timeout: float) -> Optional[float]:
    """Seconds until healthy, or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if unhealthy(cluster) is None:
            return time.monotonic() - start
        time.sleep(0.3)
    return None


def stop_all(cluster: LocalCluster, members: List[DcsMember]) -> None:
    """Planned stop of every daemon (SIGTERM, which stops its database), then etcd."""
    for n in cluster.nodes:
        assert isinstance(n, ChaosNode)
        pm = n.postmaster_pid()
        if pm is not None:
            signal_pids([pm], signal.SIGCONT)
        signal_pids(n.daemon_pids(), signal.SIGCONT)
        signal_pids(n.daemon_pids(), signal.SIGTERM)
    for n in cluster.nodes:
        assert isinstance(n, ChaosNode)
        net.wait_gone(n.ns, _is_daemon, 30)
    for m in members:
        signal_pids(m.pids(), signal.SIGTERM)
    reap()
