"""End to end: the operator surface (REST write endpoints and patronictl commands)
against 3 daemons on real etcd and real PostgreSQL 15 behind QHB names.

The tests share one cluster and run in file order; each starts from "all three
members running with one primary".
"""
from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from qhb_patroni.manager.process import is_alive
from tests.e2e.harness import LocalCluster, Node, Writer, healthy, patronictl, rows_on, running, wait_for
from tests.fixtures.etcd import EtcdProcess
from tests.integration.slowclone import install_slow_basebackup, restore_basebackup

pytestmark = pytest.mark.e2e

TTL, LOOP_WAIT, RETRY_TIMEOUT = 10, 2, 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("cluster"))
    c = LocalCluster(base, etcd.host_port, ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT)
    for node in c.nodes:
        node.config = with_callbacks(node)  # type: ignore[method-assign]
    with running(c):
        yield c


CALLBACKS = ("on_start", "on_stop", "on_restart", "on_reload", "on_role_change")


def callback_log(node: Node) -> str:
    return os.path.join(node.dir, "callbacks.log")


def with_callbacks(node: Node) -> Callable[[], Dict[str, Any]]:
    """The node's configuration plus every callback appending `<action> <role> <scope>` to a file."""
    plain = node.config

    def config() -> Dict[str, Any]:
        c = plain()
        script = f'echo "$0 $1 $2" >> {callback_log(node)}'
        c["postgresql"]["callbacks"] = {name: f"sh -c '{script}'" for name in CALLBACKS}
        return c

    return config


def callback_lines(node: Node) -> List[str]:
    try:
        with open(callback_log(node), encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError:
        return []


def call(node: Node, method: str, path: str, body: Any = None, raw: Optional[bytes] = None,
         timeout: float = 60) -> Tuple[int, str]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(node.api + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def raw_status(node: Node, head: bytes) -> int:
    """Send a bare request head and return the status code (for bodies we never send)."""
    with socket.create_connection(("127.0.0.1", node.api_port), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1])


def streaming_replicas(node: Node) -> int:
    import psycopg2

    with psycopg2.connect(node.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        row = cur.fetchone()
        return int(row[0]) if row else 0


def third_member(cluster: LocalCluster, *others: Node) -> Node:
    return next(n for n in cluster.nodes if n not in others)


def dcs_view(node: Node) -> Dict[str, Any]:
    code, body = call(node, "GET", "/cluster")
    assert code == 200, body
    return json.loads(body)  # type: ignore[no-any-return]


def test_switchover_with_patronictl_loses_no_acknowledged_row(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    candidate = next(n for n in cluster.nodes if n is not old)
    writer = Writer(cluster).start()
    wait_for(lambda: len(writer.acked) >= 20, 30, "some acknowledged writes")
    t0 = time.monotonic()
    out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", candidate.name, "--force")
    assert out.returncode == 0, out.stderr + out.stdout
    assert f'Successfully switched over to "{candidate.name}"' in out.stdout, out.stdout
    assert "Current cluster topology" in out.stdout
    wait_for(candidate.is_primary, 30, "the candidate to be the primary")
    acked_before = len(writer.acked)
    wait_for(lambda: len(writer.acked) >= acked_before + 20, 60, "writes on the new primary")
    writer.stop()
    gap = writer.longest_gap(after=t0 - 1)
    print(f"switchover write gap: {gap:.3f}s")
    present = set(rows_on(candidate))
    lost = [i for i in writer.acked if i not in present]
    assert not lost, f"acknowledged rows lost: {lost[:10]}"
    # The old primary follows the new one; the others too.
    wait_for(lambda: (old.status() or {}).get("role") == "replica", 60, "the old primary to follow")
    healthy(cluster)
    wait_for(lambda: set(writer.acked) <= set(rows_on(old)), 60, "the old primary to catch up")
    view = dcs_view(candidate)
    assert "scheduled_switchover" not in view
    scope = cluster.scope
    wait_for(lambda: f"on_role_change master {scope}" in callback_lines(candidate), 10, "on_role_change master")
    wait_for(lambda: f"on_role_change replica {scope}" in callback_lines(old), 10, "on_role_change replica")
    assert f"on_start master {scope}" in callback_lines(old)  # bootstrap


def test_failover_rest_to_a_named_replica(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    target = next(n for n in cluster.nodes if n is not old)
    code, body = call(old, "POST", "/failover", {"candidate": target.name})
    assert (code, body) == (200, f'Successfully failed over to "{target.name}"')
    wait_for(target.is_primary, 30, "the failover target to be primary")
    healthy(cluster)


def test_switchover_refusals_on_a_live_cluster(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not leader)
    cases = [
        ({"candidate": replica.name}, "/switchover", 400, "Switchover could be performed only from a specific leader"),
        ({"leader": leader.name}, "/failover", 400, "Failover could be performed only to a specific candidate"),
        ({"leader": replica.name, "candidate": leader.name}, "/switchover", 412, "leader name does not match"),
        ({"leader": leader.name, "candidate": "nosuch"}, "/switchover", 412, "candidate does not exists"),
        ({"leader": leader.name, "candidate": leader.name}, "/switchover", 400,
         "Switchover target and source are the same."),
        ({"leader": leader.name, "scheduled_at": "2001-01-01T00:00:00+00:00"}, "/switchover", 422,
         "Cannot schedule switchover in the past"),
        ({"leader": leader.name, "scheduled_at": "2999-01-01T00:00:00"}, "/switchover", 400,
         "Timezone information is mandatory for the scheduled switchover"),
        ({"leader": leader.name, "scheduled_at": "tomorrow-ish"}, "/switchover", 422,
         "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
    ]
    for body, path, code, text in cases:
        assert call(leader, "POST", path, body) == (code, text), (path, body)
    assert call(leader, "POST", "/switchover", raw=b"{not json")[0] == 400
    assert call(leader, "POST", "/switchover", raw=b"[]")[0] == 400
    assert raw_status(leader, b"POST /switchover HTTP/1.0\r\nContent-Length: 2097152\r\n\r\n") == 413
    assert call(leader, "DELETE", "/switchover") == (404, "no switchover is scheduled")
    assert healthy(cluster) is leader  # nothing moved


def test_scheduled_switchover_and_flush(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    when = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).replace(microsecond=0)
    out = patronictl(cluster, "switchover", "--leader", leader.name, "--scheduled", when.isoformat(), "--force")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "Switchover scheduled" in out.stdout
    assert dcs_view(leader).get("scheduled_switchover", {}).get("at")
    out = patronictl(cluster, "list")
    assert " Switchover scheduled at: " in out.stdout, out.stdout
    out = patronictl(cluster, "flush", cluster.scope, "switchover", "--force")
    assert out.returncode == 0 and "Success: scheduled switchover deleted" in out.stdout, out.stdout + out.stderr
    out = patronictl(cluster, "flush", cluster.scope, "switchover", "--force")
    assert "No pending scheduled switchover" in out.stdout
    assert healthy(cluster) is leader


def test_scheduled_switchover_fires_at_its_time(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=4)
    code, body = call(leader, "POST", "/switchover", {"leader": leader.name, "scheduled_at": when.isoformat()})
    assert (code, body) == (202, "Switchover scheduled")
    assert leader.is_primary()
    wait_for(lambda: cluster.primary() not in (None, leader), 40, "the scheduled switchover to happen")
    healthy(cluster)


def test_pause_and_resume(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    out = patronictl(cluster, "pause", "--wait")
    assert out.returncode == 0, out.stderr
    assert "'pause' request sent, waiting until it is recognized by all nodes" in out.stdout
    assert "Success: cluster management is paused" in out.stdout
    assert patronictl(cluster, "pause").stderr.strip() == "Error: Cluster is already paused"
    assert " Maintenance mode: on" in patronictl(cluster, "list").stdout
    assert all((n.status() or {}).get("pause") is True for n in cluster.nodes)
    # Both replicas stream, so the failover below loses nothing and nobody needs a rewind.
    wait_for(lambda: streaming_replicas(leader) == 2, 60, "both replicas streaming from the leader")
    # No automatic action while paused: stopped databases stay stopped, nobody is promoted,
    # not even after the leader's database went away for longer than ttl.
    replica = next(n for n in cluster.nodes if n is not leader)
    for node in (replica, leader):
        subprocess.run([os.path.join(cluster.bin_dir, "qhb_ctl"), "stop", "-D", node.data_dir, "-m", "fast", "-w"],
                       check=True, capture_output=True)
    wait_for(lambda: not leader.is_primary(), 10, "the stopped leader to stop reporting itself primary")
    # Stopped cleanly by the DBA: 'stopped' (3.0.2), not 'crashed', in GET /patroni and in the member keys.
    wait_for(lambda: [(n.status() or {}).get("state") for n in (replica, leader)] == ["stopped", "stopped"], 10,
             "GET /patroni to say stopped on both")
    third = third_member(cluster, leader, replica)

    def member_states() -> Dict[str, str]:
        return {m["name"]: m["state"] for m in dcs_view(third)["members"]}

    wait_for(lambda: member_states()[replica.name] == member_states()[leader.name] == "stopped", 10,
             "the member keys to say stopped")
    deadline = time.monotonic() + TTL + 2 * LOOP_WAIT
    while time.monotonic() < deadline:
        assert cluster.primary() is None, "somebody was promoted while paused"
        time.sleep(0.5)
    assert replica.postmaster_pid() is None and leader.postmaster_pid() is None
    # Failover to a named replica works without a healthy leader, even while paused.
    out = patronictl(cluster, "failover", "--candidate", third.name, "--force")
    assert out.returncode == 0, out.stderr
    assert f'Successfully failed over to "{third.name}"' in out.stdout, out.stdout
    wait_for(third.is_primary, 30, "the failover candidate to be promoted while paused")
    out = patronictl(cluster, "resume", "--wait")
    assert out.returncode == 0 and "Success: cluster management is resumed" in out.stdout, out.stdout + out.stderr
    assert patronictl(cluster, "resume").stderr.strip() == "Error: Cluster is not paused"
    healthy(cluster)  # resume restarts the stopped replica


def test_config_patch_and_put(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    code, body = call(leader, "PATCH", "/config", {"postgresql": {"parameters": {"work_mem": "8MB"}}})
    assert code == 200 and json.loads(body)["postgresql"]["parameters"]["work_mem"] == "8MB"
    code, body = call(leader, "PATCH", "/config", {"postgresql": {"parameters": {"work_mem": None}}})
    assert code == 200 and "work_mem" not in json.loads(body)["postgresql"].get("parameters", {})
    full = json.loads(call(leader, "GET", "/config")[1])
    full["maximum_lag_on_failover"] = 2097152
    assert call(leader, "PUT", "/config", full) == (200, json.dumps(full))
    wait_for(lambda: json.loads(call(leader, "GET", "/config")[1])["maximum_lag_on_failover"] == 2097152,
             30, "GET /config to show the new value")
    assert call(leader, "PATCH", "/config", raw=b"{}")[0] == 400
    assert call(leader, "PATCH", "/config", raw=b"nope")[0] == 400


def test_restart_reload_and_scheduled_restart(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not leader)
    before = (replica.status() or {}).get("postmaster_start_time")
    out = patronictl(cluster, "restart", cluster.scope, replica.name, "--force")
    assert out.returncode == 0 and f"Success: restart on member {replica.name}" in out.stdout, out.stdout
    wait_for(lambda: (replica.status() or {}).get("postmaster_start_time") not in (None, before), 10,
             "a new postmaster start time")
    wait_for(lambda: f"on_restart replica {cluster.scope}" in callback_lines(replica), 10, "on_restart callback")
    # Filters: a role that does not match is refused.
    assert call(replica, "POST", "/restart", {"role": "master"}) == (503, "restart conditions are not satisfied")
    assert call(replica, "POST", "/restart", {"bogus": 1}) == (400, "Unknown filter for the scheduled restart: bogus")
    assert call(replica, "POST", "/restart", {"timeout": -1})[0] == 400
    # Scheduled restart, shown in list, flushed.
    when = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    scheduled = {"schedule": when, "role": "replica", "postgres_version": "99.0"}
    assert call(replica, "POST", "/restart", scheduled) == (202, "Restart scheduled")
    assert call(replica, "POST", "/restart", {"schedule": when}) == (409, "Another restart is already scheduled")
    wait_for(lambda: "Scheduled restart" in patronictl(cluster, "list").stdout, 30, "the scheduled restart in list")
    # GET /patroni shows it with the filters that were given (3.0.2), without the internal start time.
    shown = wait_for(lambda: (replica.status() or {}).get("scheduled_restart"), 10, "scheduled_restart in GET /patroni")
    assert dt.datetime.fromisoformat(shown.pop("schedule")) == dt.datetime.fromisoformat(when)
    assert shown == {"role": "replica", "postgres_version": "99.0"}
    assert "scheduled_restart" not in (leader.status() or {})
    out = patronictl(cluster, "flush", cluster.scope, replica.name, "restart", "--force")
    assert f"Success: flush scheduled restart for member {replica.name}" in out.stdout, out.stdout
    assert call(replica, "DELETE", "/restart") == (404, "no restarts are scheduled")
    wait_for(lambda: "scheduled_restart" not in (replica.status() or {"scheduled_restart": 1}), 10,
             "scheduled_restart gone from GET /patroni")
    # A scheduled restart fires at its time.
    before = (replica.status() or {}).get("postmaster_start_time")
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)).isoformat()
    assert call(replica, "POST", "/restart", {"schedule": soon}) == (202, "Restart scheduled")
    wait_for(lambda: (replica.status() or {}).get("postmaster_start_time") not in (None, before), 40,
             "the scheduled restart to happen")
    healthy(cluster)
    out = patronictl(cluster, "reload", cluster.scope, "--force")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Reload request received for member") == 3


def test_reinit_replica_and_refusal_on_leader(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not leader)
    assert call(leader, "POST", "/reinitialize", {}) == (503, "I am the leader, can not reinitialize")
    marker = os.path.join(replica.data_dir, "reinit-marker")
    open(marker, "w").close()
    out = patronictl(cluster, "reinit", cluster.scope, replica.name, "--force", "--wait")
    assert out.returncode == 0, out.stderr
    assert f"Success: reinitialize for member {replica.name}" in out.stdout
    assert f"Reinitialize is completed on: {replica.name}" in out.stdout
    healthy(cluster)
    assert not os.path.exists(marker)
    assert (replica.status() or {}).get("role") == "replica"


def test_forced_reinit_cancels_a_clone_in_progress(cluster: LocalCluster) -> None:
    leader = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not leader)
    assert call(leader, "POST", "/reinitialize", {"force": True}) == (503, "I am the leader, can not reinitialize")
    slow = install_slow_basebackup(cluster.bin_dir, cluster.base_dir)
    try:
        slow.arm()
        assert call(replica, "POST", "/reinitialize", {}) == (200, "reinitialize started")
        pid = wait_for(slow.pid, 60, "the slow clone to start")
        wait_for(lambda: (replica.status() or {}).get("state") == "creating replica", 30, "creating replica")
        # Without force: refused, as before.
        assert call(replica, "POST", "/reinitialize", {}) == (503, "reinitialize already in progress")
        assert call(replica, "POST", "/reinitialize", {"force": False}) == (503, "reinitialize already in progress")
        assert is_alive(pid)
        out = patronictl(cluster, "reinit", cluster.scope, replica.name, "--force", "--wait")
        assert out.returncode == 0, out.stderr + out.stdout
        assert f"Success: reinitialize for member {replica.name}" in out.stdout, out.stdout
        assert not is_alive(pid)  # the slow copy was killed before the new one started
    finally:
        restore_basebackup(cluster.bin_dir)
    try:
        healthy(cluster)
        wait_for(lambda: streaming_replicas(leader) == 2, 60, "both replicas streaming again")
    except AssertionError:
        print(cluster.dump_logs())
        raise
    assert (replica.status() or {}).get("role") == "replica"
    assert cluster.primary() is leader
    assert "Cancelling reinitialize for a forced reinitialize" in replica.log_tail(400)


def test_query(cluster: LocalCluster) -> None:
    healthy(cluster)
    auth = ["-U", "qhb", "--password"]
    sql = "SELECT pg_is_in_recovery() AS r"
    out = patronictl(cluster, "query", "-c", sql, *auth, stdin="qhb\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == ["r", "False"]
    out = patronictl(cluster, "query", "-c", sql, "-r", "replica", *auth, stdin="qhb\n")
    assert out.stdout.splitlines()[-2:] == ["r", "True"]
    out = patronictl(cluster, "query", "-c", "SELECT 1/0", *auth, stdin="qhb\n")
    assert out.stdout.rstrip().endswith("\tERROR, SQLSTATE: 22012"), out.stdout
    out = patronictl(cluster, "query", "-c", "SELECT 1", "-m", "ghost")
    assert out.stdout.rstrip().endswith("\tNo connection to member ghost is available"), out.stdout
    out = patronictl(cluster, "query", "-c", "SELECT 1 AS one, 2 AS two", "--format", "json", *auth, stdin="qhb\n")
    assert out.stdout.splitlines()[-1] == '[{"one": 1, "two": 2}]'
    assert patronictl(cluster, "query").stderr.strip() == "Error: You need to specify either --command or --file"
