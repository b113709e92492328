"""End to end: a mixed cluster, two qhb-patroni daemons and one real Patroni 3.0.2
(issue 15). Bootstrap by ours; their node clones and streams; switchover to their
node with our patronictl and back with theirs; kill -9 of either kind of leader, the
killed node rejoins (their node rewinds from our freshly promoted primary, which must
publish checkpoint_after_promote until its CHECKPOINT); both patronictls list the same
cluster. Patroni 3.0.2 runs from its own virtual environment (PATRONI_302_VENV, default
/opt/patroni-3.0.2), installed with
`pip install 'patroni[etcd]==3.0.2' psycopg2-binary ydiff==1.2`; skipped without it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any, Callable, Dict, Iterator, List

import pytest

from tests.e2e.harness import REPO, LocalCluster, Node, Writer, healthy, patronictl, rows_on, running, wait_for
from tests.fixtures import patroni302
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e

VENV = patroni302.VENV
PATRONICTL = patroni302.PATRONICTL


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess) -> Iterator[LocalCluster]:
    if not patroni302.available():
        pytest.skip(f"Patroni 3.0.2 is not installed in {VENV}")
    base = str(tmp_path_factory.mktemp("mixed"))
    c = LocalCluster(base, etcd.host_port, ttl=10, loop_wait=2, retry_timeout=4, scope="qhb-mixed")
    theirs = c.nodes[2]
    patroni302.use_patroni_302(c, [theirs])
    ours = c.nodes[:2]
    c.start = lambda: [n.start() for n in ours]  # type: ignore[method-assign]
    with running(c):
        healthy(c, members=ours)  # the cluster is bootstrapped by ours ...
        theirs.start()  # ... before their node joins
        yield c


def _wait(cluster: LocalCluster, cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """wait_for, printing every member's log tail when it times out."""
    try:
        return wait_for(cond, timeout, what)
    except AssertionError:
        print(cluster.dump_logs())
        print("===== node2 (Patroni 3.0.2) =====\n" + _theirs(cluster).log_tail(150))
        raise


def _theirs(cluster: LocalCluster) -> Node:
    return cluster.nodes[2]


def _their_patronictl(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PATRONICTL, "-c", _theirs(cluster).config_path, *args], cwd=REPO, env=patroni302.clean_env(),
                          capture_output=True, text=True, timeout=120)


def _roles(out: subprocess.CompletedProcess[str]) -> Dict[str, tuple]:
    assert out.returncode == 0, out.stderr + out.stdout
    return {row["Member"]: (row["Role"], row["State"], row.get("TL")) for row in json.loads(out.stdout)}


def _listed_alike(cluster: LocalCluster) -> Dict[str, tuple]:
    ours = _roles(patronictl(cluster, "list", "-f", "json"))
    theirs = _roles(_their_patronictl(cluster, "list", "-f", "json"))
    return ours if ours == theirs else {}


def _streaming(cluster: LocalCluster) -> bool:
    listed = _listed_alike(cluster)
    return len(listed) == 3 and all(state == "running" for _, state, _ in listed.values())


def _healthy_and_listed(cluster: LocalCluster) -> Node:
    primary = healthy(cluster)
    _wait(cluster, lambda: _streaming(cluster), 90, "both patronictls to list the same running cluster")
    return primary


def test_ours_bootstraps_and_their_node_clones_and_streams(cluster: LocalCluster) -> None:
    theirs = _theirs(cluster)
    ours = cluster.nodes[:2]
    primary = healthy(cluster, members=ours)
    assert primary in ours
    _wait(cluster, lambda: (theirs.status() or {}).get("role") == "replica", 120, "their node to run as a replica")
    writer = Writer(cluster).start()
    try:
        _wait(cluster, lambda: len(writer.acked) >= 10, 60, "some writes")
    finally:
        writer.stop()
    _wait(cluster, lambda: set(writer.acked) <= set(rows_on(theirs)), 60, "their node to stream our rows")
    _healthy_and_listed(cluster)


def test_switchover_to_their_node_with_ours_and_back_with_theirs(cluster: LocalCluster) -> None:
    old = _healthy_and_listed(cluster)
    theirs = _theirs(cluster)
    out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", theirs.name, "--force")
    assert out.returncode == 0 and f'Successfully switched over to "{theirs.name}"' in out.stdout, \
        out.stdout + out.stderr
    _wait(cluster, theirs.is_primary, 90, "their node to be the primary")
    _healthy_and_listed(cluster)
    out = _their_patronictl(cluster, "switchover", "--master", theirs.name, "--candidate", old.name, "--force")
    assert out.returncode == 0, out.stdout + out.stderr
    _wait(cluster, old.is_primary, 90, "our node to be the primary again")
    _healthy_and_listed(cluster)


def _kill_leader_and_rejoin(cluster: LocalCluster, leader: Node) -> Node:
    writer = Writer(cluster).start()
    try:
        _wait(cluster, lambda: len(writer.acked) >= 10, 60, "some writes")
        leader.kill9()
        survivors = [n for n in cluster.nodes if n is not leader]
        new = _wait(cluster, lambda: next((n for n in survivors if n.is_primary()), None), 90, "a new primary")
        acked = len(writer.acked)
        _wait(cluster, lambda: len(writer.acked) >= acked + 10, 60, "writes on the new primary")
    finally:
        writer.stop()
    leader.start()  # rejoins (rewinds from the new primary if it diverged)
    _healthy_and_listed(cluster)
    _wait(cluster, lambda: set(writer.acked[-5:]) <= set(rows_on(leader)), 90, f"{leader.name} to stream again")
    return new


def test_kill9_of_our_leader(cluster: LocalCluster) -> None:
    leader = _healthy_and_listed(cluster)
    assert leader is not _theirs(cluster)
    _kill_leader_and_rejoin(cluster, leader)


def test_kill9_of_their_leader_and_it_rejoins(cluster: LocalCluster) -> None:
    theirs = _theirs(cluster)
    leader = _healthy_and_listed(cluster)
    if leader is not theirs:
        out = patronictl(cluster, "switchover", "--leader", leader.name, "--candidate", theirs.name, "--force")
        assert out.returncode == 0, out.stdout + out.stderr
        _wait(cluster, theirs.is_primary, 90, "their node to be the primary")
        _healthy_and_listed(cluster)
    new = _kill_leader_and_rejoin(cluster, theirs)
    assert new is not theirs
    log = theirs.log_tail(2000)
    assert "requested timeline" not in log and "does not contain minimum recovery point" not in log, log


def test_crash_of_our_primary_with_start_timeout_0(cluster: LocalCluster) -> None:
    leader = _healthy_and_listed(cluster)
    if leader is _theirs(cluster):
        out = patronictl(cluster, "switchover", "--leader", leader.name, "--candidate", cluster.nodes[0].name,
                         "--force")
        assert out.returncode == 0, out.stdout + out.stderr
        leader = cluster.nodes[0]
        _wait(cluster, leader.is_primary, 90, "our node to be the primary")
        _healthy_and_listed(cluster)
    out = patronictl(cluster, "edit-config", "--force", "-s", "primary_start_timeout=0")
    assert out.returncode == 0, out.stdout + out.stderr
    theirs_log_before = len(_theirs(cluster).log_tail(100000))
    pm = leader.postmaster_pid()
    assert pm is not None
    os.kill(pm, signal.SIGKILL)  # the database only: our daemon sees it crashed
    survivors = [n for n in cluster.nodes if n is not leader]
    _wait(cluster, lambda: next((n for n in survivors if n.is_primary()), None), 90, "a replica to take over")
    assert "Primary crashed. Failing over." in leader.log_tail(500)
    # Their node never took our crashed, demoted primary for a live one.
    assert f"Primary ({leader.name}) is still alive" not in _theirs(cluster).log_tail(100000)[theirs_log_before:]
    out = patronictl(cluster, "edit-config", "--force", "-s", "primary_start_timeout=null")
    assert out.returncode == 0, out.stdout + out.stderr
    _healthy_and_listed(cluster)


def test_both_patronictls_list_the_same_cluster(cluster: LocalCluster) -> None:
    _healthy_and_listed(cluster)
    listed: List[str] = sorted(_listed_alike(cluster))
    assert listed == sorted(n.name for n in cluster.nodes)
