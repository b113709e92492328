"""The chaos harness's checker (pure: works on the clients' records only).

Every acknowledged insert is an `Ack`: which client sent which key to which node,
when the client sent it and when the commit was acknowledged (one monotonic clock,
all clients live in the harness process).  The commit itself happened at some
unknown instant inside [send, ack].

Split brain, judged conservatively: a node's acknowledged writes are grouped into
runs (a write joins the run when it was sent less than `merge_gap` after the run's
latest acknowledgement), and a run proves the node writable only over
[earliest ack, latest send] - the part of the run where commits certainly happened
before and after.  Two runs of different nodes whose proven spans overlap are a
split brain over that overlap.  A legitimate hand-over (old primary demoted, new
one promoted) takes far longer than `merge_gap`, and in-flight uncertainty never
widens a span, so a normal failover is never reported.
"""
from __future__ import annotations

import bisect
import statistics
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple


@dataclass(frozen=True)
class Ack:
    client: int
    key: int
    node: str
    send: float
    ack: float


@dataclass(frozen=True)
class Span:
    node: str
    start: float  # earliest acknowledgement of the run
    end: float    # latest send of the run
    writes: int


def lost_acked(acks: Iterable[Ack], present: Set[int]) -> List[int]:
    """Keys acknowledged to a client but missing on the final primary."""
    return sorted(a.key for a in acks if a.key not in present)


def writable_spans(acks: Iterable[Ack], merge_gap: float = 1.0) -> List[Span]:
    """Per node, the spans over which it certainly accepted writes (see the module doc)."""
    by_node: Dict[str, List[Ack]] = {}
    for a in acks:
        by_node.setdefault(a.node, []).append(a)
    spans: List[Span] = []
    for node, writes in by_node.items():
        writes.sort(key=lambda a: (a.send, a.ack))
        group: List[Ack] = []
        last_ack = float("-inf")
        for w in writes:
            if group and w.send - last_ack > merge_gap:
                spans.extend(_span(node, group))
                group, last_ack = [], float("-inf")
            group.append(w)
            last_ack = max(last_ack, w.ack)
        spans.extend(_span(node, group))
    return sorted(spans, key=lambda s: (s.start, s.node))


def _span(node: str, group: Sequence[Ack]) -> List[Span]:
    if not group:
        return []
    start = min(a.ack for a in group)
    end = max(a.send for a in group)
    return [Span(node, start, end, len(group))] if end > start else []


def split_brain(spans: Sequence[Span]) -> List[Tuple[float, float, str, str]]:
    """(start, end, node, other node) for every overlap of two different nodes' spans."""
    out = []
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if a.node == b.node:
                continue
            start, end = max(a.start, b.start), min(a.end, b.end)
            if end > start:
                first, second = sorted((a.node, b.node))
                out.append((start, end, first, second))
    return sorted(out)


def union_length(intervals: Iterable[Tuple[float, float]]) -> float:
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total


def longest_gap(ack_times: Sequence[float], start: float, end: float, run_end: float) -> float:
    """The longest time without any acknowledged write that overlaps [start, end].

    `ack_times` is sorted.  The gap is counted from `start` at the earliest (an outage
    is not blamed on a fault before the fault began) and runs to the next
    acknowledgement, or to `run_end` when there was none afterwards."""
    i = bisect.bisect_right(ack_times, start)
    cur, best = start, 0.0
    while True:
        nxt = ack_times[i] if i < len(ack_times) else run_end
        best = max(best, nxt - cur)
        if i >= len(ack_times) or nxt >= end:
            return best
        cur, i = nxt, i + 1


def summarize(mode: str, ttl: float, rows: List[Dict[str, Any]], acks: Sequence[Ack], lost: Sequence[int],
              brains: Sequence[Tuple[float, float, str, str]], extra: Optional[Dict[str, Any]] = None
              ) -> Dict[str, Any]:
    """The JSON report: the headline figures, then one row per fault.  The median
    no-primary time after a primary partition counts the partitions held past ttl
    (shorter ones must not, and do not, cause a failover)."""
    no_primary = [float(r["no_primary_s"]) for r in rows]
    partitions = [float(r["no_primary_s"]) for r in rows
                  if r["kind"] == "partition-primary" and float(r["held_s"]) > ttl]
    report: Dict[str, Any] = {
        "mode": mode,
        "faults": len(rows),
        "acked": len(acks),
        "lost_acked": len(lost),
        "lost_keys": list(lost[:50]),
        "split_brain_s": round(union_length((s, e) for s, e, _, _ in brains), 3),
        "split_brain_intervals": [
            {"start": round(s, 3), "end": round(e, 3), "nodes": [a, b]} for s, e, a, b in brains],
        "max_no_primary_s": round(max(no_primary, default=0.0), 3),
        "median_no_primary_after_primary_partition_s": (
            round(statistics.median(partitions), 3) if partitions else None),
        "unhealed": sum(1 for r in rows if r.get("healed_s") is None),
        "rows": rows,
    }
    report.update(extra or {})
    return report


def per_kind(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per fault kind: count, median and max no-primary time, median and max time to
    heal (over the healed ones), unhealed count, lost acknowledged writes."""
    kinds: Dict[str, List[Dict[str, Any]]] = {}
    for r in rows:
        kinds.setdefault(str(r["kind"]), []).append(r)
    out = []
    for kind, rs in sorted(kinds.items()):
        gaps = [float(r["no_primary_s"]) for r in rs]
        heals = [float(r["healed_s"]) for r in rs if r.get("healed_s") is not None]
        out.append({
            "kind": kind, "n": len(rs),
            "no_primary_median_s": round(statistics.median(gaps), 1),
            "no_primary_max_s": round(max(gaps), 1),
            "healed_median_s": round(statistics.median(heals), 1) if heals else None,
            "healed_max_s": round(max(heals), 1) if heals else None,
            "unhealed": len(rs) - len(heals),
            "lost_acked": sum(int(r.get("lost_acked", 0)) for r in rs),
        })
    return out


def markdown_table(stats: Sequence[Dict[str, Any]]) -> str:
    head = "| kind | n | no primary, median / max (s) | healed in, median / max (s) | unhealed | lost acked |"
    lines = [head, "|---|---|---|---|---|---|"]
    for s in stats:
        healed = "-" if s["healed_median_s"] is None else f"{s['healed_median_s']} / {s['healed_max_s']}"
        lines.append(f"| {s['kind']} | {s['n']} | {s['no_primary_median_s']} / {s['no_primary_max_s']} | "
                     f"{healed} | {s['unhealed']} | {s['lost_acked']} |")
    return "\n".join(lines)


def safety_failures(report: Dict[str, Any]) -> List[str]:
    """Why the run fails its safety targets (empty: it passes).

    Lost acknowledged writes fail the synchronous modes (Patroni's synchronous_mode
    promises them too: only a standby known to hold every acknowledged commit is
    promoted); asynchronous runs report them against maximum_lag_on_failover."""
    out = []
    if report["mode"] in ("strict", "sync") and report["lost_acked"]:
        out.append(f"{report['lost_acked']} acknowledged writes lost in {report['mode']} mode")
    if report["split_brain_intervals"]:
        out.append(f"split brain: {len(report['split_brain_intervals'])} intervals, "
                   f"{report['split_brain_s']} s in total")
    if report["unhealed"]:
        out.append(f"{report['unhealed']} faults not healed within the bound")
    return out
