"""The fault schedule: reproducible from the seed, covering every kind, sane holds;
the partition shapes: halves, majorities ring, isolation."""
from __future__ import annotations

from collections import Counter

import pytest

from bench import chaos_plan as plan


def test_same_seed_same_schedule_and_other_seed_differs() -> None:
    a = plan.make_schedule(7, 40, ttl=10)
    assert a == plan.make_schedule(7, 40, ttl=10)
    assert a != plan.make_schedule(8, 40, ttl=10)


def test_every_kind_before_any_repeats() -> None:
    faults = plan.make_schedule(3, len(plan.KINDS) * 2, ttl=10)
    assert sorted(f.kind for f in faults[:len(plan.KINDS)]) == sorted(plan.KINDS)
    assert Counter(f.kind for f in faults) == {k: 2 for k in plan.KINDS}
    assert [f.index for f in faults] == list(range(len(faults)))


def test_holds_within_range_and_stalled_daemon_outlives_ttl() -> None:
    past_ttl = {True: 0, False: 0}
    for f in plan.make_schedule(11, 280, ttl=10, hold=(2.0, 8.0)):
        assert 0 <= f.pick < 1
        if f.kind == plan.STOP_DAEMON:
            assert f.hold_s > 10
        elif f.kind == plan.SWITCHOVER:
            assert f.hold_s == 0 and not f.mid_switchover
        elif f.kind in plan.PAST_TTL_KINDS:
            long = f.hold_s > 10
            assert 12.0 <= f.hold_s <= 18.0 if long else 2.0 <= f.hold_s <= 8.0
            past_ttl[long] += 1
        else:
            assert 2.0 <= f.hold_s <= 8.0
        if f.mid_switchover:
            assert f.kind in plan.MID_SWITCHOVER_KINDS
    # both the failover case and the blip case occur for the primary-losing kinds
    assert past_ttl[True] > past_ttl[False] > 0


def test_subset_of_kinds_and_bad_arguments() -> None:
    faults = plan.make_schedule(1, 5, ttl=10, kinds=[plan.NETEM, plan.KILL_ETCD])
    assert {f.kind for f in faults} == {plan.NETEM, plan.KILL_ETCD}
    with pytest.raises(ValueError, match="unknown fault kinds: bogus"):
        plan.make_schedule(1, 5, ttl=10, kinds=["bogus"])
    with pytest.raises(ValueError, match="bad hold range"):
        plan.make_schedule(1, 5, ttl=10, hold=(5.0, 1.0))
    assert plan.make_schedule(1, 0, ttl=10) == []


def test_choose_covers_all_items() -> None:
    items = ["a", "b", "c"]
    assert [plan.choose(items, p) for p in (0.0, 0.34, 0.67, 0.999999)] == ["a", "b", "c", "c"]
    with pytest.raises(ValueError):
        plan.choose([], 0.5)


def test_halves_split_everything_in_two_non_empty_sides() -> None:
    for pick in (0.1, 0.5, 0.9):
        a, b = plan.halves([0, 1, 2], pick)
        assert len(a) == 1 and len(b) == 2 and sorted(a + b) == [0, 1, 2]
        cut = plan.cut_between(a, b)
        assert len(cut) == 2
        assert plan.sees(a[0], [0, 1, 2], cut) == a


@pytest.mark.parametrize("n", [3, 4, 5, 7])
def test_majorities_ring_every_node_sees_a_majority_no_two_the_same(n: int) -> None:
    nodes = list(range(n))
    cut = plan.majorities_ring(nodes, 0.42)
    assert cut, "a ring that cuts nothing is not a partition"
    views = [frozenset(plan.sees(x, nodes, cut)) for x in nodes]
    assert all(len(v) > n // 2 for v in views)
    if n > 3:
        assert len(set(views)) == n
    else:  # three nodes: one cut link; the middle node still sees everyone
        assert len(cut) == 1 and sorted(len(v) for v in views) == [2, 2, 3]


def test_isolate_cuts_one_node_from_all_others() -> None:
    cut = plan.isolate(1, [0, 1, 2])
    assert plan.sees(1, [0, 1, 2], cut) == [1]
    assert plan.sees(0, [0, 1, 2], cut) == [0, 2]
