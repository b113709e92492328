"""A deterministic multi-node simulation: N real runtimes (qhb_patroni.runtime's
HALoop and Executor, see node.py) + the memory DCS + fake databases + a manual
clock, with seeded crashes, restarts, partitions, DCS outages, lost DCS answers
and switchover requests.

This module is the world around the nodes: the network and its faults, the fake
servers' replication and acknowledgements, the peers' answers, and the invariants.
Each node's HALoop runs a cycle every `loop_wait` seconds, or earlier when the
leader key changes, its background task ends or the runtime asks to look again.
Long actions take simulated time.  After every node's cycle and every simulated
second the safety invariants are checked, and every executed decision must land
the node in the role the role table names; `World.trace` keeps the recent
history for the failure message.
Replication is instantaneous for a streaming replica, so the simulation shows who may
take over and when the primary acknowledges commits, not how far a standby lags.
"""
from __future__ import annotations

import collections
import itertools
import json
import random
from dataclasses import replace
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Tuple

from qhb_patroni.core import actions as A
from qhb_patroni.core import roles
from qhb_patroni.core.decide import decide
from qhb_patroni.core.local import Divergence, ReplicationRow, ReplicationState
from qhb_patroni.core.model import Member
from qhb_patroni.core.observation import Decision, Memory, Observation, PeerStatus, Settings
from qhb_patroni.dcs.base import DCSError, Snapshot, Store
from qhb_patroni.dcs.memory import ManualClock, MemoryServer
from qhb_patroni.messages import render
from qhb_patroni.runtime.failsafe import failsafe_url

from .fencing import answer_failsafe
from .node import BASE, SimNode

WAL_PER_SECOND = 10


class InvariantViolation(AssertionError):
    pass


class LossyStore:
    """Wraps a Store: now and then a write of an ephemeral key (leader, member)
    is applied but its answer is lost (the caller sees DCSError although the
    change happened).  Not applied to /initialize: a lost answer to the
    bootstrap race leaves `""` behind and every node waits for a bootstrap
    that never runs - a known Patroni limitation as well."""

    def __init__(self, inner: Store, rng: random.Random, rate: float) -> None:
        self.inner, self.rng, self.rate = inner, rng, rate

    def set_ttl(self, ttl: float) -> None:
        self.inner.set_ttl(ttl)

    def load(self) -> Snapshot:
        return self.inner.load()

    def put(self, key: str, value: str, *, version: Optional[int] = None, create: bool = False,
            ephemeral: bool = False) -> Optional[int]:
        result = self.inner.put(key, value, version=version, create=create, ephemeral=ephemeral)
        if ephemeral and self.rng.random() < self.rate:
            raise DCSError("memory sim: answer lost")
        return result

    def delete(self, key: str, *, version: Optional[int] = None) -> bool:
        return self.inner.delete(key, version=version)

    def delete_tree(self) -> None:
        self.inner.delete_tree()

    def keepalive(self) -> None:
        self.inner.keepalive()

    def watch(self, key: str, version: Optional[int], index: Optional[int], timeout: float) -> bool:
        return self.inner.watch(key, version, index, timeout)

    def close(self) -> None:
        self.inner.close()


class World:
    def __init__(
        self,
        seed: int,
        n: int = 3,
        decide_fn: Callable[[Observation, Memory, Settings], Decision] = decide,
        rewind_possible: bool = True,
        lossy: float = 0.0,
        lease_guard: bool = True,
        stall_rate: float = 0.0,
        control_data: bool = False,
        trip_rate: float = 0.0,
        **settings_kw: object,
    ) -> None:
        """`control_data`: model control file states and shutdowns that take time
        (fakedb.py); `trip_rate`: the chance that a crash recovery fails in the shell
        before it runs (never twice in a row)."""
        self.decide = decide_fn
        self.lease_guard = lease_guard
        self.stall_rate = stall_rate  # per simulated second: a daemon stops cycling (SIGSTOP) for > ttl
        self.rng = random.Random(seed)
        self.sim_rng = random.Random(seed * 104729)  # draws of the control data model only
        self.trip_rate = trip_rate
        self.trips = 0
        self.recoveries_while_alive = 0  # CrashRecovery started while a shutdown was under way
        self.unanswering_looks = 0  # decisions on a shutdown under way while another node led
        self.clock = ManualClock(1000.0)
        self.server = MemoryServer(clock=self.clock, name="sim")
        self.observer = self.server.client("observer", base=BASE)
        kw: Dict[str, object] = dict(scope="sim", ttl=30, loop_wait=10, retry_timeout=10, use_pg_rewind=True,
                                     bootstrap_dcs={"ttl": 30, "loop_wait": 10})
        kw.update(settings_kw)
        self.nodes: Dict[str, SimNode] = {}
        for i in range(n):
            name = f"n{i}"
            node = SimNode(self, name, Settings(name=name, **kw))  # type: ignore[arg-type]
            node.db.rewind_possible = rewind_possible
            node.db.control_data = control_data
            node.next_cycle += self.rng.randint(0, 9)  # nodes are not in lock-step
            if lossy:
                node.dcs.store = LossyStore(node.dcs.store, random.Random(seed * 1000 + i), lossy)
            self.nodes[name] = node
        self.trace: Deque[str] = collections.deque(maxlen=120)
        self._sysids = itertools.count(7000000000000000001)
        self.partitioned: Dict[str, float] = {}
        self.down_until: Dict[str, float] = {}
        self.outage_until: Optional[float] = None
        self.primaries_seen = 0
        self.promotions = 0
        self.rewinds = 0
        self.switchovers = 0
        self.graceful = 0
        # The last position acknowledged to a client (history, lsn); checked only when
        # `check_acked` (synchronous mode promises that no acknowledged commit is lost).
        self.acked: Optional[Tuple[Tuple[Tuple[int, int], ...], int]] = None
        self.check_acked = bool(settings_kw.get("synchronous_mode"))
        self.acked_checks = 0
        self.landings = 0  # executed decisions whose target role was checked
        self.events_landed: Dict[str, int] = collections.Counter()
        self.exits = 0  # planned stops completed by the runtime
        self.stalls = 0
        self.stalled_primaries = 0  # stalls of a node whose database was writable
        self.watchdog_resets = 0
        self.resets_of_running_daemons = 0  # watchdog resets of a node whose daemon was not stalled
        # POST /failsafe rounds per caller: (when, target -> answered 200); see check_invariants
        self.failsafe_rounds: Dict[str, List[Tuple[float, Dict[str, bool]]]] = collections.defaultdict(list)
        self.failsafe_kept = 0  # invariant checks at which a writable node held only by failsafe
        self.failsafe_confirmed: Dict[str, float] = {}  # node -> its last confirmed FailsafeActive
        self.failsafe_confirmations = 0

    # ---- helpers used by nodes ---------------------------------------------------------
    def new_sysid(self) -> str:
        return str(next(self._sysids))

    def shutdown_seconds(self) -> float:
        """How long a fast shutdown takes (a large shutdown checkpoint can take a while)."""
        return self.sim_rng.uniform(1, 15)

    def server_at(self, name: Optional[str]) -> Optional[SimNode]:
        """The node a connection points at (a subclass may add servers outside the cluster)."""
        return self.nodes.get(name) if name else None

    def log(self, node: str, role: str, decision: Decision) -> None:
        actions = decision.actions
        names = ",".join(type(a).__name__ for a in actions)
        self.trace.append(f"{self.clock():8.1f} {node} ({role}): [{names}] {render(decision.reason)}")
        self.promotions += sum(isinstance(a, A.Promote) for a in actions)
        self.rewinds += sum(isinstance(a, A.Rewind) for a in actions)
        self.graceful += sum(isinstance(a, A.Demote) and a.mode == "graceful" for a in actions)
        if any(isinstance(a, A.FailsafeActive) for a in actions):
            self._confirm_failsafe(node)

    def leader_key(self) -> Optional[Tuple[str, int]]:
        try:
            node = self.observer.load().nodes.get("leader")
        except DCSError:
            return None
        return (node.value, node.version) if node is not None else None

    def probe_peers(self, names: Tuple[str, ...]) -> Dict[str, Optional[PeerStatus]]:
        out: Dict[str, Optional[PeerStatus]] = {}
        for name in names:
            node = self.nodes.get(name)
            if node is None or not node.responsive:
                out[name] = None
                continue
            db = node.db
            out[name] = PeerStatus(name=name, role="master" if db.writable else "replica",
                                   state=db.state, in_recovery=not db.writable, wal_position=db.lsn,
                                   timeline=db.timeline)
        return out

    def post_json(self, caller: str, url: str, doc: Mapping[str, Any],
                  headers: Optional[Mapping[str, str]]) -> Optional[int]:
        """POST from `caller`'s daemon to the node whose REST API is at `url`:
        no answer across a partition (either end) or from a daemon that is
        down or stalled; else what that node's api/failsafe.py answers."""
        target = next((n for n in self.nodes.values() if failsafe_url(n.api_url) == url), None)
        code: Optional[int] = None
        if target is not None and target.responsive and not ({caller, target.name} & set(self.partitioned)):
            code = answer_failsafe(target, doc, headers)
        now = self.clock()
        rounds = self.failsafe_rounds[caller]
        rounds[:] = [r for r in rounds if r[0] > now - 3 * self.nodes[caller].settings.ttl]
        if not rounds or rounds[-1][0] != now:
            rounds.append((now, {}))
        rounds[-1][1][target.name if target is not None else url] = code == 200
        return code

    def stored_failsafe(self) -> object:
        """The /failsafe key as the DCS stores it (read past any outage: the world's view)."""
        server = self.server
        with server._cond:
            entry = server._data.get(f"{BASE}/failsafe")
        try:
            return json.loads(entry.value) if entry is not None else None
        except ValueError:
            return None

    def _confirm_failsafe(self, name: str) -> None:
        """`name` decided FailsafeActive (it stays primary without the DCS): it must be
        listed in /failsafe, and every other member listed there must have accepted its
        POST /failsafe at this instant (none other listed: nobody else may race)."""
        now, listed = self.clock(), self.stored_failsafe()
        if not isinstance(listed, dict) or name not in listed:
            self.fail(f"{name} stays primary by failsafe but /failsafe does not list it: {listed}")
        rounds = [answers for at, answers in self.failsafe_rounds[name] if at == now]
        answers = rounds[0] if rounds else {}
        missing = sorted(m for m in listed if m != name and not answers.get(m))
        if missing:
            self.fail(f"{name} stays primary by failsafe although {missing} did not accept its POST /failsafe")
        self.failsafe_confirmed[name] = now
        self.failsafe_confirmations += 1

    def failsafe_holds(self, node: SimNode, now: float) -> bool:
        """`node`'s last confirmed failsafe (see _confirm_failsafe) is less than ttl old: the
        members that accepted stay out of the race for ttl from then."""
        at = self.failsafe_confirmed.get(node.name)
        return at is not None and now < at + node.settings.ttl

    def streaming_from(self, primary: SimNode) -> List[SimNode]:
        """Replicas streaming from `primary` right now (replication is instantaneous)."""
        return [n for n in self.nodes.values()
                if n is not primary and n.up and n.db.running and n.db.in_recovery
                and n.db.following == primary.name and primary.db.running and n.db.on_history_of(primary.db)]

    def sync_state(self, primary: SimNode, name: str) -> str:
        """pg_stat_replication.sync_state as the server computes it: the first `count`
        streaming standbys in the order synchronous_standby_names lists them."""
        count, names = primary.db.waits_for()
        streaming = {n.name for n in self.streaming_from(primary)}
        if "*" in names:
            ordered = sorted(streaming)
        else:
            ordered = [n for n in names if n in streaming]
        if name in ordered[:count]:
            return "sync"
        return "potential" if name in ordered else "async"

    def probe_replication(self, me: SimNode, confirm: Tuple[str, ...]) -> ReplicationState:
        rows = tuple(
            ReplicationRow(name=n.name, state="streaming", sync_state=self.sync_state(me, n.name),
                           write_lsn=n.db.lsn, flush_lsn=n.db.lsn, replay_lsn=n.db.lsn)
            for n in sorted(self.streaming_from(me), key=lambda n: n.name)
        )
        return ReplicationState(rows=rows, standby_names=me.db.sync_names, lsn=me.db.lsn,
                                confirm_lsn=me.db.lsn if confirm else None)

    def _acknowledge(self) -> None:
        """What the writable primary has acknowledged to its clients so far: everything it
        wrote, or (synchronous_standby_names set) only what its synchronous standbys have."""
        for node in self.nodes.values():
            db = node.db
            if not db.writable:
                continue
            count, _ = db.waits_for()
            if count == 0:
                self.acked = (db.history, db.lsn)
                continue
            sync = [n for n in self.streaming_from(node) if self.sync_state(node, n.name) == "sync"]
            if len(sync) >= count:
                self.acked = (db.history, min(n.db.lsn for n in sync))
            # else: commits wait (the primary's clients see no acknowledgement)

    def probe_divergence(self, me: SimNode, leader: Member) -> Divergence:
        node = self.nodes.get(leader.name)
        if node is None or not node.up or not node.db.writable or not me.db.has_data:
            return Divergence(leader.name, None, "leader not reachable")
        return Divergence(leader.name, not me.db.on_history_of(node.db))

    # ---- the world turning ------------------------------------------------------------------
    def step(self, faults: bool) -> None:
        self.clock.advance(1.0)
        now = self.clock()
        if faults:
            self._inject_faults(now)
        self._heal(now, force=not faults)
        for node in self.nodes.values():
            node.db.tick(now)  # shutdowns under way end, whether the daemon runs or not
        self._replicate()
        self._acknowledge()
        for node in self.nodes.values():
            if node.responsive:
                node.tick()
                if self.lease_guard:  # the runtime's lease guard, on the simulated clock
                    node.loop.guard.poll()
        for node in self.nodes.values():
            dev = node.watchdog_device
            if node.up and dev is not None and dev.expired(now):  # the watchdog resets the machine
                self.watchdog_resets += 1
                self.resets_of_running_daemons += node.stalled_until is None
                node.crash()
                self.trace.append(f"{now:8.1f} {node.name}: watchdog fired, machine reset")
                self.down_until[node.name] = now + self.rng.uniform(20, 60)
        leader = self.leader_key()
        for node in self.nodes.values():
            if not node.responsive:
                continue
            watching = node.name not in self.partitioned and self.outage_until is None
            if watching and leader != node.seen_leader and not node.holds_lease(now):
                node.wake = True
            if node.wake or now >= node.next_cycle:
                node.cycle()
                self.check_landing(node)
                self.check_invariants()
        self.check_invariants()

    def _replicate(self) -> None:
        for node in self.nodes.values():
            db = node.db
            if db.writable:
                db.lsn += WAL_PER_SECOND
        for node in self.nodes.values():
            db = node.db
            up = self.nodes.get(db.following or "")
            if db.running and db.in_recovery and up is not None and up.up and up.db.running:
                if db.on_history_of(up.db) and up.db.lsn >= db.lsn:
                    db.history, db.lsn = up.db.history, up.db.lsn

    def _inject_faults(self, now: float) -> None:
        rng = self.rng
        names = sorted(self.nodes)
        roll = rng.random()
        if roll < 0.008:
            victim = self.nodes[rng.choice(names)]
            if victim.up:
                victim.crash()
                self.down_until[victim.name] = now + rng.uniform(5, 90)
        elif roll < 0.011:
            victim = self.nodes[rng.choice(names)]
            if victim.up:
                victim.shutdown()
                self.down_until[victim.name] = now + rng.uniform(1, 30)
        elif roll < 0.020:
            name = rng.choice(names)
            if name not in self.partitioned:
                self.server.partition(name)
                self.partitioned[name] = now + rng.uniform(5, 80)
        elif roll < 0.0215 and self.outage_until is None:
            self.server.set_down(True)
            self.outage_until = now + rng.uniform(5, 45)
        elif roll < 0.025:
            self._request_switchover(rng.choice(names))
        elif roll < 0.025 + self.stall_rate:
            victim = self.nodes[rng.choice(names)]
            if victim.responsive:
                ttl = victim.settings.ttl
                victim.stalled_until = now + rng.uniform(ttl + 1, 2.5 * ttl)
                self.stalls += 1
                self.stalled_primaries += victim.db.writable
                self.trace.append(f"{now:8.1f} {victim.name}: daemon stalled until {victim.stalled_until:.1f} "
                                  f"(writable={victim.db.writable})")

    def _request_switchover(self, candidate: str) -> None:
        """What POST /switchover does: write the /failover intent."""
        key = self.leader_key()
        if key is None or key[0] == candidate:
            return
        try:
            self.observer.put("failover", json.dumps({"leader": key[0], "member": candidate}))
            self.switchovers += 1
        except DCSError:
            pass

    def _heal(self, now: float, force: bool) -> None:
        for node in self.nodes.values():
            if node.stalled_until is not None and (force or now >= node.stalled_until):
                node.stalled_until = None  # SIGCONT: its overdue cycle runs at once
        for name, until in list(self.partitioned.items()):
            if force or now >= until:
                self.server.heal(name)
                del self.partitioned[name]
        for name, until in list(self.down_until.items()):
            if self.nodes[name].stalled_until is not None:
                continue  # a stopped process that was told to stop acts once it runs again
            if force or now >= until:
                self.nodes[name].restart()
                del self.down_until[name]
        if self.outage_until is not None and (force or now >= self.outage_until):
            self.server.set_down(False)
            self.outage_until = None

    # ---- invariants -----------------------------------------------------------------------------
    def check_landing(self, node: SimNode) -> None:
        """The node's executed decision landed it in the role the role table names."""
        decision, result = node.last_decision, node.loop.last_result
        if decision is None or result is None or result.failed is not None or node.fatal is not None:
            return  # it only probed, or an action failed (the next cycle decides again)
        want = roles.target_role(roles.transition(decision.role, decision.event), decision.role)
        got = roles.current_role(Observation(now=self.clock(), cluster=None, local=node.db.observe(),
                                             task=node.tasks.peek()))
        if got != want:
            self.fail(f"{node.name}: {decision.event} from {decision.role} should land in {want}, it is {got}")
        self.landings += 1
        self.events_landed[str(decision.event)] += 1

    def check_invariants(self) -> None:
        now = self.clock()
        writable = [n for n in self.nodes.values() if n.db.writable]
        if writable:
            self.primaries_seen += 1
        leased = [n.name for n in writable if n.holds_lease(now)]
        if len(leased) > 1:
            self.fail(f"two writable primaries with a valid lease: {leased}")
        for n in writable:
            if n.holds_lease(now) or n.fresh_bootstrap:
                continue
            if not self.failsafe_holds(n, now):
                self.fail(f"{n.name} is writable without a lock write in the last ttl "
                          f"(last write {n.lock_written_at}) nor a failsafe confirmation")
            self.failsafe_kept += 1
        if len(writable) > 1:
            self.fail(f"two writable nodes at the same instant: {[n.name for n in writable]}")
        for n in self.nodes.values():
            if n.fatal is not None:
                self.fail(f"{n.name} exited: {n.fatal}")
        if self.check_acked and self.acked is not None:
            history, lsn = self.acked
            for n in writable:
                self.acked_checks += 1
                if not n.db.contains(history, lsn):
                    self.fail(f"{n.name} became primary without the acknowledged position {lsn} of "
                              f"timeline uid {history[-1][0]} (it has {n.db.history}, lsn {n.db.lsn})")

    def fail(self, message: str) -> None:
        raise InvariantViolation(f"t={self.clock()}: {message}\n" + "\n".join(self.trace) + "\n" + self.describe())

    def describe(self) -> str:
        rows = []
        for n in self.nodes.values():
            db = n.db
            rows.append(
                f"{n.name}: up={n.up} data={db.has_data} running={db.running} writable={db.writable} "
                f"following={db.following} tl={db.history[-1][0] if db.history else None} lsn={db.lsn} "
                f"lease={n.lock_written_at} stalled_until={n.stalled_until} "
                f"task={n.tasks.task.kind if n.tasks.task else None} mem={n.memory}"
            )
        return "\n".join(rows) + f"\nleader key: {self.leader_key()}"

    def run(self, fault_seconds: int, quiet_seconds: int) -> None:
        for _ in range(fault_seconds):
            self.step(faults=True)
        for _ in range(quiet_seconds):
            self.step(faults=False)

    def converged(self) -> List[str]:
        """Problems with the final state (empty = exactly one primary holding the
        lock, every other node a caught-up replica streaming from it)."""
        problems = []
        writable = [n for n in self.nodes.values() if n.db.writable]
        if len(writable) != 1:
            return [f"expected one primary, got {[n.name for n in writable]}"]
        lead = writable[0]
        key = self.leader_key()
        if key is None or key[0] != lead.name:
            problems.append(f"leader key {key} does not name the primary {lead.name}")
        for n in self.nodes.values():
            if n is lead:
                continue
            db = n.db
            if not (db.running and db.in_recovery and db.following == lead.name):
                problems.append(f"{n.name} is not a replica of {lead.name} (following={db.following}, "
                                f"running={db.running})")
            elif not db.on_history_of(lead.db) or db.lsn < lead.db.lsn - WAL_PER_SECOND:
                problems.append(f"{n.name} does not stream from {lead.name} (lsn {db.lsn} vs {lead.db.lsn})")
        return problems


def with_settings(world: World, **kw: object) -> World:
    for node in world.nodes.values():
        node.settings = replace(node.settings, **kw)  # type: ignore[arg-type]
    return world
