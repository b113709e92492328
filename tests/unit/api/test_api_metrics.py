"""GET /metrics text (spec 1.7)."""
from __future__ import annotations

import datetime as dt
from typing import Dict

from qhb_patroni.api.metrics import render_metrics
from tests.fixtures.api import NOW, primary_server, replica_server, status_view, two_node_cluster


def values(text: str) -> Dict[str, str]:
    out = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = value
    return out


def test_primary_metrics() -> None:
    view = status_view(server=primary_server(pending_restart=True), cluster_view=two_node_cluster(), holds_lock=True)
    text = render_metrics(view, NOW)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert lines[:3] == [
        "# HELP patroni_version Patroni semver without periods.",
        "# TYPE patroni_version gauge",
        'patroni_version{scope="batman"} 030002',
    ]
    assert len(lines) == 3 * 20
    got = values(text)
    start = dt.datetime(2023, 3, 24, 10, 11, 12, 123456, tzinfo=dt.timezone.utc).timestamp()
    assert got == {
        'patroni_version{scope="batman"}': "030002",
        'patroni_postgres_running{scope="batman"}': "1",
        'patroni_postmaster_start_time{scope="batman"}': str(start),
        'patroni_master{scope="batman"}': "1",
        'patroni_primary{scope="batman"}': "1",
        'patroni_xlog_location{scope="batman"}': "50331968",
        'patroni_standby_leader{scope="batman"}': "0",
        'patroni_replica{scope="batman"}': "0",
        'patroni_sync_standby{scope="batman"}': "0",
        'patroni_xlog_received_location{scope="batman"}': "0",
        'patroni_xlog_replayed_location{scope="batman"}': "0",
        'patroni_xlog_replayed_timestamp{scope="batman"}': "0",
        'patroni_xlog_paused{scope="batman"}': "0",
        'patroni_postgres_server_version {scope="batman"}': "150002",
        'patroni_cluster_unlocked{scope="batman"}': "0",
        'patroni_failsafe_mode_is_active{scope="batman"}': "0",
        'patroni_postgres_timeline{scope="batman"}': "2",
        'patroni_dcs_last_seen{scope="batman"}': "1679652672",
        'patroni_pending_restart{scope="batman"}': "1",
        'patroni_is_paused{scope="batman"}': "0",
    }


def test_replica_and_stopped_metrics() -> None:
    c = two_node_cluster(sync=["postgresql1"], config={"synchronous_mode": True})
    got = values(render_metrics(status_view("postgresql1", replica_server(replay_paused=True), c, paused=True), NOW))
    assert got['patroni_replica{scope="batman"}'] == "1"
    assert got['patroni_sync_standby{scope="batman"}'] == "1"
    assert got['patroni_xlog_received_location{scope="batman"}'] == "50331968"
    assert got['patroni_xlog_replayed_location{scope="batman"}'] == "50331900"
    assert got['patroni_xlog_paused{scope="batman"}'] == "1"
    assert got['patroni_is_paused{scope="batman"}'] == "1"
    assert float(got['patroni_xlog_replayed_timestamp{scope="batman"}']) > 1.6e9
    stopped = values(render_metrics(status_view(server=primary_server(state="stopped", query_ok=False)), NOW))
    assert stopped['patroni_postgres_running{scope="batman"}'] == "0"
    assert stopped['patroni_postmaster_start_time{scope="batman"}'] == "0"
    assert stopped['patroni_postgres_server_version {scope="batman"}'] == "0"
    assert stopped['patroni_cluster_unlocked{scope="batman"}'] == "1"
    assert stopped['patroni_postgres_timeline{scope="batman"}'] == "0"
