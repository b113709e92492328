"""The watchdog end to end: the `testing` driver writes to a named pipe per node and a
fake device reader in the test records what arrives and when (ping `1`, timeout
`Ctimeout=N\\n`, magic close `V`).  One 2-node cluster, watchdog.mode required,
ttl 10 / safety_margin 5: armed with 5 s when a node leads, pinged every loop,
retimed by edit-config, closed on pause / switchover / shutdown, and it fires
(no ping for longer than the timeout) while the leader's daemon is SIGSTOPped."""
from __future__ import annotations

import os
import re
import select
import signal
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.e2e.harness import LocalCluster, Node, healthy, in_recovery, patronictl, running, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e

_TOKEN = re.compile(rb"1|V|Ctimeout=(\d+)\n")


class FakeDevice:
    """The far end of a testing watchdog: a named pipe read by a thread that keeps
    its own write end open (so a closed writer is not an end of file) and notes
    every token with the time it arrived."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.mkfifo(path)
        self.events: List[Tuple[float, str]] = []  # (monotonic, "ping" | "close" | "timeout=N")
        self._lock = threading.Lock()
        self._buf = b""
        self._rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._rfd], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(self._rfd, 4096)
            now = time.monotonic()
            self._buf += chunk
            while True:
                m = _TOKEN.match(self._buf)
                if m is None:
                    break
                token = m.group(0)
                what = "ping" if token == b"1" else "close" if token == b"V" else f"timeout={int(m.group(1))}"
                with self._lock:
                    self.events.append((now, what))
                self._buf = self._buf[m.end():]

    def since(self, t: float) -> List[str]:
        with self._lock:
            return [what for when, what in self.events if when >= t]

    def last(self) -> Tuple[float, str]:
        with self._lock:
            return self.events[-1] if self.events else (0.0, "")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._rfd)
        os.close(self._wfd)


def _wait_event(dev: FakeDevice, t0: float, what: str, timeout: float = 60) -> None:
    wait_for(lambda: what in dev.since(t0), timeout, f"{what} on {dev.path} (saw {dev.since(t0)[-8:]})")


@pytest.fixture(scope="module")
def cluster(etcd: EtcdProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = str(tmp_path_factory.mktemp("watchdog"))
    devices: Dict[str, FakeDevice] = {}

    def local(node: Node) -> Dict[str, Any]:
        path = os.path.join(node.dir, "watchdog.fifo")
        if node.name not in devices:
            os.makedirs(node.dir, exist_ok=True)
            devices[node.name] = FakeDevice(path)
        return {"watchdog": {"mode": "required", "driver": "testing", "device": path, "safety_margin": 5}}

    c = LocalCluster(base, etcd.host_port, nodes=2, ttl=10, loop_wait=2, retry_timeout=4, scope="wd", local=local)
    try:
        with running(c):
            yield c, devices
    finally:
        for dev in devices.values():
            dev.stop()


def test_watchdog_lifecycle(cluster: Any) -> None:
    c, devices = cluster
    primary = healthy(c)
    replica = next(n for n in c.nodes if n is not primary)
    dev, rdev = devices[primary.name], devices[replica.name]

    # Armed with ttl - safety_margin and pinged every loop; the replica's is never touched.
    _wait_event(dev, 0.0, "timeout=5")
    t0 = time.monotonic()
    wait_for(lambda: dev.since(t0).count("ping") >= 3, 30, "three pings")
    assert "timeout=" not in " ".join(rdev.since(0.0)) and "ping" not in rdev.since(0.0)
    status = primary.status() or {}
    assert status["watchdog"] == {"mode": "required", "armed": True, "timeout": 5}
    assert "watchdog_failed" not in status

    # edit-config -s ttl=12: retimed to 7 s, without a close.
    t0 = time.monotonic()
    out = patronictl(c, "edit-config", "-s", "ttl=12", "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    _wait_event(dev, t0, "timeout=7")
    assert "close" not in dev.since(t0)

    # Pause closes it (magic close); resume opens it again.
    t0 = time.monotonic()
    assert patronictl(c, "pause", "--wait").returncode == 0
    _wait_event(dev, t0, "close")
    t1 = time.monotonic()
    time.sleep(5)  # several loops in pause: nothing written
    assert dev.since(t1) == []
    assert primary.is_primary()
    assert patronictl(c, "resume", "--wait").returncode == 0
    _wait_event(dev, t1, "timeout=7")
    _wait_event(dev, t1, "ping")

    # Switchover: the old leader closes it after its demotion, the new one arms it.
    t0 = time.monotonic()
    out = patronictl(c, "switchover", "--leader", primary.name, "--candidate", replica.name, "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    _wait_event(dev, t0, "close")
    _wait_event(rdev, t0, "timeout=7")
    wait_for(lambda: replica.is_primary(), 60, "the candidate to lead")
    _wait_event(rdev, time.monotonic(), "ping")
    t1 = time.monotonic()
    time.sleep(5)
    assert "ping" not in dev.since(t1)  # the old leader, now a replica, leaves it closed

    # A hung daemon: SIGSTOP the leader's daemon; its watchdog gets no ping for longer
    # than the timeout (a real device would reset the machine here) and was not closed.
    assert replica.proc is not None
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        time.sleep(7 + 2)
        last_at, last = rdev.last()
        assert last != "close"
        assert time.monotonic() - max(last_at, stopped_at) > 7, rdev.since(stopped_at)
        assert rdev.since(stopped_at + 0.5) == []
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    # Shutdown: the leader stops its server, gives the lock back and closes the watchdog.
    healthy(c)
    leader = c.primary()
    assert leader is not None
    t0 = time.monotonic()
    assert leader.terminate() == 0
    _wait_event(devices[leader.name], t0, "close", timeout=5)
    assert devices[leader.name].last()[1] == "close"


def test_required_watchdog_that_cannot_be_opened_never_leads(etcd: EtcdProcess,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    """node1 requires a watchdog whose device does not exist: it says so in GET /patroni
    and its log, is refused as switchover candidate, and does not take the lock when the
    leader dies."""
    base = str(tmp_path_factory.mktemp("watchdog-required"))
    missing = os.path.join(base, "no-such-watchdog")

    def local(node: Node) -> Dict[str, Any]:
        if node.index == 0:
            return {"watchdog": {"mode": "off"}}
        return {"watchdog": {"mode": "required", "device": missing}}

    c = LocalCluster(base, etcd.host_port, nodes=2, ttl=10, loop_wait=2, retry_timeout=4, scope="wd-req",
                     local=local)
    with running(c):
        primary = healthy(c)
        assert primary.name == "node0"
        broken = c.node("node1")
        status = broken.status() or {}
        assert status.get("watchdog_failed") is True
        assert status["watchdog"]["error"] == f"watchdog.device {missing}: cannot open it: no such file"
        out = patronictl(c, "switchover", "--leader", "node0", "--candidate", "node1", "--force")
        # refused: the candidate reports watchdog_failed (patronictl 3.0.2 exits 0 on this refusal)
        assert "switchover is not possible: no good candidates have been found" in out.stdout, out.stdout + out.stderr
        assert c.primaries() == [primary]
        primary.kill9()
        time.sleep(10 + 2 * 2 + 5)  # the key has expired and node1 has had several loops
        assert not broken.is_primary() and in_recovery(broken)
        log = broken.log_tail(400)
        assert f"ERROR: watchdog.device {missing}: cannot open it: no such file (watchdog.mode required)" in log
        assert "following a different leader because i am not the healthiest node" in log
        primary.start()
        healthy(c)
