"""Network namespaces for the chaos harness (root only).

Topology: a bridge `br0` in its own namespace `qhbchaos-br`; one namespace per node
(`qhbchaos-n<i>`) and one for the clients (`qhbchaos-cl`), each joined to the bridge
by a veth pair (`eth0` inside).  Every node has two addresses on its eth0: one for
its database and REST API (10.213.0.11+i) and one for its DCS member
(10.213.1.11+i), so that a node can be cut from the DCS alone.  No address outside
10.213.0.0/16 is used, and nothing is routed out of these namespaces.

Several runs can share the machine, one per "net" N (`use_net`): net 0 is the layout
above; net N >= 1 uses the prefix `qhbchaos<N>` (namespaces `qhbchaos<N>-br`, ...), the
addresses 10.213.<2N>.x and 10.213.<2N+1>.x and its own lock file.  A run only ever
lists, cleans up and removes the namespaces of its own net.

A cut between namespace A and address b is a permanent neighbour entry in A that
maps b to a MAC address nobody owns: A's frames for b go nowhere and are dropped
silently, like on a real broken link (a blackhole route would fail `connect()`
at once instead).  Cuts are always installed in both directions by the caller.
Everything (processes, veths, bridge, tc rules) goes away with the namespaces.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

NOWHERE_MAC = "02:00:00:00:00:01"  # locally administered, owned by no interface
CLONE_NEWNET = 0x40000000
MAX_NET = 127  # third octets 2N and 2N+1 stay inside 10.213.0.0/16
MAX_NODES = 88  # host parts 11 .. 98, below the clients' .100


class Layout(NamedTuple):
    """Names and addresses of one net (pure: derived from N alone)."""
    net: int
    prefix: str  # every namespace of this net is `<prefix>-<something>`
    lock: str
    db_octet: int  # third octet of the database/REST addresses (and the clients')
    dcs_octet: int  # third octet of the DCS member addresses

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-cl"

    @property
    def client_ip(self) -> str:
        return f"10.213.{self.db_octet}.100"

    def node_ns(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    def db_ip(self, i: int) -> str:
        return f"10.213.{self.db_octet}.{11 + i}"

    def dcs_ip(self, i: int) -> str:
        return f"10.213.{self.dcs_octet}.{11 + i}"

    def owns(self, ns: str) -> bool:
        return ns.startswith(self.prefix + "-")


def layout(n: int) -> Layout:
    """Net 0 is the original single-run layout (qhbchaos-*, 10.213.0/1.x, /run/qhbchaos.lock)."""
    if not 0 <= n <= MAX_NET:
        raise ValueError(f"net must be between 0 and {MAX_NET}")
    prefix = "qhbchaos" if n == 0 else f"qhbchaos{n}"
    return Layout(n, prefix, f"/run/{prefix}.lock", 2 * n, 2 * n + 1)


LAYOUT = layout(0)
PREFIX = LAYOUT.prefix
BRIDGE_NS = LAYOUT.bridge_ns
CLIENT_NS = LAYOUT.client_ns
CLIENT_IP = LAYOUT.client_ip


def use_net(n: int) -> Layout:
    """Select net N for everything below (call once, before creating anything)."""
    global LAYOUT, PREFIX, BRIDGE_NS, CLIENT_NS, CLIENT_IP
    LAYOUT = layout(n)
    PREFIX, BRIDGE_NS, CLIENT_NS, CLIENT_IP = LAYOUT.prefix, LAYOUT.bridge_ns, LAYOUT.client_ns, LAYOUT.client_ip
    return LAYOUT


def node_ns(i: int) -> str:
    return LAYOUT.node_ns(i)


def db_ip(i: int) -> str:
    return LAYOUT.db_ip(i)


def etcd_ip(i: int) -> str:
    """The node's DCS address (its etcd member's, or its Consul agent's)."""
    return LAYOUT.dcs_ip(i)


def sh(*argv: str, check: bool = True, timeout: float = 30) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


def our_namespaces() -> List[str]:
    names = []
    for line in sh("ip", "netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if LAYOUT.owns(name):
            names.append(name)
    return names


def ns_pids(ns: str) -> List[int]:
    """Processes in `ns`, leaving out this one and the `ip netns pids` that lists them."""
    out = sh("ip", "netns", "pids", ns, check=False)
    pids = [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]
    return [p for p in pids if cmdline(p)[:3] != ["ip", "netns", "pids"]]


def cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except OSError:
        return []


def find_pids(ns: str, match: Callable[[List[str]], bool]) -> List[int]:
    return [p for p in ns_pids(ns) if match(cmdline(p))]


def kill_namespace_processes(ns: str, timeout: float = 15.0) -> None:
    """SIGKILL everything inside `ns` (except ourselves) until nothing is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = ns_pids(ns)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)  # a stopped process dies only once continued
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes survive in {ns}: {pids}")
        time.sleep(0.2)


def remove_all() -> List[str]:
    """Remove every namespace of ours (and all that runs in them), e.g. the leftovers of
    a killed earlier run.  Returns the names removed."""
    names = our_namespaces()
    for ns in names:
        try:
            kill_namespace_processes(ns)
        except RuntimeError as exc:  # still remove the namespace; say what survived
            print(f"chaos: {exc}", flush=True)
    for ns in names:
        sh("ip", "netns", "del", ns, check=False)
    return names


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


class Entered:
    """Moves the calling thread (call it before starting any thread) into `ns`;
    threads and processes started afterwards inherit it.  `leave()` goes back."""

    def __init__(self, ns: str) -> None:
        self.home = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"
        self._home_fd = os.open(self.home, os.O_RDONLY)
        _setns(f"/run/netns/{ns}")

    def leave(self) -> None:
        if self._home_fd < 0:
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(self._home_fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns(back)")
        finally:
            os.close(self._home_fd)
            self._home_fd = -1


class Network:
    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.cuts: Set[Tuple[str, str]] = set()  # (namespace, address) pairs dropped
        self.shaped: Dict[int, str] = {}
        self.shaping = ""

    def create(self) -> None:
        sh("ip", "netns", "add", BRIDGE_NS)
        sh("ip", "-n", BRIDGE_NS, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", BRIDGE_NS, "link", "set", "br0", "up")
        for i in range(self.nodes):
            self._attach(node_ns(i), f"n{i}", [db_ip(i), etcd_ip(i)])
        self._attach(CLIENT_NS, "cl", [CLIENT_IP])
        self.shaping = self._pick_shaping()

    def _attach(self, ns: str, port: str, addrs: Sequence[str]) -> None:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", BRIDGE_NS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", BRIDGE_NS, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        for addr in addrs:
            sh("ip", "-n", ns, "addr", "add", f"{addr}/16", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def _pick_shaping(self) -> str:
        """netem when the kernel has it; otherwise a token bucket slow enough to queue
        (delay) and overflow (loss), the closest thing a kernel without sch_netem has."""
        probe = ["ip", "netns", "exec", CLIENT_NS, "tc", "qdisc", "add", "dev", "lo", "root"]
        if subprocess.run(probe + ["netem", "delay", "1ms"], capture_output=True).returncode == 0:
            sh("ip", "netns", "exec", CLIENT_NS, "tc", "qdisc", "del", "dev", "lo", "root")
            return "netem delay 100ms 50ms loss 10%"
        return "tbf rate 256kbit burst 4kb latency 300ms"

    def drop(self, pairs: Sequence[Tuple[str, str]]) -> None:
        for ns, addr in pairs:
            if (ns, addr) in self.cuts:
                continue
            sh("ip", "-n", ns, "neigh", "replace", addr, "lladdr", NOWHERE_MAC, "dev", "eth0", "nud", "permanent")
            self.cuts.add((ns, addr))

    def heal(self) -> None:
        for ns, addr in sorted(self.cuts):
            sh("ip", "-n", ns, "neigh", "del", addr, "dev", "eth0", check=False)
        self.cuts.clear()
        for i in list(self.shaped):
            self.unshape(i)

    def shape(self, i: int) -> str:
        """Delay and lose packets on node i's link, both directions."""
        for ns, dev in ((node_ns(i), "eth0"), (BRIDGE_NS, f"n{i}")):
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "replace", "dev", dev, "root", *self.shaping.split())
        self.shaped[i] = self.shaping
        return self.shaping

    def unshape(self, i: int) -> None:
        for ns, dev in ((node_ns(i), "eth0"), (BRIDGE_NS, f"n{i}")):
            sh("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)
        self.shaped.pop(i, None)


def node_pair_cut(a: int, b: int) -> List[Tuple[str, str]]:
    """Both directions between nodes a and b, every address."""
    return [(node_ns(a), db_ip(b)), (node_ns(a), etcd_ip(b)), (node_ns(b), db_ip(a)), (node_ns(b), etcd_ip(a))]


def client_cut(i: int) -> List[Tuple[str, str]]:
    """Both directions between node i and the clients."""
    return [(CLIENT_NS, db_ip(i)), (CLIENT_NS, etcd_ip(i)), (node_ns(i), CLIENT_IP)]


def dcs_cut(i: int, others: Sequence[int]) -> List[Tuple[str, str]]:
    """Node i (daemon and etcd member) cut from the other etcd members, and those from
    it; the clients stop reaching its (minority) member too.  Databases and REST APIs
    stay reachable."""
    out: List[Tuple[str, str]] = [(CLIENT_NS, etcd_ip(i))]
    for o in others:
        out += [(node_ns(i), etcd_ip(o)), (node_ns(o), etcd_ip(i))]
    return out


def wait_gone(ns: str, match: Callable[[List[str]], bool], timeout: float) -> Optional[List[int]]:
    """None once no process in `ns` matches, else the survivors after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        left = find_pids(ns, match)
        if not left:
            return None
        if time.monotonic() > deadline:
            return left
        time.sleep(0.1)
