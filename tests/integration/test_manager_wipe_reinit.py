"""Hostile disk layouts and reinitialize against real binaries (issue 12 items 7
and 8): a primary whose data directory is a symlink, whose WAL lives behind a
pg_wal symlink (initdb --waldir) and which has a tablespace elsewhere.  A
reinitialize with nothing to clone from keeps everything; removing the data
directory empties exactly what the server declares as its own."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core.model import Member
from qhb_patroni.core.operator import ReinitCommand
from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.manager import Manager, ManagerError
from qhb_patroni.runtime.commands import CommandQueue
from qhb_patroni.runtime.executor import Executor, LeaseTracker
from qhb_patroni.runtime.tasks import TaskRunner
from tests.fixtures.pgbin import qhb_node_config
from tests.fixtures.ports import free_port
from tests.integration.helpers import sql

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def node(qhb_bin_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    base = tmp_path_factory.mktemp("disk")
    disk = base / "disk" / "data"
    disk.mkdir(parents=True)
    link = base / "data-link"
    os.symlink(disk, link)
    wal = base / "walvolume" / "wal"
    wal.parent.mkdir()
    config = qhb_node_config(base, "node-w", bin_dir=qhb_bin_dir, data_dir=str(link))
    config["bootstrap"]["initdb"].append({"waldir": str(wal)})
    manager = Manager(config)
    assert manager.bootstrap() is True
    tablespace = base / "tablespace"
    tablespace.mkdir()
    sql(manager, f"CREATE TABLESPACE ts LOCATION '{tablespace}'")
    sql(manager, "CREATE TABLE t (x int) TABLESPACE ts")
    sql(manager, "INSERT INTO t SELECT generate_series(1, 100)")
    # Things next to what the server owns, which must survive.
    (wal.parent / "unrelated").write_text("keep")
    (tablespace / "README").write_text("keep")
    (disk.parent / "neighbour").write_text("keep")
    state = {"manager": manager, "link": link, "disk": disk, "wal": wal, "tablespace": tablespace, "base": base}
    try:
        yield state
    finally:
        manager.stop("immediate", timeout=10)


def test_layout_is_what_the_test_means(node: Dict[str, Any]) -> None:
    disk: Path = node["disk"]
    assert os.path.islink(disk / "pg_wal") and os.path.realpath(disk / "pg_wal") == str(node["wal"])
    assert any(name.startswith("PG_15_") for name in os.listdir(node["tablespace"]))
    assert any(len(name) == 24 for name in os.listdir(node["wal"]))


def test_reinitialize_with_nothing_to_clone_from_keeps_the_data(node: Dict[str, Any]) -> None:
    manager: Manager = node["manager"]
    with pytest.raises(ManagerError, match="no member to clone from"):
        manager.check_clone_source(None)
    dead = f"postgres://127.0.0.1:{free_port()}/qhb"
    with pytest.raises(ManagerError, match="does not answer"):
        manager.check_clone_source(dead)
    manager.check_clone_source(f"postgres://127.0.0.1:{manager.settings.port}/qhb")  # a live one passes

    # The real executor runs the operator's reinitialize as its background task.
    done = threading.Event()
    commands = CommandQueue()
    executor = Executor(ClusterDCS(MemoryServer().client("node-w"), "node-w"), manager,
                        TaskRunner(on_done=done.set), LeaseTracker(), time.monotonic,
                        promote_wait=lambda: 10.0, commands=commands)
    ticket = commands.submit(ReinitCommand(commands.next_id()))
    result = executor.execute([A.Reinitialize(ticket.command.ident, Member(name="ghost", conn_url=dead))], None)
    assert result.failed is None and done.wait(60)
    status = executor.tasks.status()
    assert status is not None and status.kind == "Reinitialize" and not status.ok
    assert manager.server.is_running()  # not even stopped: the check came first
    assert sql(manager, "SELECT count(*) FROM t") == [(100,)]


def test_remove_data_directory_empties_what_the_server_owns_and_nothing_else(node: Dict[str, Any]) -> None:
    manager: Manager = node["manager"]
    link, disk, wal, tablespace = node["link"], node["disk"], node["wal"], node["tablespace"]
    # Something that is not WAL in the WAL directory: refused before the server is even stopped.
    (wal / "notes.txt").write_text("not WAL")
    with pytest.raises(ManagerError, match="notes.txt, which is not WAL"):
        manager.remove_data_directory()
    assert manager.server.is_running() and (disk / "PG_VERSION").exists()
    (wal / "notes.txt").unlink()
    manager.remove_data_directory()
    assert not manager.server.is_running()
    assert os.path.islink(link) and os.path.realpath(link) == str(disk)  # still a symlink
    assert os.listdir(disk) == []
    assert wal.is_dir() and os.listdir(wal) == []
    assert sorted(os.listdir(tablespace)) == ["README"]
    for survivor in (wal.parent / "unrelated", tablespace / "README", disk.parent / "neighbour"):
        assert survivor.read_text() == "keep"
    assert manager.observe().data_dir == "empty"
