"""End to end: the REST API over https with client certificates required on every
node (issue 15 item 5). Member-to-member calls (the leader race's peer probes, the
switchover checks) and patronictl present the configured certificate and basic auth;
failover and switchover work as over plain http."""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import Dict, Iterator

import pytest

from tests.e2e.harness import LocalCluster, healthy, patronictl, running, wait_for
from tests.fixtures.etcd import EtcdProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, etcd: EtcdProcess,
            cert: Dict[str, str]) -> Iterator[LocalCluster]:
    base = str(tmp_path_factory.mktemp("tls-cluster"))
    c = LocalCluster(base, etcd.host_port, ttl=10, loop_wait=2, retry_timeout=4, scope="qhb-tls", tls=cert)
    with running(c):
        yield c


def test_a_client_without_certificate_is_refused(cluster: LocalCluster, cert: Dict[str, str]) -> None:
    primary = healthy(cluster)
    assert primary.api.startswith("https://")
    anonymous = ssl.create_default_context(cafile=cert["certfile"])
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(primary.api + "/patroni", timeout=5, context=anonymous).read()


def test_switchover_with_patronictl_over_https(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    candidate = next(n for n in cluster.nodes if n is not old)
    out = patronictl(cluster, "switchover", "--leader", old.name, "--candidate", candidate.name, "--force")
    assert out.returncode == 0, out.stderr + out.stdout
    assert f'Successfully switched over to "{candidate.name}"' in out.stdout, out.stdout
    wait_for(candidate.is_primary, 60, "the candidate to be the primary")
    wait_for(lambda: (old.status() or {}).get("role") == "replica", 60, "the old primary to follow")
    healthy(cluster)


def test_kill9_failover_over_https(cluster: LocalCluster) -> None:
    old = healthy(cluster)
    old.kill9()
    survivors = [n for n in cluster.nodes if n is not old]
    wait_for(lambda: next((n for n in survivors if n.is_primary()), None), 90, "a new primary among the survivors")
    old.start()
    healthy(cluster)
