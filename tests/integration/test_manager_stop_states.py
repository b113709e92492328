"""State strings (spec 2.6) of a database that went away behind the daemon's back,
against real binaries: a clean `qhb_ctl stop` (the DBA in maintenance mode) reads
`stopped`; kill -9 or an immediate stop (no shutdown checkpoint) reads `crashed`.
Both the HA loop's look (observe) and the REST refresher's (server_status) agree,
whichever of them notices first."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any, Callable, Dict, Iterator

import pytest

from qhb_patroni.manager import Manager
from tests.fixtures.pgbin import qhb_node_config
from tests.integration.helpers import eventually

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def pair(qhb_bin_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Manager]]:
    base = tmp_path_factory.mktemp("states")
    primary = Manager(qhb_node_config(base, "st-a", bin_dir=qhb_bin_dir))
    replica = Manager(qhb_node_config(base, "st-b", bin_dir=qhb_bin_dir))
    try:
        assert primary.bootstrap() is True
        assert replica.clone(primary.conn_url, primary.conn_url) is True
        eventually(lambda: replica.observe().is_replica, what="the replica running")
        yield {"primary": primary, "replica": replica}
    finally:
        for manager in (replica, primary):
            manager.stop("immediate", timeout=10)
        assert not primary.server.is_running() and not replica.server.is_running()


def qhb_ctl_stop(manager: Manager, mode: str) -> None:
    """What a DBA does by hand: the daemon is not involved."""
    subprocess.run([manager.binaries["ctl"], "stop", "-D", manager.settings.data_dir, "-m", mode, "-w"],
                   check=True, capture_output=True, timeout=60)


def kill9(manager: Manager) -> None:
    pid = manager.server.postmaster.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: not manager.server.is_running(), what="postmaster gone")


Look = Callable[[Manager], str]
LOOKS: Dict[str, Look] = {
    "observe": lambda m: m.observe().state,
    "server_status": lambda m: m.server_status().state,
}


def running(manager: Manager, look: Look) -> None:
    if not manager.server.is_running():
        assert manager.start() is True
    eventually(lambda: manager.observe().running, what="the server answering")
    assert look(manager) == "running"


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_clean_stop_by_hand_reads_stopped(pair: Dict[str, Manager], look: str) -> None:
    for role in ("replica", "primary"):
        manager = pair[role]
        running(manager, LOOKS[look])
        qhb_ctl_stop(manager, "fast")
        assert LOOKS[look](manager) == "stopped", role
        # The other look agrees, and it stays so.
        other = LOOKS["server_status" if look == "observe" else "observe"]
        assert other(manager) == "stopped" and manager.observe().state == "stopped", role
        assert manager.member_data()["state"] == "stopped"


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_kill9_reads_crashed(pair: Dict[str, Manager], look: str) -> None:
    for role in ("replica", "primary"):
        manager = pair[role]
        running(manager, LOOKS[look])
        kill9(manager)
        assert LOOKS[look](manager) == "crashed", role
        assert manager.observe().state == "crashed"
        assert manager.observe().controldata_state in ("in production", "in archive recovery")


def test_immediate_stop_by_hand_reads_crashed(pair: Dict[str, Manager]) -> None:
    """An immediate stop skips the shutdown checkpoint: the control file still says in production."""
    manager = pair["primary"]
    running(manager, LOOKS["observe"])
    qhb_ctl_stop(manager, "immediate")
    assert manager.observe().state == "crashed"
    assert manager.observe().controldata_state == "in production"


def test_stop_by_the_daemon_reads_stopped_and_start_runs_again(pair: Dict[str, Manager]) -> None:
    manager = pair["primary"]
    running(manager, LOOKS["observe"])
    assert manager.stop("fast") is True
    assert manager.server_status().state == "stopped" and manager.observe().state == "stopped"
    running(manager, LOOKS["observe"])
    assert manager.observe().is_primary


def test_in_maintenance_mode_a_database_that_is_down_reads_stopped(pair: Dict[str, Manager]) -> None:
    """3.0.2 sets `stopped` for any database that is not running while paused."""
    manager = pair["replica"]
    running(manager, LOOKS["observe"])
    kill9(manager)
    assert manager.observe().state == "crashed"
    manager.note_paused_not_running()  # what the loop does each cycle while paused
    assert manager.observe().state == "stopped"
    assert manager.server_status().state == "stopped"
    assert manager.member_data()["state"] == "stopped"
    running(manager, LOOKS["observe"])
    manager.note_paused_not_running()  # a running database is left alone
    assert manager.observe().state == "running"


# ---- a postmaster that is alive but does not answer (chaos seed 22, fault #82) ----------
def test_a_postmaster_that_does_not_answer_is_seen_alive_not_gone(pair: Dict[str, Manager]) -> None:
    manager = pair["primary"]
    running(manager, LOOKS["observe"])
    pid = manager.server.postmaster.pid()
    assert pid is not None
    manager.server.status_conn.close()  # a kept backend would answer for the stopped postmaster
    os.kill(pid, signal.SIGSTOP)
    try:
        look = manager.observe()
        # Running with an unknown role (neither primary nor replica), not gone.
        assert look.postmaster_alive and look.in_recovery is None and not look.is_primary
        assert look.controldata_state == "in production"  # not a crash: it has not gone away
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: manager.observe().running, what="the server answering again")
    assert manager.observe().postmaster_alive


def test_crash_recovery_asked_during_a_fast_shutdown_waits_for_it(pair: Dict[str, Manager]) -> None:
    """The lease guard's fast shutdown still under way when crash recovery is asked for:
    the recovery waits for the postmaster (however the race between the two goes) and
    finds a cleanly shut down cluster; it never fails on the postmaster exiting under it."""
    manager = pair["primary"]
    running(manager, LOOKS["observe"])
    pid = manager.server.postmaster.pid()
    assert pid is not None
    manager.server.status_conn.close()  # a kept backend would answer for the stopped postmaster
    os.kill(pid, signal.SIGSTOP)
    try:
        os.kill(pid, signal.SIGINT)  # the fast shutdown request waits until the postmaster runs
        look = manager.observe()
        assert look.postmaster_alive and look.in_recovery is None and look.controldata_state == "in production"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert manager.crash_recovery() is True
    assert not manager.server.is_running()
    control = manager.server.controldata()
    assert control is not None and control.clean_shutdown
    look = manager.observe()
    assert not look.running and not look.postmaster_alive and look.controldata_state == "shut down"


def test_crash_recovery_after_kill9_leaves_a_cleanly_shut_down_cluster(pair: Dict[str, Manager]) -> None:
    manager = pair["primary"]
    running(manager, LOOKS["observe"])
    kill9(manager)
    look = manager.observe()
    assert not look.postmaster_alive and look.controldata_state == "in production"
    assert manager.crash_recovery() is True
    look = manager.observe()
    assert not look.running and look.controldata_state == "shut down"
    running(manager, LOOKS["observe"])


def test_an_answering_server_reads_its_control_file_once(pair: Dict[str, Manager]) -> None:
    """What observe() takes from the control file of a running server cannot change while
    that postmaster runs: however old the answer, no controldata process per cycle while
    the server answers; once it has stopped, the control file is read afresh."""
    manager = pair["replica"]
    running(manager, LOOKS["observe"])
    server = manager.server
    real = server.controldata
    calls = []

    def counting() -> Any:
        calls.append(1)
        return real()

    server.controldata = counting  # type: ignore[method-assign]
    try:
        first = manager.observe()
        assert first.rewind_possible and first.sysid
        assert server.control_cache is not None
        pid, _, control = server.control_cache
        server.control_cache = (pid, time.monotonic() - 3600, control)  # an hour old
        before = len(calls)
        again = manager.observe()
        assert again.running and again.sysid == first.sysid and again.rewind_possible
        assert len(calls) == before
        qhb_ctl_stop(manager, "fast")
        stopped = manager.observe()
        assert stopped.state == "stopped" and stopped.controldata_state == "shut down in recovery"
        assert len(calls) > before
    finally:
        server.controldata = real  # type: ignore[method-assign]
