"""GET /patroni shows a pending scheduled restart (spec 1.3) and the member key carries it (4.2)."""
from __future__ import annotations

import datetime as dt

from qhb_patroni.api import views
from qhb_patroni.core.operator import RestartCommand
from qhb_patroni.daemon import scheduled_restart_doc
from qhb_patroni.runtime.commands import CommandQueue
from tests.fixtures.api import NOW, primary_server, status_view, two_node_cluster

WHEN = dt.datetime(2023, 3, 24, 12, 0, tzinfo=dt.timezone.utc)


def test_node_status_shows_the_scheduled_restart_after_patroni_and_before_pause() -> None:
    restart = {"schedule": "2023-03-24T12:00:00+00:00", "postgres_version": "15.3"}
    view = status_view(server=primary_server(), cluster_view=two_node_cluster(), holds_lock=True,
                       scheduled_restart=restart, paused=True)
    doc = views.node_status(view, NOW)
    assert doc["scheduled_restart"] == restart
    keys = list(doc)
    assert keys.index("patroni") < keys.index("scheduled_restart") < keys.index("pause")


def test_node_status_without_a_scheduled_restart_has_no_key() -> None:
    doc = views.node_status(status_view(cluster_view=two_node_cluster()), NOW)
    assert "scheduled_restart" not in doc


def test_scheduled_restart_json_lists_only_the_filters_that_were_given() -> None:
    bare = RestartCommand(ident=1, scheduled_at=WHEN.timestamp())
    assert views.scheduled_restart_json(WHEN, bare) == {"schedule": "2023-03-24T12:00:00+00:00"}
    full = RestartCommand(ident=2, role="replica", postgres_version=150003, restart_pending=True, timeout=30.0,
                          scheduled_at=WHEN.timestamp(), postmaster_start_time="2023-03-24 10:11:12+00:00")
    assert views.scheduled_restart_json(WHEN, full, "15.3") == {
        "schedule": "2023-03-24T12:00:00+00:00",
        "role": "replica",
        "postgres_version": "15.3",
        "restart_pending": True,
        "timeout": 30,
    }
    with_start = views.scheduled_restart_json(WHEN, full, "15.3", with_start_time=True)
    assert with_start["postmaster_start_time"] == "2023-03-24 10:11:12+00:00"
    half_minute = RestartCommand(ident=3, timeout=1.5, scheduled_at=WHEN.timestamp())
    assert views.scheduled_restart_json(WHEN, half_minute)["timeout"] == 1.5


def test_daemon_publishes_the_queued_schedule_with_its_filters_until_it_is_deleted() -> None:
    queue = CommandQueue()
    assert scheduled_restart_doc(queue, with_start_time=False) is None
    command = RestartCommand(ident=queue.next_id(), role="replica", restart_pending=True,
                             scheduled_at=WHEN.timestamp(), postmaster_start_time="2023-03-24 10:00:00+00:00")
    assert queue.schedule_restart(command, WHEN, "15.3")
    assert scheduled_restart_doc(queue, with_start_time=False) == {
        "schedule": "2023-03-24T12:00:00+00:00",
        "role": "replica",
        "postgres_version": "15.3",
        "restart_pending": True,
    }
    member_key = scheduled_restart_doc(queue, with_start_time=True)
    assert member_key is not None and member_key["postmaster_start_time"] == "2023-03-24 10:00:00+00:00"
    assert queue.cancel_scheduled_restart()
    assert scheduled_restart_doc(queue, with_start_time=False) is None
