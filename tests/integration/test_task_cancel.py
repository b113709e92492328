"""Cancelling a clone in progress, against real binaries: the background task ends
promptly as cancelled, the base backup tool (and its WAL streamer) is gone, the
half-copied data directory is emptied, and the next clone works."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator

import pytest

from qhb_patroni.core.local import DATA_EMPTY
from qhb_patroni.manager import Manager
from qhb_patroni.manager.conffiles import slot_name_from_member
from qhb_patroni.manager.process import is_alive
from qhb_patroni.runtime.tasks import TaskRunner, is_cancelled
from tests.fixtures.pgbin import make_qhb_bin_dir, pg_available, qhb_node_config
from tests.integration.helpers import eventually, sql
from tests.integration.slowclone import SlowClone, install_slow_basebackup

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, object]]:
    if not pg_available():
        pytest.skip("PostgreSQL 15 binaries missing or running as root (use scripts/run-tests-as-user.sh)")
    base = tmp_path_factory.mktemp("cancel")
    bin_dir = str(make_qhb_bin_dir(base / "bin"))
    slow = install_slow_basebackup(bin_dir, str(base))
    primary = Manager(qhb_node_config(base, "cn-a", bin_dir=bin_dir))
    replica = Manager(qhb_node_config(base, "cn-b", bin_dir=bin_dir))
    try:
        assert primary.bootstrap() is True
        yield {"primary": primary, "replica": replica, "slow": slow}
    finally:
        for manager in (replica, primary):
            manager.stop("immediate", timeout=10)
        assert not primary.server.is_running() and not replica.server.is_running()


def basebackup_senders(primary: Manager) -> int:
    rows = sql(primary, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pg_basebackup'")
    return int(rows[0][0])


def test_cancelled_clone_ends_as_cancelled_and_leaves_an_empty_data_dir(setup: Dict[str, object]) -> None:
    primary, replica, slow = setup["primary"], setup["replica"], setup["slow"]
    assert isinstance(primary, Manager) and isinstance(replica, Manager) and isinstance(slow, SlowClone)
    slow.arm()
    tasks = TaskRunner(on_done=lambda: None)
    url = primary.conn_url
    assert tasks.start("Clone", "bootstrap from leader 'cn-a'", lambda: replica.clone(url, url))
    pid = eventually(slow.pid, what="the slow base backup to start")
    data_dir = Path(replica.settings.data_dir)
    eventually(lambda: data_dir.is_dir() and any(data_dir.iterdir()), what="some files copied")
    assert replica.state == "creating replica"
    assert basebackup_senders(primary) >= 1
    assert tasks.cancel(timeout=60) is True
    finished = tasks.status()
    assert finished is not None and is_cancelled(finished), finished
    assert finished.error == "bootstrap from leader 'cn-a' cancelled"
    assert not is_alive(pid)
    # Nothing half-copied is left, nobody streams a backup any more, and the state is plain stopped.
    local = replica.observe()
    assert local.data_dir == DATA_EMPTY and not local.running
    assert replica.state == "stopped"
    eventually(lambda: basebackup_senders(primary) == 0, what="the primary's backup senders gone")


def test_the_next_clone_works(setup: Dict[str, object]) -> None:
    primary, replica = setup["primary"], setup["replica"]
    assert isinstance(primary, Manager) and isinstance(replica, Manager)
    assert not os.path.exists(str(setup["slow"].marker))  # type: ignore[attr-defined]
    primary.sync_slots([slot_name_from_member("cn-b")])  # what the HA loop does for its members
    tasks = TaskRunner(on_done=lambda: None)
    url = primary.conn_url
    assert tasks.start("Clone", "bootstrap from leader 'cn-a'", lambda: replica.clone(url, url))
    tasks.join(300)
    finished = tasks.status()
    assert finished is not None and finished.ok, finished
    eventually(lambda: replica.observe().is_replica, what="the clone running as a replica")
    eventually(lambda: sql(primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")[0][0] == 1,
               what="the replica streaming")
