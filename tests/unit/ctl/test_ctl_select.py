"""Member selection by --role (spec 2.4)."""
from __future__ import annotations

import pytest

from patronictl.select import members_with_role
from tests.fixtures.api import cluster, member

PRIMARY = cluster([member("a", role="master"), member("b"), member("c")], leader="a")
STANDBY = cluster([member("a", role="standby_leader"), member("b")], leader="a",
                  config={"standby_cluster": {"host": "x"}})
NO_LEADER = cluster([member("a"), member("b")])


@pytest.mark.parametrize(
    "view,role,names",
    [
        (PRIMARY, "leader", ["a"]), (PRIMARY, "primary", ["a"]), (PRIMARY, "master", ["a"]),
        (PRIMARY, "standby-leader", []), (PRIMARY, "replica", ["b", "c"]), (PRIMARY, "standby", ["b", "c"]),
        (PRIMARY, "any", ["a", "b", "c"]),
        (STANDBY, "leader", ["a"]), (STANDBY, "primary", []), (STANDBY, "standby-leader", ["a"]),
        (STANDBY, "replica", ["b"]),
        (NO_LEADER, "leader", []), (NO_LEADER, "replica", ["a", "b"]), (NO_LEADER, "any", ["a", "b"]),
    ],
)  # fmt: skip
def test_members_with_role(view: object, role: str, names: list) -> None:
    assert [m.name for m in members_with_role(view, role)] == names  # type: ignore[arg-type]


def test_unknown_role() -> None:
    with pytest.raises(ValueError):
        members_with_role(PRIMARY, "boss")
