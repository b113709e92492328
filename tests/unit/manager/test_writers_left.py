"""writers_left() reads the process titles of a postmaster's children (real processes
here, titled with `exec -a` the way the server titles its own)."""
from __future__ import annotations

import subprocess
import time
from typing import Iterator, List

import pytest

from qhb_patroni.manager.process import child_pids, writers_left


def family(*titles: str) -> subprocess.Popen[bytes]:
    script = " ".join(f"(exec -a '{t}' sleep 60) &" for t in titles) + " wait"
    parent = subprocess.Popen(["bash", "-c", script])
    deadline = time.monotonic() + 10
    while len(child_pids(parent.pid)) < len(titles) and time.monotonic() < deadline:
        time.sleep(0.02)
    return parent


@pytest.fixture
def parents() -> Iterator[List[subprocess.Popen[bytes]]]:
    made: List[subprocess.Popen[bytes]] = []
    yield made
    for p in made:
        for child in child_pids(p.pid):
            subprocess.run(["kill", "-9", str(child)], check=False)
        p.kill()
        p.wait(10)


STAYING = ("postgres: qhb0: checkpointer", "postgres: background writer",
           "qhb: walsender replicator 10.0.0.2(41000) streaming 0/5083B18", "postgres: walwriter")


def test_only_processes_that_outlive_the_clients_left(parents: List[subprocess.Popen[bytes]]) -> None:
    parents.append(family(*STAYING))
    assert writers_left(parents[-1].pid) is False


def test_a_client_backend_is_a_writer(parents: List[subprocess.Popen[bytes]]) -> None:
    parents.append(family(*STAYING, "postgres: qhb0: qhb qhb 127.0.0.1(5000) idle"))
    assert writers_left(parents[-1].pid) is True


def test_a_background_worker_counts_as_a_writer(parents: List[subprocess.Popen[bytes]]) -> None:
    parents.append(family("postgres: checkpointer", "postgres: logical replication launcher"))
    assert writers_left(parents[-1].pid) is True


def test_a_title_not_in_the_servers_form_is_unknown(parents: List[subprocess.Popen[bytes]]) -> None:
    parents.append(family("postgres: checkpointer", "sleeper"))
    assert writers_left(parents[-1].pid) is None


def test_no_children_no_writers(parents: List[subprocess.Popen[bytes]]) -> None:
    parents.append(family())
    assert writers_left(parents[-1].pid) is False
