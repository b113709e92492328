"""A stop tells its caller when the server can acknowledge no write any more (the
watchdog is closed there, core/fencing.py): once every client backend has exited, before
the postmaster is gone. A fast shutdown waits for its WAL senders to reach their
standbys (its shutdown checkpoint too), and one that does not answer holds the
postmaster up to wal_sender_timeout.  Against real binaries, with a
WAL receiver stopped by SIGSTOP standing in for a standby that was cut off."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Iterator, List, Tuple

import psycopg2
import pytest

from qhb_patroni.manager import Manager
from qhb_patroni.manager.controldata import shut_down_on_disk, shutdown_checkpoint_on_disk
from qhb_patroni.manager.process import is_alive, writers_left
from tests.fixtures.pgbin import PG_BIN_DIR, qhb_node_config
from tests.integration.helpers import eventually

pytestmark = pytest.mark.pg


@pytest.fixture()
def node(qhb_bin_dir: str, tmp_path: Path) -> Iterator[Manager]:
    manager = Manager(qhb_node_config(tmp_path, "sp-a", bin_dir=qhb_bin_dir))
    try:
        assert manager.bootstrap() is True
        yield manager
    finally:
        manager.stop("immediate", timeout=10)


def streaming(m: Manager) -> bool:
    return bool(m.server.status_conn.query(m.server.local_params(),
                                           "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'"))


def test_the_safepoint_comes_while_a_wal_sender_still_waits(node: Manager, tmp_path: Path) -> None:
    s = node.settings
    receiver = subprocess.Popen(
        [f"{PG_BIN_DIR}/pg_receivewal", "-D", str(tmp_path), "-n",
         "-d", f"host=127.0.0.1 port={s.port} user=replicator password=rep-pass"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = psycopg2.connect(**node.server.local_params())
    try:
        eventually(lambda: streaming(node), what="the receiver to stream")
        pid = node.server.postmaster.pid()
        assert pid is not None
        with client.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = int(cur.fetchone()[0])
        assert writers_left(pid) is True  # the idle client above, at least
        os.kill(receiver.pid, signal.SIGSTOP)  # a standby cut off: no more replies
        seen: List[Tuple[bool, bool, object]] = []

        def on_safepoint() -> None:
            seen.append((is_alive(pid), is_alive(backend), writers_left(pid)))
            os.kill(receiver.pid, signal.SIGCONT)  # let the shutdown finish without waiting for timeouts

        assert node.server.stop("fast", 60, on_safepoint) is True
        assert len(seen) == 1, "called once"
        postmaster_alive, client_alive, writers = seen[0]
        assert postmaster_alive, "before the postmaster was gone"
        assert not client_alive and writers is not True, "after every client backend had exited"
        assert not node.server.is_running()
    finally:
        client.close()
        os.kill(receiver.pid, signal.SIGCONT)
        receiver.terminate()
        receiver.wait(10)


def test_a_stopped_server_is_at_its_safepoint_at_once(node: Manager) -> None:
    assert node.server.stop("fast", 30) is True
    calls: List[str] = []
    assert node.server.stop("fast", 30, lambda: calls.append("safe")) is True
    assert calls == ["safe"]


def test_the_control_file_state_read_directly(node: Manager, tmp_path: Path) -> None:
    control = node.server.layout.pg_control
    assert shut_down_on_disk(control) is False  # running: in production
    assert shutdown_checkpoint_on_disk(control) is None
    assert node.server.stop("fast", 30) is True
    assert shut_down_on_disk(control) is True
    # A stopped primary's last position, read directly: the tool's "Latest checkpoint location".
    tool = node.server.controldata()
    assert tool is not None and tool.state == "shut down"
    assert shutdown_checkpoint_on_disk(control) == tool.checkpoint_lsn == node.stopped_position()
    garbage = tmp_path / "not_a_control_file"
    garbage.write_bytes(b"\xff" * 64)
    assert shut_down_on_disk(str(garbage)) is None
    assert shutdown_checkpoint_on_disk(str(garbage)) is None
    assert shut_down_on_disk(str(tmp_path / "missing")) is None
