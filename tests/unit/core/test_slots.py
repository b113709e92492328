"""core.slots: permanent slots, ignore_slots, what primary and replicas create, drop,
advance and copy, and what the leader publishes in /status."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, Optional, Sequence

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import SlotState
from qhb_patroni.core.model import ClusterView
from qhb_patroni.core.slots import (
    IgnoreRule,
    SlotSpec,
    ignore_rules,
    permanent_slots,
    primary_plan,
    published_positions,
    replica_plan,
)
from qhb_patroni.messages import render

from .builders import STARTED, cluster, hostport, make_obs, member, primary, replica, settings

CDC = {"type": "logical", "database": "qhb", "plugin": "test_decoding"}


def view(config: Optional[Dict[str, Any]] = None, slots: Optional[Dict[str, int]] = None,
         members: Sequence[Any] = ()) -> ClusterView:
    c = cluster(leader="n0", members=members, config=dict({"ttl": 30}, **(config or {})))
    return replace(c, slots=dict(slots or {}))


def logical(name: str, flush: int = 100, database: str = "qhb", plugin: str = "test_decoding") -> SlotState:
    return SlotState(name, "logical", database, plugin, confirmed_flush_lsn=flush, restart_lsn=flush - 10)


def with_slots(local: Any, *slots: SlotState) -> Any:
    return replace(local, slot_details=tuple(slots), slots=tuple(s.name for s in slots if s.type == "physical"))


# ---- configuration ------------------------------------------------------------------
def test_permanent_slots_types_aliases_and_bad_values() -> None:
    specs, problems = permanent_slots(view({"slots": {
        "backup": None, "phys": {"type": "physical"}, "cdc": CDC, "inferred": {"database": "d", "plugin": "p"},
        "Bad-Name": None, "nolugin": {"type": "logical", "database": "qhb"}, "weird": 5}}))
    assert specs == (SlotSpec("backup"), SlotSpec("cdc", "logical", "qhb", "test_decoding"),
                     SlotSpec("inferred", "logical", "d", "p"), SlotSpec("phys"))
    assert len(problems) == 3
    assert any(p.startswith("slots.Bad-Name: invalid permanent replication slot name") for p in problems)
    assert any(p.startswith("slots.nolugin: bad value") and "needs database and plugin" in p for p in problems)
    assert any(p.startswith("slots.weird: bad value") for p in problems)
    assert permanent_slots(view({"permanent_slots": {"a": None}}))[0] == (SlotSpec("a"),)
    assert permanent_slots(view({"slots": ["a"]}))[1] == ("slots: expected a mapping of slot names, got list",)


def test_ignore_rules_match_on_the_fields_that_are_set() -> None:
    rules, problems = ignore_rules(view({"ignore_slots": [{"name": "keep"}, {"type": "logical", "plugin": "wal2json"},
                                                          "oops"]}))
    assert rules == (IgnoreRule(name="keep"), IgnoreRule(type="logical", plugin="wal2json"))
    assert problems == ("ignore_slots[2]: expected a mapping with name/type/database/plugin, got 'oops'",)
    assert rules[0].matches(SlotState("keep")) and rules[0].matches(logical("keep"))
    assert rules[1].matches(logical("x", plugin="wal2json")) and not rules[1].matches(logical("x"))
    assert not rules[1].matches(SlotState("x", plugin="wal2json"))


# ---- primary ------------------------------------------------------------------------
def test_primary_creates_member_and_permanent_slots_and_drops_unknown_ones() -> None:
    c = view({"slots": {"backup": None, "cdc": CDC, "n0": None}, "ignore_slots": [{"name": "tool"}]})
    local = with_slots(primary(), SlotState("n1"), SlotState("stale"), SlotState("tool"), logical("old"))
    plan = primary_plan(c, "n0", local, use_slots=True, paused=False)
    assert plan.drop == ("old", "stale")  # 'tool' is ignored
    # n2's member slot, the permanent ones; never a physical slot named after myself.
    assert plan.create == (SlotSpec("n2"), SlotSpec("backup"), SlotSpec("cdc", "logical", "qhb", "test_decoding"))
    assert plan.problems == ()


def test_paused_primary_creates_but_never_drops() -> None:
    local = with_slots(primary(), SlotState("n1"), SlotState("n2"), SlotState("stale"))
    plan = primary_plan(view(), "n0", local, use_slots=True, paused=True)
    assert plan.drop == () and plan.create == () and not plan.changes


def test_changed_definition_is_dropped_and_created_again() -> None:
    c = view({"slots": {"cdc": dict(CDC, plugin="pgoutput")}})
    local = with_slots(primary(), SlotState("n1"), SlotState("n2"), logical("cdc"))
    plan = primary_plan(c, "n0", local, use_slots=True, paused=True)
    assert plan.drop == ("cdc",) and plan.create == (SlotSpec("cdc", "logical", "qhb", "pgoutput"),)


def test_use_slots_off_keeps_only_permanent_physical_slots_and_reports_conflicts() -> None:
    c = view({"slots": {"backup": None, "cdc": CDC}})
    plan = primary_plan(c, "n0", with_slots(primary()), use_slots=False, paused=False)
    assert plan.create == (SlotSpec("backup"),)
    conflict = view({"slots": {"n1": CDC}})
    plan = primary_plan(conflict, "n0", with_slots(primary(), SlotState("n1"), SlotState("n2")), True, False)
    assert plan.create == () and plan.problems == (
        "slots.n1: permanent logical replication slot 'n1' is conflicting with physical replication slot "
        "for cluster member",)


def test_published_positions_are_the_permanent_slots_only() -> None:
    c = view({"slots": {"backup": None, "cdc": CDC}})
    local = with_slots(primary(), replace(SlotState("backup"), restart_lsn=70), logical("cdc", 120),
                       replace(SlotState("n1"), restart_lsn=90), logical("other", 5))
    assert published_positions(c, local) == (("backup", 70), ("cdc", 120))
    assert published_positions(view(), local) is None


# ---- replica ------------------------------------------------------------------------
def test_replica_copies_missing_published_logical_slots_and_forces_feedback() -> None:
    c = view({"slots": {"cdc": CDC, "later": dict(CDC)}}, slots={"cdc": 300})
    plan = replica_plan(c, "n1", with_slots(replica(), SlotState("junk")), True, False, False)
    assert plan.copy == ("cdc",)  # 'later' is not published yet: nothing to copy
    assert plan.drop == ("junk",) and plan.create == () and plan.feedback is True


def test_replica_advances_its_copies_to_the_published_position() -> None:
    c = view({"slots": {"cdc": CDC}}, slots={"cdc": 300})
    local = replace(with_slots(replica(), logical("cdc", 200)), feedback_enforced=True)
    plan = replica_plan(c, "n1", local, True, False, False)
    assert plan.advance == (("cdc", "qhb", 300),) and plan.copy == () and plan.feedback is None
    ahead = replace(with_slots(replica(), logical("cdc", 300)), feedback_enforced=True)
    assert not replica_plan(c, "n1", ahead, True, False, False).changes


def test_replica_that_may_not_become_primary_keeps_no_logical_slots() -> None:
    c = view({"slots": {"cdc": CDC}}, slots={"cdc": 300})
    local = replace(with_slots(replica(), logical("cdc", 200)), feedback_enforced=True)
    plan = replica_plan(c, "n1", local, True, True, False)
    assert plan.drop == ("cdc",) and plan.copy == () and plan.feedback is False


def test_replica_keeps_slots_of_members_cascading_from_it() -> None:
    ms = [member("n0", role="master"), member("n1"), member("n2", tags={"replicatefrom": "n1"})]
    plan = replica_plan(view(members=ms), "n1", with_slots(replica()), True, False, False)
    assert plan.create == (SlotSpec("n2"),)
    kept = replica_plan(view(members=ms), "n1", with_slots(replica(), SlotState("n2")), True, False, False)
    assert not kept.changes


# ---- decide() -----------------------------------------------------------------------
def test_leader_publishes_slot_positions_and_replica_copies_then_advances() -> None:
    config = {"ttl": 30, "slots": {"cdc": CDC}}
    c = cluster(leader="n0", config=config)
    local = with_slots(primary(500), SlotState("n1"), SlotState("n2"), logical("cdc", 450))
    d = decide(make_obs(c, local), STARTED, settings())
    assert d.actions == (A.RenewLock(version=7, last_lsn=500, slots=(("cdc", 450),)),)

    published = replace(cluster(leader="n0", config=config), slots={"cdc": 450})
    me = settings("n1")
    following = with_slots(replica(480, following=hostport("n0"), slot="n1"))
    d = decide(make_obs(published, following, me="n1"), STARTED, me)
    assert [type(a) for a in d.actions] == [A.ManageSlots, A.CopyLogicalSlots]
    assert d.actions[0] == A.ManageSlots(feedback=True)
    copy = d.actions[1]
    assert isinstance(copy, A.CopyLogicalSlots) and copy.names == ("cdc",) and copy.leader.name == "n0"
    assert render(d.reason) == "Copying logical slots ['cdc'] from the primary"

    copied = replace(with_slots(replica(480, following=hostport("n0"), slot="n1"), logical("cdc", 400)),
                     feedback_enforced=True)
    d = decide(make_obs(published, copied, me="n1"), STARTED, me)
    assert d.actions == (A.ManageSlots(advance=(("cdc", "qhb", 450),)),)
    assert render(d.reason) == "no action. I am (n1), a secondary, and following a leader (n0)"


def test_replica_not_yet_following_manages_no_slots() -> None:
    published = replace(cluster(leader="n0", config={"ttl": 30, "slots": {"cdc": CDC}}), slots={"cdc": 450})
    d = decide(make_obs(published, with_slots(replica(480)), me="n1"), STARTED, settings("n1"))
    assert [type(a) for a in d.actions] == [A.Follow]


def test_paused_replica_advances_but_neither_drops_nor_copies() -> None:
    config = {"ttl": 30, "pause": True, "slots": {"cdc": CDC, "new": dict(CDC)}}
    published = replace(cluster(leader="n0", config=config), slots={"cdc": 450, "new": 10})
    local = replace(with_slots(replica(480, following=hostport("n0"), slot="n1"), logical("cdc", 400),
                               SlotState("foreign")), feedback_enforced=True)
    d = decide(make_obs(published, local, me="n1"), STARTED, settings("n1"))
    assert d.actions == (A.ManageSlots(advance=(("cdc", "qhb", 450),)),)


def test_replica_checks_unready_copies_against_the_leader() -> None:
    published = replace(cluster(leader="n0", config={"ttl": 30, "slots": {"cdc": CDC}}), slots={"cdc": 400})
    local = replace(with_slots(replica(480, following=hostport("n0"), slot="n1"), logical("cdc", 400)),
                    feedback_enforced=True, unready_slots=("cdc",))
    d = decide(make_obs(published, local, me="n1"), STARTED, settings("n1"))
    (manage,) = d.actions
    assert isinstance(manage, A.ManageSlots) and manage.readiness_leader is not None
    assert manage.readiness_leader.name == "n0" and not manage.advance
