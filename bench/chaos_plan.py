"""The chaos harness's fault schedule (pure: no I/O, no clock, only the seed).

`make_schedule(seed, count, ...)` gives the same list of faults for the same
arguments on every machine, so a failing run is reproduced by its seed.  A fault
names its kind and how long it is held; which node it hits is resolved when it
runs (the primary of that moment, a replica...) from the fault's own random
draw `pick`, so the choice is reproducible too given the same cluster state.

The network cuts are sets of unordered node pairs that cannot talk; the harness
applies them symmetrically (both directions dropped).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations
from typing import FrozenSet, List, Sequence, Tuple, TypeVar

T = TypeVar("T")

PARTITION_PRIMARY = "partition-primary"      # primary cut from the other nodes and the clients
PARTITION_PRIMARY_DCS = "partition-primary-dcs"  # primary cut from the DCS only (replicas, clients still reach it)
PARTITION_HALVES = "partition-halves"        # random halves of the nodes
PARTITION_RING = "partition-ring"            # majorities ring (every node sees a majority, no two the same one)
ISOLATE_REPLICA = "isolate-replica"          # one replica cut from everything
KILL_DAEMON = "kill-daemon"                  # kill -9 the daemon, restart it after the hold
KILL_POSTMASTER = "kill-postmaster"          # kill -9 the postmaster (the daemon restarts it)
KILL_BOTH = "kill-both"                      # kill -9 daemon and postmaster, restart the daemon after the hold
STOP_DAEMON = "stop-daemon"                  # SIGSTOP the primary's daemon for longer than ttl, then SIGCONT
STOP_POSTMASTER = "stop-postmaster"          # SIGSTOP the primary's postmaster, then SIGCONT
KILL_ETCD = "kill-etcd"                      # kill -9 one etcd member, restart it after the hold
LOSE_QUORUM = "lose-quorum"                  # kill -9 a majority of the etcd members, restart them
NETEM = "netem"                              # delay and loss on one node's link (tc)
SWITCHOVER = "switchover"                    # patronictl switchover --force to a random replica

KINDS: Tuple[str, ...] = (
    PARTITION_PRIMARY, PARTITION_PRIMARY_DCS, PARTITION_HALVES, PARTITION_RING, ISOLATE_REPLICA,
    KILL_DAEMON, KILL_POSTMASTER, KILL_BOTH, STOP_DAEMON, STOP_POSTMASTER, KILL_ETCD, LOSE_QUORUM,
    NETEM, SWITCHOVER,
)
# Faults that hold a network cut or a process stall during which a forced switchover
# may additionally be requested half-way ("switchovers in the middle of all this").
MID_SWITCHOVER_KINDS = frozenset({PARTITION_HALVES, PARTITION_RING, ISOLATE_REPLICA, KILL_ETCD, NETEM,
                                  KILL_POSTMASTER})

# Faults that cost the primary its leader key when held past ttl: two thirds of them are
# (a failover must follow), the others are short blips (no failover may follow).
PAST_TTL_KINDS = frozenset({PARTITION_PRIMARY, PARTITION_PRIMARY_DCS, PARTITION_HALVES, LOSE_QUORUM})

Pair = FrozenSet[int]


@dataclass(frozen=True)
class Fault:
    index: int
    kind: str
    hold_s: float          # how long the fault is held before it is healed
    pick: float            # the fault's own random draw in [0, 1) for choosing its target
    mid_switchover: bool   # also run a forced switchover half-way through the hold


def make_schedule(seed: int, count: int, ttl: float, hold: Tuple[float, float] = (2.0, 8.0),
                  kinds: Sequence[str] = KINDS) -> List[Fault]:
    """`count` faults drawn from `kinds` with a generator seeded by `seed` alone.

    Every kind appears before any repeats (shuffled rounds), so a short run still covers
    all of them.  A stalled daemon is held past ttl (that is the point of the fault), and
    so are two thirds of the PAST_TTL_KINDS."""
    if count < 0:
        raise ValueError("count must be >= 0")
    if not kinds:
        raise ValueError("no fault kinds to draw from")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds: {', '.join(unknown)}")
    lo, hi = hold
    if not 0 <= lo <= hi:
        raise ValueError(f"bad hold range {hold}")
    rng = random.Random(seed)
    order: List[str] = []
    while len(order) < count:
        batch = list(kinds)
        rng.shuffle(batch)
        order.extend(batch)
    faults = []
    for i, kind in enumerate(order[:count]):
        held = round(rng.uniform(lo, hi), 2)
        if kind == STOP_DAEMON:
            held = round(ttl + rng.uniform(2.0, 2.0 + hi), 2)
        elif kind in PAST_TTL_KINDS and rng.random() < 2 / 3:
            held = round(ttl + rng.uniform(lo, hi), 2)
        elif kind == SWITCHOVER:
            held = 0.0
        mid = kind in MID_SWITCHOVER_KINDS and rng.random() < 0.3
        faults.append(Fault(index=i, kind=kind, hold_s=held, pick=rng.random(), mid_switchover=mid))
    return faults


def choose(items: Sequence[T], pick: float) -> T:
    """The item a draw in [0, 1) selects (stable for a sorted `items`)."""
    if not items:
        raise ValueError("nothing to choose from")
    return items[min(int(pick * len(items)), len(items) - 1)]


def isolate(node: int, others: Sequence[int]) -> List[Pair]:
    """Cut `node` from every other one."""
    return [frozenset((node, o)) for o in others if o != node]


def halves(nodes: Sequence[int], pick: float) -> Tuple[List[int], List[int]]:
    """Split the nodes into a smaller and a larger half (both non-empty for 2+ nodes)."""
    rng = random.Random(pick)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    cut = len(shuffled) // 2
    return sorted(shuffled[:cut]), sorted(shuffled[cut:])


def cut_between(a: Sequence[int], b: Sequence[int]) -> List[Pair]:
    return [frozenset((x, y)) for x in a for y in b]


def majorities_ring(nodes: Sequence[int], pick: float) -> List[Pair]:
    """Pairs to cut so that every node sees a majority but no two nodes see the same one.

    The nodes are placed on a ring in a random order and each keeps links only to the
    nearest ring neighbours on both sides that make up its own majority.  Three nodes
    are the degenerate case: with symmetric cuts the only such topology is one
    cut link (the two ends see a majority of two each, the middle node sees all)."""
    n = len(nodes)
    if n < 3:
        raise ValueError("a majorities ring needs 3 or more nodes")
    rng = random.Random(pick)
    ring = list(nodes)
    rng.shuffle(ring)
    if n == 3:
        return [frozenset((ring[0], ring[2]))]
    reach = (n // 2 + 1) // 2  # each side: a node and its reach on both sides make a majority
    keep = set()
    for i, x in enumerate(ring):
        for step in range(1, reach + 1):
            keep.add(frozenset((x, ring[(i + step) % n])))
    return [frozenset(p) for p in combinations(ring, 2) if frozenset(p) not in keep]


def sees(node: int, nodes: Sequence[int], cut: Sequence[Pair]) -> List[int]:
    """The nodes (itself included) that `node` can reach directly under `cut`."""
    blocked = set(cut)
    return [o for o in nodes if o == node or frozenset((node, o)) not in blocked]
