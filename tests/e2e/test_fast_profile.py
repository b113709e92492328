"""The fast profile (ttl 5 / loop_wait 1 / retry_timeout 2) keeps its lease while the
primary's database is stalled: real etcd, real databases, real daemons.

The primary's whole server (the postmaster and every process it started, the backend
of the daemon's kept status connection among them) is stopped with SIGSTOP for three
times the ttl, as a machine that stalls its database would. Its status query cannot be
answered, so every HA cycle meets a server that does not answer; the loop gives it up
at its deadline and the core renews the leader key on the role it last knew. Checked: the key never expires, is
renewed again and again during the stall, nobody else is promoted, and once the
postmaster continues the same primary takes writes on the same timeline."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from typing import Iterator, Optional, Tuple

import pytest

from qhb_patroni.manager.process import child_pids
from tests.e2e.harness import LocalCluster, healthy, in_recovery, running, sql, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e

TTL, LOOP_WAIT, RETRY_TIMEOUT = 5, 1, 2


@pytest.fixture
def cluster(etcd: EtcdProcess, tmp_path: os.PathLike[str]) -> Iterator[LocalCluster]:
    c = LocalCluster(str(tmp_path), etcd.host_port, nodes=2, ttl=TTL, loop_wait=LOOP_WAIT,
                     retry_timeout=RETRY_TIMEOUT, scope="fast")
    with running(c):
        yield c


def leader_key(c: LocalCluster) -> Optional[Tuple[str, int]]:
    """(owner, modifiedIndex) of the leader key, None when it does not exist."""
    url = f"http://{c.etcd_host}/v2/keys/service/{c.scope}/leader"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            node = json.loads(resp.read())["node"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise
    return str(node["value"]), int(node["modifiedIndex"])


def test_a_stalled_server_does_not_cost_the_lease(cluster: LocalCluster) -> None:
    primary = healthy(cluster)
    replica = next(n for n in cluster.nodes if n is not primary)
    timeline = sql(primary, "SELECT timeline_id FROM pg_control_checkpoint()")[0][0]
    pid = primary.postmaster_pid()
    assert pid is not None
    versions = set()
    os.kill(pid, signal.SIGSTOP)  # the postmaster first: it starts no new child then
    stalled = [pid]
    try:
        for child in child_pids(pid):
            try:
                os.kill(child, signal.SIGSTOP)
            except ProcessLookupError:
                continue  # a backend that ended after it was listed
            stalled.append(child)
        end = time.monotonic() + 3 * TTL
        while time.monotonic() < end:
            key = leader_key(cluster)
            assert key is not None, "the leader key expired while the postmaster was stopped"
            assert key[0] == primary.name
            versions.add(key[1])
            status = replica.status()
            assert status is None or status.get("role") != "master", "the replica was promoted"
            time.sleep(0.2)
    finally:
        for victim in reversed(stalled):
            try:
                os.kill(victim, signal.SIGCONT)
            except ProcessLookupError:
                pass  # fenced: reported below
    assert len(versions) >= 3, f"the key was not renewed during the stall: {sorted(versions)}"
    assert primary.postmaster_pid() == pid, "the postmaster was fenced or restarted"
    assert "falling back to cached role" in primary.log_tail(400)
    # The same server leads on: writable, same timeline, and the replica still follows it.
    wait_for(lambda: sql(primary, "SELECT 1") == [(1,)], 30, "the primary to answer again")
    sql(primary, "CREATE TABLE IF NOT EXISTS after_stall (id int)")
    sql(primary, "INSERT INTO after_stall VALUES (1)")
    assert sql(primary, "SELECT timeline_id FROM pg_control_checkpoint()")[0][0] == timeline
    assert in_recovery(replica)
    assert cluster.primary() is primary
