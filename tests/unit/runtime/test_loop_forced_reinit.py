"""The HA loop on the in-memory DCS with a hand-written fake manager: a forced
reinitialize cancels the clone in progress and starts the reinitialize in the same
cycle; without force the request is refused as before."""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional

from qhb_patroni.core.local import DATA_EMPTY, LocalState
from qhb_patroni.core.model import ClusterView
from qhb_patroni.core.observation import Settings
from qhb_patroni.core.operator import ReinitCommand
from qhb_patroni.dcs.memory import MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from qhb_patroni.runtime.commands import CommandQueue
from qhb_patroni.runtime.loop import HALoop
from qhb_patroni.runtime.status import StatusBoard, StatusView
from qhb_patroni.runtime.tasks import cancel_event

BASE = "/service/batman"
LEADER_URL = "postgres://127.0.0.1:5432/qhb"


class SlowCloneManager:
    """An empty replica whose clones block until their task is cancelled (then fail,
    like a killed base backup), or until `finish` is set."""

    def __init__(self) -> None:
        self.calls: List[str] = []
        self.finish = threading.Event()
        self.clone_started = threading.Event()

    def observe(self, deadline: Optional[float] = None, cluster_timeline: Optional[int] = None) -> LocalState:
        return LocalState(data_dir=DATA_EMPTY)

    def member_data(self) -> Dict[str, Any]:
        return {"conn_url": "postgres://127.0.0.1:5433/qhb", "state": "stopped", "role": "uninitialized"}

    def clone(self, source: Optional[str], leader: Optional[str]) -> bool:
        self.calls.append(f"clone from {source}")
        self.clone_started.set()
        cancel = cancel_event()
        assert cancel is not None  # runs as the background task
        while not self.finish.is_set():
            if cancel.wait(0.01):
                self.calls.append("clone killed")
                raise RuntimeError("qhb_basebackup cancelled")
        return True

    def remove_data_directory(self) -> None:
        self.calls.append("remove data directory")

    def check_clone_source(self, source: Optional[str]) -> None:
        self.calls.append(f"check {source}")


def make_loop() -> tuple[HALoop, SlowCloneManager, CommandQueue]:
    store = MemoryServer()
    leader = ClusterDCS(store.client("a", BASE), "a")
    assert leader.initialize("7214159812345678901", create=True)
    assert leader.touch_member({"conn_url": LEADER_URL, "api_url": "http://127.0.0.1:8008/patroni",
                                "state": "running", "role": "master", "version": "3.0.2"})
    assert leader.attempt_to_acquire_leader() is not None
    assert leader.set_config({"ttl": 30, "loop_wait": 10})
    manager = SlowCloneManager()
    commands = CommandQueue()
    board = StatusBoard(StatusView(name="b", scope="batman", version="3.0.2", api_url="http://127.0.0.1:8009/patroni",
                                   conn_url="postgres://127.0.0.1:5433/qhb"))

    def settings(cluster: Optional[ClusterView]) -> Settings:
        return Settings(name="b", scope="batman")

    loop = HALoop(dcs=ClusterDCS(store.client("b", BASE), "b"), watch_dcs=ClusterDCS(store.client("bw", BASE), "b"),
                  manager=manager, board=board, settings_provider=settings,
                  member_extra=lambda: {"api_url": "http://127.0.0.1:8009/patroni"}, commands=commands)
    return loop, manager, commands


def test_forced_reinit_cancels_the_clone_and_starts_at_once() -> None:
    loop, manager, commands = make_loop()
    loop.run_cycle()  # an empty replica with a leader: clone
    assert manager.clone_started.wait(10)
    running = loop.tasks.peek()
    assert running is not None and running.kind == "Clone" and not running.done

    plain = commands.submit(ReinitCommand(commands.next_id(), force=False))
    loop.run_cycle()
    assert plain.wait(10) and not plain.ok
    assert plain.message == "bootstrap from leader 'a' already in progress"
    assert manager.calls == [f"clone from {LEADER_URL}"]  # still cloning

    manager.clone_started.clear()
    forced = commands.submit(ReinitCommand(commands.next_id(), force=True))
    loop.run_cycle()
    assert forced.wait(10) and forced.ok and forced.message == "reinitialize started"
    assert manager.clone_started.wait(10)
    running = loop.tasks.peek()
    assert running is not None and running.kind == "Reinitialize" and not running.done
    assert manager.calls == [f"clone from {LEADER_URL}", "clone killed", f"check {LEADER_URL}",
                             "remove data directory", f"clone from {LEADER_URL}"]
    manager.finish.set()
    loop.tasks.join(10)
    finished = loop.tasks.status()
    assert finished is not None and finished.kind == "Reinitialize" and finished.ok
    assert commands.pending() == ()


def test_forced_reinit_without_a_task_just_reinitializes() -> None:
    loop, manager, commands = make_loop()
    manager.finish.set()  # clones complete at once
    loop.run_cycle()
    loop.tasks.join(10)
    assert loop.tasks.status() is not None  # the clone's result, taken
    forced = commands.submit(ReinitCommand(commands.next_id(), force=True))
    loop.run_cycle()
    assert forced.wait(10) and forced.ok and forced.message == "reinitialize started"
    loop.tasks.join(10)
    assert "clone killed" not in manager.calls
    assert manager.calls[-2:] == ["remove data directory", f"clone from {LEADER_URL}"]
