"""The manager's slot operations against real servers: what the server rejects is
logged with its key and nothing else is held up, an active slot is not dropped, a
replica copies a logical slot from the primary and advances it."""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from qhb_patroni.core.slots import SlotSpec
from qhb_patroni.manager import Manager
from tests.fixtures.pgbin import PG_BIN_DIR, make_qhb_bin_dir, pg_available, qhb_node_config
from tests.integration.helpers import eventually, sql

pytestmark = pytest.mark.pg


def _config(base: Path, name: str) -> Dict[str, Any]:
    config = qhb_node_config(base, name, bin_dir=str(make_qhb_bin_dir(base / "bin")))
    config["postgresql"]["parameters"]["wal_level"] = "logical"
    return config


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Manager]]:
    if not pg_available():
        pytest.skip("PostgreSQL 15 binaries missing or running as root")
    base = tmp_path_factory.mktemp("slots")
    p = Manager(_config(base, "sp"))
    r = Manager(_config(base, "sr"))
    try:
        assert p.bootstrap()
        yield {"p": p, "r": r}
    finally:
        for m in (r, p):
            m.stop("immediate", timeout=10)


def _slots(m: Manager) -> Dict[str, Any]:
    return {row[0]: row[1:] for row in sql(m, "SELECT slot_name, slot_type, plugin FROM pg_replication_slots")}


def test_rejected_slots_are_logged_with_their_key(pair: Dict[str, Manager], caplog: pytest.LogCaptureFixture) -> None:
    p = pair["p"]
    caplog.set_level(logging.INFO)
    p.manage_slots((), (SlotSpec("bad", "logical", "qhb", "no_such_plugin"),
                        SlotSpec("nodb", "logical", "missing_db", "test_decoding"),
                        SlotSpec("cdc", "logical", "qhb", "test_decoding"), SlotSpec("phys")), (), None)
    assert _slots(p) == {"cdc": ("logical", "test_decoding"), "phys": ("physical", None)}
    text = caplog.text
    assert "Failed to create logical replication slot 'bad' plugin='no_such_plugin' database='qhb' (slots.bad)" in text
    assert "(slots.nodb)" in text and "missing_db" in text
    details = {s.name: s for s in p.observe().slot_details or ()}
    assert details["cdc"].database == "qhb" and details["cdc"].confirmed_flush_lsn
    assert details["phys"].restart_lsn


def test_active_slot_is_not_dropped(pair: Dict[str, Manager], tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    p = pair["p"]
    caplog.set_level(logging.INFO)
    s = p.settings
    receiver = subprocess.Popen(
        [f"{PG_BIN_DIR}/pg_receivewal", "-D", str(tmp_path), "--slot=phys", "-n",
         "-d", f"host=127.0.0.1 port={s.port} user=replicator password=rep-pass"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: sql(p, "SELECT active FROM pg_replication_slots WHERE slot_name = 'phys'") == [(True,)],
                   what="the receiver to use the slot")
        p.manage_slots(("phys",), (), (), None)
        assert "phys" in _slots(p)
        assert "Unable to drop replication slot 'phys', slot is active" in caplog.text
    finally:
        receiver.terminate()
        receiver.wait(10)
    eventually(lambda: sql(p, "SELECT active FROM pg_replication_slots WHERE slot_name = 'phys'") == [(False,)],
               what="the receiver to go away")
    p.manage_slots(("phys",), (), (), None)
    assert "phys" not in _slots(p)
    assert "Dropped replication slot 'phys'" in caplog.text


def _flush(m: Manager) -> int:
    return int(sql(m, "SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint FROM pg_replication_slots "
                      "WHERE slot_name = 'cdc'")[0][0])


def _consume_and_checkpoint(p: Manager, value: int) -> None:
    sql(p, "INSERT INTO t VALUES (%s)", (value,))
    sql(p, "CHECKPOINT")  # logs the running transactions the slot's restart point moves to
    sql(p, "INSERT INTO t VALUES (%s)", (value + 1,))
    sql(p, "SELECT count(*) FROM pg_logical_slot_get_changes('cdc', NULL, NULL)")
    sql(p, "CHECKPOINT")  # the state file on disk carries the new position


def test_replica_copies_and_advances_a_logical_slot(pair: Dict[str, Manager],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    p, r = pair["p"], pair["r"]
    caplog.set_level(logging.INFO)
    sql(p, "CREATE TABLE IF NOT EXISTS t (id int)")
    _consume_and_checkpoint(p, 1)
    p.create_slots(["sr"])
    assert r.clone(p.conn_url, p.conn_url) is True
    r.manage_slots((), (), (), True)  # hot_standby_feedback for the copies
    assert sql(r, "SHOW hot_standby_feedback") == [("on",)]
    # A copy taken now restarts decoding before the WAL the replica was cloned with:
    # advancing it fails and the copy is dropped, to be copied again later.
    assert r.copy_logical_slots(["cdc"], p.conn_url) is True
    assert sql(r, "SELECT pg_is_in_recovery()") == [(True,)]  # started again as a replica
    assert _slots(r)["cdc"] == ("logical", "test_decoding")
    r.manage_slots((), (), (("cdc", "qhb", _flush(p) + 1),), None)
    assert "cdc" not in _slots(r) and "it will be copied again" in caplog.text

    # Once the consumer moved on, a new copy starts within the replica's WAL and follows.
    _consume_and_checkpoint(p, 10)
    assert r.copy_logical_slots(["cdc"], p.conn_url) is True
    _consume_and_checkpoint(p, 20)
    target = _flush(p)
    eventually(lambda: sql(r, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint")[0][0] >= target,
               what="the replica to replay up to the slot's position")
    r.manage_slots((), (), (("cdc", "qhb", target),), None)
    assert _flush(r) == target

    # The copy is safe after a failover once the replica's slot on the primary holds a
    # catalog_xmin (hot_standby_feedback) that overtook the primary slot's.
    assert r.observe().unready_slots == ("cdc",)

    def ready() -> bool:  # what the HA cycles do: advance the copy, check it
        _consume_and_checkpoint(p, 30)
        position = _flush(p)
        eventually(lambda: sql(r, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint")[0][0]
                   >= position, what="replay")
        r.manage_slots((), (), (("cdc", "qhb", position),), None, p.conn_url)
        return not r.server.unready_slots

    eventually(ready, what="the copied slot to be safe")
    assert "Logical slot cdc is safe to be used after a failover" in caplog.text
