"""End to end: synchronous mode on 3 daemons, real etcd (v2 API), real PostgreSQL 15.

With synchronous_mode every acknowledged commit is on the standby named in /sync,
and only that standby may take over: a kill -9 of the primary loses nothing.
The tests share one cluster and run in file order.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.e2e.harness import LocalCluster, Node, Writer, healthy, patronictl, rows_on, running, sql, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("sync"))
    c = LocalCluster(base, etcd.host_port, ttl=10, loop_wait=2, retry_timeout=4, scope="qhb-sync",
                     dynamic={"synchronous_mode": True})
    with running(c):
        yield c


def _get(url: str) -> Tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = resp.read()
            return resp.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode("utf-8", "replace")


def _sync_standbys(node: Node) -> List[str]:
    code, doc = _get(node.api + "/cluster")
    if code != 200 or not isinstance(doc, dict):
        return []
    return sorted(m["name"] for m in doc.get("members", []) if m.get("role") == "sync_standby")


def _sync_key(cluster: LocalCluster) -> Dict[str, Any]:
    """The /sync key as stored in etcd (v2 API)."""
    code, doc = _get(f"http://{cluster.etcd_host}/v2/keys/service/{cluster.scope}/sync")
    assert code == 200, doc
    value = json.loads(doc["node"]["value"])
    assert isinstance(value, dict)
    return value


def _one_sync_standby(cluster: LocalCluster, primary: Node) -> Node:
    """Wait until the primary names exactly one running standby in /sync and waits for it."""
    def check() -> Optional[Node]:
        names = _sync_standbys(primary)
        if len(names) != 1 or names[0] == primary.name:
            return None
        rows = sql(primary, "SELECT application_name, sync_state FROM pg_stat_replication")
        if (names[0], "sync") not in rows:
            return None
        return cluster.node(names[0])

    try:
        return wait_for(check, 60, "one synchronous standby")  # type: ignore[no-any-return]
    except AssertionError:
        print(cluster.dump_logs())
        raise


def test_the_primary_names_one_synchronous_standby(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    sync = _one_sync_standby(cluster, primary)
    ssn = sql(primary, "SHOW synchronous_standby_names")[0][0]
    assert ssn == sync.name
    other = next(n for n in cluster.nodes if n not in (primary, sync))
    # Health checks: /sync only on the synchronous standby, /async only on the other one.
    assert _get(sync.api + "/sync")[0] == 200
    assert _get(other.api + "/sync")[0] == 503
    assert _get(other.api + "/async")[0] == 200
    assert _get(sync.api + "/async")[0] == 503
    out = patronictl(cluster, "list")
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith(f"| {sync.name} "))
    assert "| Sync Standby |" in line


def test_switchover_to_an_asynchronous_replica_is_refused(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    sync = _one_sync_standby(cluster, primary)
    other = next(n for n in cluster.nodes if n not in (primary, sync))
    req = urllib.request.Request(
        primary.api + "/switchover", method="POST",
        data=json.dumps({"leader": primary.name, "candidate": other.name}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 412
    assert err.value.read().decode() == "candidate name does not match with sync_standby"
    assert cluster.primary() is primary


def test_kill9_of_the_primary_loses_no_acknowledged_commit(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    sync = _one_sync_standby(cluster, old)
    writer = Writer(cluster, interval=0.01, statement_timeout_ms=0).start()
    try:
        wait_for(lambda: len(writer.acked) >= 50, 30, "some acknowledged writes")
        old.kill9()  # while the writer keeps committing
        new = wait_for(lambda: cluster.primary(), 60, "a new primary")
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= before + 20, 60, "writes on the new primary")
    finally:
        writer.stop()
    # Only the synchronous standby may take over, and it has every acknowledged commit,
    # including those of the last milliseconds before the kill.
    assert new is sync
    present = set(rows_on(new))
    lost = [i for i in writer.acked if i not in present]
    assert not lost, f"acknowledged rows lost: {lost[:10]}"
    # The new primary names the remaining replica its synchronous standby.
    survivors = [n for n in cluster.nodes if n is not old]
    third = _one_sync_standby(cluster, new)
    assert third in survivors and third is not new
    # The killed node comes back as a replica (rewound) for the next test.
    old.start()
    healthy(cluster)
    wait_for(lambda: set(writer.acked) <= set(rows_on(old)), 60, "the old primary to catch up")


def test_switchover_to_the_synchronous_standby_loses_nothing(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    sync = _one_sync_standby(cluster, old)
    writer = Writer(cluster, statement_timeout_ms=0).start()
    try:
        wait_for(lambda: len(writer.acked) >= 20, 30, "some acknowledged writes")
        out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", sync.name, "--force")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: cluster.primary() is sync, 60, "the synchronous standby to lead")
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= before + 20, 60, "writes on the new primary")
    finally:
        writer.stop()
    present = set(rows_on(sync))
    assert not [i for i in writer.acked if i not in present]
    _one_sync_standby(cluster, sync)


def test_stopping_the_sync_standby_hands_its_duty_over_first(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    sync = _one_sync_standby(cluster, primary)
    other = next(n for n in cluster.nodes if n not in (primary, sync))
    writer = Writer(cluster, statement_timeout_ms=0).start()
    try:
        wait_for(lambda: len(writer.acked) >= 10, 30, "some acknowledged writes")
        assert sync.terminate() == 0
        # Before its daemon exited, the primary had named the other replica instead
        # (nosync published first), so commits never waited for a stopped standby.
        # (Read from etcd itself: the primary's /cluster is its last loop view.)
        standbys = _sync_key(cluster).get("sync_standby") or ""
        assert sync.name not in standbys.split(","), standbys
        log_text = open(sync.log_path, encoding="utf-8", errors="replace").read()
        assert "No longer a synchronous standby" in log_text
        before = len(writer.acked)
        wait_for(lambda: len(writer.acked) >= before + 10, 30, "commits while the old sync standby is down")
        assert _one_sync_standby(cluster, primary) is other
    finally:
        writer.stop()
    sync.start()
    healthy(cluster)


def test_restarting_the_sync_standby_hands_its_duty_over_first(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    sync = _one_sync_standby(cluster, primary)
    other = next(n for n in cluster.nodes if n not in (primary, sync))
    with open(sync.log_path, encoding="utf-8", errors="replace") as f:
        seen = len(f.read())
    out = patronictl(cluster, "restart", cluster.scope, sync.name, "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: restart on member " + sync.name in out.stdout
    with open(sync.log_path, encoding="utf-8", errors="replace") as f:
        log_text = f.read()[seen:]
    # The restart waited for the primary to name another standby before stopping.
    assert "Withdrawing from synchronous standby duty before stopping" in log_text
    assert "No longer a synchronous standby" in log_text
    healthy(cluster)
    assert _one_sync_standby(cluster, primary) in (sync, other)


def test_switching_synchronous_mode_off_removes_sync_and_stops_waiting(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    out = patronictl(cluster, "edit-config", "--set", "synchronous_mode=false", "--force")
    assert out.returncode == 0, out.stdout + out.stderr

    def off() -> bool:
        ssn = sql(primary, "SHOW synchronous_standby_names")[0][0]
        return ssn == "" and _sync_standbys(primary) == []

    wait_for(off, 60, "synchronous mode to be switched off")
    code, doc = _get(primary.api + "/patroni")
    assert code == 200
    states: Dict[str, str] = dict(sql(primary, "SELECT application_name, sync_state FROM pg_stat_replication"))
    assert states and set(states.values()) == {"async"}
    # Each member answers from its own last DCS view (at most loop_wait old).
    wait_for(lambda: all(_get(n.api + "/sync")[0] == 503 for n in cluster.nodes), 30, "/sync 503 everywhere")
