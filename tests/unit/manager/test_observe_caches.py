"""What observe() reads again only when it may have changed: the replica timeline
(IDENTIFY_SYSTEM, a new replication connection) when the postmaster or the replay position
changed since the last read (a replica's timeline changes only by replaying WAL) and the
last answer is not the cluster's timeline, and
controldata (a new process) when the postmaster changed, stopped, or the answer is old."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, List, Optional

import pytest

from qhb_patroni.manager import observe
from qhb_patroni.manager.sql import StatusRow


def row(start: str = "t0", replayed: Optional[int] = 100, received_tli: Optional[int] = None) -> StatusRow:
    return StatusRow(postmaster_start_time=start, server_version=150000, in_recovery=True, wal_location=None,
                     received_location=replayed, replayed_location=replayed, replayed_timestamp=None,
                     replay_paused=False, timeline=None, received_tli=received_tli)


@pytest.fixture
def identify(monkeypatch: pytest.MonkeyPatch) -> List[Optional[int]]:
    """Answers of IDENTIFY_SYSTEM, one per call (None: it failed); what is left shows the calls."""
    answers: List[Optional[int]] = []
    monkeypatch.setattr(observe, "replica_timeline", lambda server: answers.pop(0))
    return answers


def server() -> Any:
    return SimpleNamespace(timeline_cache=None, timeline_mark=None)


def test_the_timeline_is_read_once_while_nothing_is_replayed(identify: List[Optional[int]]) -> None:
    s = server()
    identify.extend([1])
    assert observe._replica_timeline(s, row()) == 1
    assert observe._replica_timeline(s, row()) == 1
    assert identify == []  # one IDENTIFY_SYSTEM for both looks


def test_a_new_replay_position_or_postmaster_reads_it_again(identify: List[Optional[int]]) -> None:
    s = server()
    identify.extend([1, 2, 3])
    assert observe._replica_timeline(s, row(replayed=100)) == 1
    assert observe._replica_timeline(s, row(replayed=200)) == 2  # replayed a timeline switch
    assert observe._replica_timeline(s, row(start="t1", replayed=200)) == 3  # restarted
    assert identify == []


def test_a_failed_identify_falls_back_to_the_received_timeline_and_is_not_kept(
        identify: List[Optional[int]]) -> None:
    s = server()
    identify.extend([None, 4])
    assert observe._replica_timeline(s, row(received_tli=3)) == 3
    assert observe._replica_timeline(s, row(received_tli=3)) == 4
    assert identify == []


def test_no_replay_position_is_never_taken_as_unchanged(identify: List[Optional[int]]) -> None:
    s = server()
    identify.extend([1, 1])
    observe._replica_timeline(s, row(replayed=None))
    observe._replica_timeline(s, row(replayed=None))
    assert identify == []


def test_the_timeline_stands_while_it_is_the_clusters(identify: List[Optional[int]]) -> None:
    """A moving replay position reads it again, unless the last answer (for the same
    postmaster) is the cluster's timeline: a replica's timeline never goes back."""
    s = server()
    identify.extend([2, 3, 4])
    assert observe._replica_timeline(s, row(replayed=100), 2) == 2
    assert observe._replica_timeline(s, row(replayed=200), 2) == 2  # no IDENTIFY_SYSTEM
    assert observe._replica_timeline(s, row(replayed=300), 3) == 3  # the cluster moved on: read
    assert observe._replica_timeline(s, row(start="t1", replayed=300), 3) == 4  # restarted: read
    assert identify == []


def test_a_fallback_answer_does_not_stand_for_the_clusters_timeline(identify: List[Optional[int]]) -> None:
    s = server()
    identify.extend([None, 3])
    assert observe._replica_timeline(s, row(received_tli=3), 3) == 3  # received, maybe not replayed
    assert observe._replica_timeline(s, row(replayed=200, received_tli=3), 3) == 3
    assert identify == []


class Postmaster:
    def __init__(self) -> None:
        self.running: Optional[int] = 100

    def pid(self) -> Optional[int]:
        return self.running


class ControlServer:
    """Counts controldata reads; each answer is a new object."""

    def __init__(self) -> None:
        self.postmaster = Postmaster()
        self.control_cache: Any = None
        self.reads = 0

    def controldata(self) -> Any:
        self.reads += 1
        return object()


def test_controldata_is_read_once_while_the_same_postmaster_runs() -> None:
    s: Any = ControlServer()
    first = observe._controldata(s)
    assert observe._controldata(s) is first
    assert s.reads == 1


def test_controldata_is_read_again_for_a_new_postmaster_a_stopped_one_or_an_old_answer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    s: Any = ControlServer()
    observe._controldata(s)
    s.postmaster.running = 200  # restarted
    observe._controldata(s)
    assert s.reads == 2
    s.postmaster.running = None  # stopped: the control file's state matters now, every time
    observe._controldata(s)
    observe._controldata(s)
    assert s.reads == 4
    s.postmaster.running = 200
    observe._controldata(s)
    monkeypatch.setattr(observe, "CONTROLDATA_REUSE", 0.0)
    observe._controldata(s)
    assert s.reads == 6


def test_an_answering_servers_controldata_is_used_again_however_old(monkeypatch: pytest.MonkeyPatch) -> None:
    """observe() passes an unlimited reuse once the status query has answered."""
    s: Any = ControlServer()
    first = observe._controldata(s)
    monkeypatch.setattr(observe, "CONTROLDATA_REUSE", 0.0)
    assert observe._controldata(s, float("inf")) is first
    assert s.reads == 1
    observe._controldata(s)  # not answering: the short reuse applies
    assert s.reads == 2
    s.postmaster.running = 300  # a new postmaster is read again whatever the reuse
    observe._controldata(s, float("inf"))
    assert s.reads == 3
