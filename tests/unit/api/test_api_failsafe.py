"""POST /failsafe (api/failsafe.py) over real HTTP, called with the peer client the
leader uses (runtime/failsafe.py): 3.0.2's answers, plus the refusals of callers
that are not the leader."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, Optional, Set, Tuple

import pytest

from qhb_patroni.api.failsafe import FailsafeApi, resolve
from qhb_patroni.api.security import AccessPolicy
from qhb_patroni.api.server import RestApiServer
from qhb_patroni.runtime.failsafe import FailsafeInbox, call_failsafe, failsafe_url
from qhb_patroni.runtime.probe import PeerProber
from qhb_patroni.runtime.status import StatusBoard, StatusView
from tests.fixtures.api import NOW, primary_server, replica_server, status_view, two_node_cluster

LEADER_URL = "http://127.0.0.1:8008/patroni"
BODY = {"name": "postgresql0", "conn_url": "postgres://127.0.0.1:5432/qhb", "api_url": LEADER_URL}
KEY = {"postgresql0": LEADER_URL, "postgresql1": "http://127.0.0.1:8009/patroni"}

Make = Callable[..., Tuple[RestApiServer, StatusBoard]]


def replica_view(**changes: Any) -> StatusView:
    c = replace(two_node_cluster(), failsafe=dict(KEY))
    base = status_view("postgresql1", server=replica_server(), cluster_view=c,
                       failsafe_mode=True, last_leader="postgresql0")
    return replace(base, **changes)


def serve(api_server: Make, view: StatusView, resolver: Optional[Callable[[str], Set[str]]] = None,
          **kw: Any) -> Tuple[str, FailsafeInbox]:
    server, _ = api_server(view, **kw)
    inbox = FailsafeInbox()
    FailsafeApi(inbox, clock=lambda: NOW, resolver=resolver or resolve).install(server)
    return f"http://{server.listen}/failsafe", inbox


def post(url: str, body: Dict[str, Any], headers: Optional[Dict[str, str]] = None) -> Optional[int]:
    return PeerProber(timeout=2.0).post_json(url, body, headers)


def test_accepted_and_remembered_for_ttl(api_server: Make) -> None:
    url, inbox = serve(api_server, replica_view())
    assert post(url, BODY) == 200
    assert inbox.leader(NOW + 9.9, 10) == "postgresql0"
    assert inbox.leader(NOW + 10, 10) is None


def test_failsafe_mode_off_is_502(api_server: Make) -> None:
    url, inbox = serve(api_server, replica_view(failsafe_mode=False))
    assert post(url, BODY) == 502
    assert inbox.leader(NOW, 10) is None


def test_a_running_primary_refuses(api_server: Make) -> None:
    url, inbox = serve(api_server, replica_view(server=primary_server()))
    assert post(url, BODY) == 500
    assert inbox.leader(NOW, 10) is None


@pytest.mark.parametrize("body", [
    dict(BODY, name="postgresql1", api_url=KEY["postgresql1"]),  # a member that is not the leader
    dict(BODY, api_url="http://127.0.0.1:9999/patroni"),  # the leader's name with another api_url
    {"name": "postgresql0"},  # no api_url
    {"name": 1, "api_url": LEADER_URL},
])
def test_a_body_that_is_not_the_leaders_is_refused(api_server: Make, body: Dict[str, Any]) -> None:
    url, inbox = serve(api_server, replica_view())
    assert post(url, body) == 403
    assert inbox.leader(NOW, 10) is None


def test_a_call_from_another_address_is_refused(api_server: Make) -> None:
    url, inbox = serve(api_server, replica_view(), resolver=lambda host: {"10.0.0.7"})
    assert post(url, BODY) == 403
    assert inbox.leader(NOW, 10) is None


def test_no_known_leader_is_refused(api_server: Make) -> None:
    url, _ = serve(api_server, replica_view(last_leader=None))
    assert post(url, BODY) == 403


def test_not_json_is_400(api_server: Make) -> None:
    url, _ = serve(api_server, replica_view())
    assert PeerProber().post_json(url, []) == 400  # type: ignore[arg-type]


def test_authentication_as_for_every_unsafe_endpoint(api_server: Make) -> None:
    access = AccessPolicy.from_config({"authentication": {"username": "u", "password": "p"}})
    url, inbox = serve(api_server, replica_view(), access=access)
    assert post(url, BODY) == 401
    assert inbox.leader(NOW, 10) is None
    assert post(url, BODY, {"Authorization": "Basic dTpw"}) == 200  # u:p


def test_call_failsafe_in_parallel_counts_the_unreachable_as_refusing(api_server: Make) -> None:
    url, _ = serve(api_server, replica_view())
    members = (("postgresql1", url.replace("/failsafe", "/patroni")), ("gone", "http://127.0.0.1:9/patroni"))
    assert call_failsafe(PeerProber(timeout=1.0), members, BODY) == {"postgresql1": True, "gone": False}


def test_failsafe_url() -> None:
    assert failsafe_url("https://h:8008/patroni") == "https://h:8008/failsafe"


def test_failsafe_leader_is_primary_and_says_so() -> None:
    from qhb_patroni.api.health import health_check
    from qhb_patroni.api.views import node_status
    view = status_view("postgresql0", server=primary_server(), cluster_view=two_node_cluster(), fresh=False,
                       failsafe_mode=True, failsafe_until=NOW + 5)
    assert node_status(view, NOW)["failsafe_mode_is_active"] is True
    assert health_check(view, NOW, "/primary", {})[0] == 200
    assert "failsafe_mode_is_active" not in node_status(view, NOW + 5)
    assert health_check(view, NOW + 5, "/primary", {})[0] == 503
