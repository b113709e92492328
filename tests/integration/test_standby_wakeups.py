"""A standby's waits between attempts to stream (wal_retrieve_retry_interval) do not hold
up what the daemon asks of it.  PostgreSQL 15 waits that long after a failed attempt (a
missing slot, a primary that went away) before the next one, and also after taking a
promote request that arrived while an attempt was under way.  The manager ends those
waits with SIGHUP: wake_wal_receiver() (decided by the core for a following standby with
no WAL receiver) and the promote task's end-of-recovery poll.

The standby here runs with wal_retrieve_retry_interval = 10min, so the server alone would
not move within the tests' 30 s limits: the first test passes only when the wake-up did it.
The second promotes during an attempt to stream; it checks that such a promotion ends, but
does not reproduce deterministically the race the promote wake-up is for (the attempt's
walreceiver dies just before the startup process acts on the request, so nothing wakes
it from its retry wait): here the dying walreceiver wakes it itself.  That race is what
bench/fast_profile.py showed (key expiry -> first write one loop_wait late in about half
the kills) and no longer shows.
"""
from __future__ import annotations

import socket
import threading
from typing import Any, Dict, Iterator, List

import pytest

from qhb_patroni.manager import Manager
from tests.fixtures.pgbin import qhb_node_config
from tests.integration.helpers import eventually, sql

pytestmark = pytest.mark.pg


class SilentServer:
    """Listens on a port, accepts connections and never answers: a walreceiver that
    connects stays in its attempt (the startup process waits in its streaming state)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.accepted: List[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture(scope="module")
def pair(qhb_bin_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    base = tmp_path_factory.mktemp("wake")
    a = Manager(qhb_node_config(base, "node-a", bin_dir=qhb_bin_dir))
    b_config = qhb_node_config(base, "node-b", bin_dir=qhb_bin_dir)
    b_config["postgresql"]["parameters"]["wal_retrieve_retry_interval"] = "10min"
    b = Manager(b_config)
    try:
        assert a.bootstrap() is True
        yield {"a": a, "b": b}
    finally:
        for manager in (a, b):
            manager.stop("immediate", timeout=10)


def test_a_standby_whose_slot_was_missing_streams_once_woken(pair: Dict[str, Any]) -> None:
    a: Manager = pair["a"]
    b: Manager = pair["b"]
    # The clone follows a with slot node_b, which a does not have yet (a member that
    # rejoins before the new primary's next cycle created its slot).
    assert b.clone(a.conn_url, a.conn_url) is True
    assert sql(b, "SHOW wal_retrieve_retry_interval") == [("10min",)]
    eventually(lambda: b.observe().wal_receiver is False, what="b's attempt to stream failing (no slot)")
    a.sync_slots(["node_b"])
    assert b.wake_wal_receiver() is True
    eventually(lambda: b.observe().wal_receiver is True, timeout=30, what="b streaming after the wake-up")
    eventually(lambda: any(r.get("application_name") == "node-b" and r.get("state") == "streaming"
                           for r in a.server_status().replication), timeout=30, what="a's walsender for b")


def test_a_promote_request_taken_during_an_attempt_is_not_held_by_the_retry_interval(
        pair: Dict[str, Any]) -> None:
    a: Manager = pair["a"]
    b: Manager = pair["b"]
    assert b.observe().wal_receiver is True  # streaming from a (the test above)
    assert a.stop("immediate") is True
    eventually(lambda: b.observe().wal_receiver is False, what="b's attempts failing (a is down)")
    silent = SilentServer(a.settings.port)
    try:
        assert b.wake_wal_receiver() is True  # the next attempt connects and hangs
        # (pg_stat_wal_receiver shows a receiver only once it is connected)
        eventually(lambda: silent.accepted, what="b's walreceiver connecting to the silent port")
        assert b.promote(30) is True
        assert b.observe().is_primary
    finally:
        silent.close()
