"""Scripted scenarios: a sequence of observations per node, with the decisions
rendered as a transcript and compared with the expected (golden) text."""
from __future__ import annotations

from typing import Any, Dict, List

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import Divergence
from qhb_patroni.core.observation import Decision, Memory, Observation
from qhb_patroni.messages import render

from . import builders as b


def line(node: str, d: Decision) -> str:
    acts = ", ".join(_short(a) for a in d.actions)
    return f"{node}: [{acts}] {render(d.reason)}"


def _short(a: A.Action) -> str:
    name = type(a).__name__
    if isinstance(a, (A.Follow, A.Demote)):
        who = a.leader.name if a.leader else "nobody"
        return f"{name}({a.mode}, {who})" if isinstance(a, A.Demote) else f"{name}({who})"
    if isinstance(a, (A.Rewind, A.ProbeDivergence)):
        return f"{name}({a.leader.name})"
    if isinstance(a, A.ProbePeers):
        return f"{name}({','.join(a.names)})"
    return name


class Node:
    def __init__(self, name: str, **settings: Any) -> None:
        self.name = name
        self.settings = b.settings(name, **settings)
        self.memory = Memory(started=True)
        self.log: List[str] = []

    def step(self, obs: Observation) -> Decision:
        d = decide(obs, self.memory, self.settings)
        self.memory = d.memory
        self.log.append(line(self.name, d))
        return d


def test_leader_dies_replicas_race_one_promotes() -> None:
    n0, n2 = Node("n0"), Node("n2")
    unlocked = b.cluster(names=("n0", "n2"), last_lsn=100)  # n1's key expired, its member key too
    # n0 is ahead (100) of n2 (90); both first ask their peers.
    n0.step(b.make_obs(unlocked, b.replica(100, following=b.hostport("n1")), me="n0"))
    n2.step(b.make_obs(unlocked, b.replica(90, following=b.hostport("n1")), me="n2"))
    n0.step(b.make_obs(unlocked, b.replica(100, following=b.hostport("n1")), me="n0",
                       peers={"n2": b.peer("n2", 90)}))
    n2.step(b.make_obs(unlocked, b.replica(90, following=b.hostport("n1")), me="n2",
                       peers={"n0": b.peer("n0", 100)}))
    # n0 won the key; its promote runs, then completes.
    locked = b.cluster(leader="n0", names=("n0", "n2"))
    n0.step(b.make_obs(locked, b.replica(100), me="n0", t=b.task("Promote", "promote")))
    n2.step(b.make_obs(locked, b.replica(90), me="n2"))
    n0.step(b.make_obs(locked, b.primary(101), me="n0", t=b.task("Promote", done=True, ok=True)))
    n2.step(b.make_obs(locked, b.replica(101, following=b.hostport("n0"), slot="n2"), me="n2"))
    assert n0.log + n2.log == [
        "n0: [ProbePeers(n2)] asking the other members before the leader race",
        "n0: [AcquireLock, Promote] promoted self to leader by acquiring session lock",
        "n0: [RenewLock] updated leader lock during promote",
        "n0: [RenewLock, ManageSlots, WriteHistory] no action. I am (n0), the leader with the lock",
        "n2: [ProbePeers(n0)] asking the other members before the leader race",
        "n2: [Follow(nobody)] following a different leader because i am not the healthiest node",
        "n2: [Follow(n0)] no action. I am (n2), a secondary, and following a leader (n0)",
        "n2: [] no action. I am (n2), a secondary, and following a leader (n0)",
    ]


def test_equal_replicas_race_and_the_loser_follows() -> None:
    n1 = Node("n1")
    unlocked = b.cluster(names=("n1", "n2"))
    n1.step(b.make_obs(unlocked, b.replica(100), me="n1", peers={"n2": b.peer("n2", 100)}))
    # n2 created the key first: the shell reports the failed AcquireLock and re-reads.
    locked = b.cluster(leader="n2", names=("n1", "n2"))
    n1.step(b.make_obs(locked, b.replica(100), me="n1", failed=A.AcquireLock()))
    assert n1.log == [
        "n1: [AcquireLock, Promote] promoted self to leader by acquiring session lock",
        "n1: [Follow(n2)] following new leader after trying and failing to obtain lock",
    ]


def test_old_primary_returns_and_is_rewound_before_streaming() -> None:
    n1 = Node("n1", use_pg_rewind=True)
    c = b.cluster(leader="n0")
    n1.step(b.make_obs(c, b.primary(120), me="n1"))  # came back writable: demote at once
    n1.step(b.make_obs(c, b.stopped(), me="n1"))  # the demotion stopped it
    n1.step(b.make_obs(c, b.stopped(), me="n1", divergence=Divergence("n0", True)))
    n1.step(b.make_obs(c, b.stopped(), me="n1", t=b.task("Rewind", "running pg_rewind from n0")))
    n1.step(b.make_obs(c, b.replica(130, following=b.hostport("n0"), slot="n1"), me="n1",
                       t=b.task("Rewind", done=True, ok=True)))
    assert n1.log == [
        "n1: [Demote(immediate-nolock, n0)] demoting self because I do not have the lock and I was a leader",
        "n1: [ProbeDivergence(n0)] checking timeline divergence against n0",
        "n1: [Rewind(n0)] running pg_rewind from n0",
        "n1: [] running pg_rewind from n0 in progress",
        "n1: [] no action. I am (n1), a secondary, and following a leader (n0)",
    ]


def test_bootstrap_race_of_three_empty_nodes() -> None:
    nodes: Dict[str, Node] = {n: Node(n) for n in ("n0", "n1", "n2")}
    fresh = b.cluster(initialize=None, names=())
    nodes["n0"].step(b.make_obs(fresh, b.empty(), me="n0"))
    taken = b.cluster(initialize="", names=())
    nodes["n1"].step(b.make_obs(taken, b.empty(), me="n1", failed=A.WriteInitialize("", create=True)))
    nodes["n2"].step(b.make_obs(taken, b.empty(), me="n2"))
    nodes["n0"].step(b.make_obs(taken, b.primary(10), me="n0", t=b.task("Bootstrap", done=True, ok=True)))
    led = b.cluster(leader="n0", names=("n0",))
    nodes["n1"].step(b.make_obs(led, b.empty(), me="n1"))
    nodes["n0"].step(b.make_obs(led, b.primary(10), me="n0"))
    transcript = [entry for n in ("n0", "n1", "n2") for entry in nodes[n].log]
    assert transcript == [
        "n0: [WriteInitialize, Bootstrap] trying to bootstrap a new cluster",
        "n0: [WriteInitialize, WriteConfig, TakeLock] initialized a new cluster",
        "n0: [RenewLock] no action. I am (n0), the leader with the lock",
        "n1: [] failed to acquire initialize lock",
        "n1: [Clone] trying to bootstrap from leader 'n0'",
        "n2: [] waiting for leader to bootstrap",
    ]


def test_partitioned_primary_steps_down_and_rejoins() -> None:
    n0 = Node("n0", use_pg_rewind=True)
    n0.step(b.make_obs(None, b.primary(100)))
    c = b.cluster(leader="n1")
    n0.step(b.make_obs(c, b.replica(100, following=None)))
    n0.step(b.make_obs(c, b.replica(100, following=None), divergence=Divergence("n1", False)))
    assert n0.log == [
        "n0: [Demote(offline, nobody)] demoting self because DCS is not accessible and I was a leader",
        "n0: [ProbeDivergence(n1)] checking timeline divergence against n1",
        "n0: [Follow(n1)] no action. I am (n0), a secondary, and following a leader (n1)",
    ]
