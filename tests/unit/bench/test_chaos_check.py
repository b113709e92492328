"""The checker's interval logic: lost writes, conservative split-brain spans,
no-primary gaps, and the safety verdict."""
from __future__ import annotations

from typing import List

from bench import chaos_check as check
from bench.chaos_check import Ack


def writes(node: str, times: List[float], latency: float = 0.01, key0: int = 0) -> List[Ack]:
    return [Ack(0, key0 + i, node, t, t + latency) for i, t in enumerate(times)]


def test_lost_acked_lists_missing_keys() -> None:
    acks = writes("a", [0.0, 0.1, 0.2])
    assert check.lost_acked(acks, {0, 2}) == [1]
    assert check.lost_acked(acks, {0, 1, 2, 99}) == []


def test_clean_failover_is_not_a_split_brain() -> None:
    # node a until 5 s, nothing for 8 s, then node b: spans do not overlap
    acks = writes("a", [i * 0.05 for i in range(100)]) + writes("b", [13 + i * 0.05 for i in range(50)], key0=100)
    spans = check.writable_spans(acks)
    assert [s.node for s in spans] == ["a", "b"]
    assert check.split_brain(spans) == []


def test_in_flight_write_acked_late_does_not_widen_a_span() -> None:
    # the old primary's last write was sent at 4.95 s but acknowledged only at 13.5 s
    # (e.g. a synchronous commit waiting); the new primary writes from 13 s on
    old = writes("a", [i * 0.05 for i in range(99)]) + [Ack(1, 500, "a", 4.95, 13.5)]
    new = writes("b", [13 + i * 0.05 for i in range(50)], key0=100)
    assert check.split_brain(check.writable_spans(old + new)) == []


def test_two_nodes_acknowledging_at_once_is_a_split_brain() -> None:
    a = writes("a", [i * 0.05 for i in range(200)])          # 0 .. 9.95 s
    b = writes("b", [6 + i * 0.05 for i in range(100)], key0=1000)  # 6 .. 10.95 s
    brains = check.split_brain(check.writable_spans(a + b))
    assert len(brains) == 1
    start, end, n1, n2 = brains[0]
    assert (n1, n2) == ("a", "b")
    assert abs(start - 6.01) < 1e-9 and abs(end - 9.95) < 1e-9
    assert abs(check.union_length((s, e) for s, e, _, _ in brains) - 3.94) < 1e-9


def test_runs_split_at_long_gaps_so_a_node_can_lead_twice() -> None:
    # a leads, then b, then a again after a switchover back: three separate spans
    a1 = writes("a", [i * 0.05 for i in range(20)])
    b = writes("b", [3 + i * 0.05 for i in range(20)], key0=100)
    a2 = writes("a", [6 + i * 0.05 for i in range(20)], key0=200)
    spans = check.writable_spans(a1 + b + a2, merge_gap=1.0)
    assert [s.node for s in spans] == ["a", "b", "a"]
    assert check.split_brain(spans) == []


def test_single_write_proves_no_span() -> None:
    assert check.writable_spans([Ack(0, 1, "a", 1.0, 1.2)]) == []


def test_union_length_merges_overlaps() -> None:
    assert check.union_length([(0, 2), (1, 3), (5, 6)]) == 4
    assert check.union_length([]) == 0


def test_longest_gap_inside_a_fault_window() -> None:
    times = [0.0, 0.1, 0.2, 5.0, 5.1, 20.0]
    # fault 0.15 .. 4: the writes stop at 0.2 and resume at 5.0
    assert abs(check.longest_gap(times, 0.15, 4.0, 30.0) - 4.8) < 1e-9
    # an outage already under way when the fault begins is counted from the fault on
    assert abs(check.longest_gap([0.0, 5.0], 1.0, 2.0, 30.0) - 4.0) < 1e-9
    # a longer window also holds the outage that begins at 5.1 and lasts past it
    assert abs(check.longest_gap(times, 0.15, 6.0, 30.0) - 14.9) < 1e-9
    # a window with steady writes
    assert abs(check.longest_gap(times, 4.9, 5.05, 30.0) - 0.1) < 1e-9
    # no acknowledgement after the window began: the gap runs to the end of the run
    assert check.longest_gap(times, 21.0, 25.0, 30.0) == 9.0
    # the gap may outlast the window
    assert abs(check.longest_gap(times, 5.2, 6.0, 30.0) - 14.8) < 1e-9


def test_summary_and_verdict() -> None:
    rows = [{"kind": "partition-primary", "held_s": 15.0, "no_primary_s": 12.0, "healed_s": 3.0},
            {"kind": "partition-primary", "held_s": 16.0, "no_primary_s": 14.0, "healed_s": 2.0},
            {"kind": "partition-primary", "held_s": 3.0, "no_primary_s": 3.0, "healed_s": 0.1},
            {"kind": "kill-etcd", "held_s": 4.0, "no_primary_s": 0.1, "healed_s": None}]
    acks = writes("a", [0.0, 1.0])
    report = check.summarize("strict", 10, rows, acks, [1], [(1.0, 2.5, "a", "b")], {"seed": 3})
    assert report["faults"] == 4 and report["acked"] == 2 and report["lost_acked"] == 1
    assert report["split_brain_s"] == 1.5 and report["max_no_primary_s"] == 14.0
    assert report["median_no_primary_after_primary_partition_s"] == 13.0
    assert report["unhealed"] == 1 and report["seed"] == 3
    failures = check.safety_failures(report)
    assert len(failures) == 3
    assert "lost in strict mode" in failures[0] and "split brain" in failures[1] and "not healed" in failures[2]
    clean = check.summarize("async", 10, rows[:2], acks, [1], [])
    assert check.safety_failures(clean) == []  # async loses are reported, not failed


def test_per_kind_table() -> None:
    rows = [{"kind": "stop-daemon", "no_primary_s": 5.0, "healed_s": 2.0, "lost_acked": 0},
            {"kind": "stop-daemon", "no_primary_s": 1.0, "healed_s": None, "lost_acked": 7},
            {"kind": "kill-etcd", "no_primary_s": 0.0, "healed_s": 0.1}]
    stats = check.per_kind(rows)
    assert [s["kind"] for s in stats] == ["kill-etcd", "stop-daemon"]
    stop = stats[1]
    assert (stop["n"], stop["no_primary_median_s"], stop["no_primary_max_s"]) == (2, 3.0, 5.0)
    assert (stop["healed_median_s"], stop["unhealed"], stop["lost_acked"]) == (2.0, 1, 7)
    table = check.markdown_table(stats).splitlines()
    assert len(table) == 4 and table[3] == "| stop-daemon | 2 | 3.0 / 5.0 | 2.0 / 2.0 | 1 | 7 |"
