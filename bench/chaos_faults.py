"""Injecting and healing one fault of the schedule (see chaos_plan for the kinds)."""
from __future__ import annotations

import json
import signal
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import chaos_cluster as cc
import chaos_net as net
import chaos_plan as plan

from tests.e2e.harness import LocalCluster, http_get, patronictl

Heal = Callable[[], None]


class Context:
    def __init__(self, cluster: LocalCluster, members: List[cc.DcsMember], network: net.Network,
                 ttl: int, synchronous: bool) -> None:
        self.synchronous = synchronous
        self.cluster = cluster
        self.members = members
        self.network = network
        self.ttl = ttl
        self.indexes = list(range(len(cluster.nodes)))

    def node(self, i: int) -> cc.ChaosNode:
        n = self.cluster.nodes[i]
        assert isinstance(n, cc.ChaosNode)
        return n

    def primary(self, pick: float) -> int:
        """The node answering /primary (the draw chooses when none or several do)."""
        found = [i for i in self.indexes if self.node(i).is_primary()]
        return found[0] if len(found) == 1 else plan.choose(found or self.indexes, pick)

    def primary_name(self) -> str:
        found = [self.name(i) for i in self.indexes if self.node(i).is_primary()]
        return ",".join(found) or "-"

    def replicas(self, primary: int) -> List[int]:
        return [i for i in self.indexes if i != primary]

    def sync_standbys(self, primary: int) -> List[int]:
        """The members /cluster (asked of the primary) lists as synchronous standbys."""
        try:
            _, body = http_get(self.node(primary).api + "/cluster", timeout=2.0)
            sync = {m["name"] for m in json.loads(body)["members"] if m.get("role") == "sync_standby"}
        except (OSError, ValueError, KeyError):
            sync = set()
        return [i for i in self.replicas(primary) if self.name(i) in sync]

    def name(self, i: int) -> str:
        return self.node(i).name


def _switchover(ctx: Context, candidate: Optional[str] = None) -> str:
    args = ["switchover", "--force"] + (["--candidate", candidate] if candidate else [])
    res = patronictl(ctx.cluster, *args, timeout=60)
    last = (res.stdout.strip().splitlines() or [""])[-1] + " " + res.stderr.strip()[-200:]
    return f"switchover rc={res.returncode}: {last.strip()}"


def _cut(ctx: Context, pairs: List[Tuple[str, str]]) -> Heal:
    ctx.network.drop(pairs)
    return ctx.network.heal


def _network_fault(ctx: Context, kind: str, pick: float) -> Tuple[str, Heal]:
    nodes = ctx.indexes
    if kind == plan.PARTITION_PRIMARY:
        p = ctx.primary(pick)
        pairs = [c for o in ctx.replicas(p) for c in net.node_pair_cut(p, o)] + net.client_cut(p)
        return ctx.name(p), _cut(ctx, pairs)
    if kind == plan.PARTITION_PRIMARY_DCS:
        p = ctx.primary(pick)
        return ctx.name(p), _cut(ctx, net.dcs_cut(p, ctx.replicas(p)))
    if kind == plan.PARTITION_HALVES:
        a, b = plan.halves(nodes, pick)
        pairs = [c for pair in plan.cut_between(a, b) for c in net.node_pair_cut(*sorted(pair))]
        return "|".join(",".join(ctx.name(i) for i in side) for side in (a, b)), _cut(ctx, pairs)
    if kind == plan.PARTITION_RING:
        ring = plan.majorities_ring(nodes, pick)
        pairs = [c for pair in ring for c in net.node_pair_cut(*sorted(pair))]
        return " ".join("x".join(ctx.name(i) for i in sorted(p)) for p in ring), _cut(ctx, pairs)
    if kind == plan.ISOLATE_REPLICA:
        r = plan.choose(ctx.replicas(ctx.primary(pick)), pick)
        pairs = [c for o in nodes if o != r for c in net.node_pair_cut(r, o)] + net.client_cut(r)
        return ctx.name(r), _cut(ctx, pairs)
    raise ValueError(kind)


def _victim(ctx: Context, pick: float) -> int:
    """Half of the process faults hit the primary, the other half a replica."""
    p = ctx.primary(pick)
    return p if pick < 0.5 else plan.choose(ctx.replicas(p), pick * 2 - 1)


def _process_fault(ctx: Context, kind: str, pick: float) -> Tuple[str, Heal, str]:
    if kind in (plan.KILL_DAEMON, plan.KILL_POSTMASTER, plan.KILL_BOTH):
        node = ctx.node(_victim(ctx, pick))
        detail = ""
        if kind in (plan.KILL_DAEMON, plan.KILL_BOTH):
            node.kill_daemon()
        if kind in (plan.KILL_POSTMASTER, plan.KILL_BOTH):
            pm = node.kill_postmaster()
            detail = f"postmaster {pm}" if pm else "no postmaster was running"
        return node.name, (node.ensure_started if kind != plan.KILL_POSTMASTER else _nothing), detail
    if kind == plan.STOP_DAEMON:
        node = ctx.node(ctx.primary(pick))
        pids = node.daemon_pids()
        cc.signal_pids(pids, signal.SIGSTOP)
        return node.name, lambda: cc.signal_pids(pids, signal.SIGCONT), f"daemon stopped past ttl {ctx.ttl}s"
    if kind == plan.STOP_POSTMASTER:
        node = ctx.node(ctx.primary(pick))
        pm = node.postmaster_pid()
        stopped = [pm] if pm else []
        cc.signal_pids(stopped, signal.SIGSTOP)
        return node.name, lambda: cc.signal_pids(stopped, signal.SIGCONT), "" if pm else "no postmaster"
    if kind == plan.KILL_ETCD:
        m = ctx.members[plan.choose(ctx.indexes, pick)]
        m.kill()
        return m.name, m.start, ""
    if kind == plan.LOSE_QUORUM:
        spared = plan.choose(ctx.indexes, pick)
        victims = [m for m in ctx.members if m.index != spared]
        for m in victims:
            m.kill()

        def restart() -> None:
            for m in victims:
                m.start()
        return ",".join(m.name for m in victims), restart, ""
    if kind == plan.NETEM:
        i = plan.choose(ctx.indexes, pick)
        shaping = ctx.network.shape(i)
        return ctx.name(i), lambda: ctx.network.unshape(i), shaping
    raise ValueError(kind)


def _nothing() -> None:
    pass


def _repair(ctx: Context, timeout: float) -> str:
    """What an operator would do about a member left behind (e.g. a failed rewind):
    `patronictl reinit`, so that the faults after an unhealed one still mean something.
    The fault itself stays counted as unhealed."""
    stuck = cc.stuck_replicas(ctx.cluster)
    if not stuck:
        return "nothing to reinitialise"
    res = patronictl(ctx.cluster, "reinit", ctx.cluster.scope, *stuck, "--force", "--wait", timeout=timeout * 2)
    healed = cc.wait_healthy(ctx.cluster, timeout)
    state = "healthy again" if healed is not None else f"still unhealthy: {cc.unhealthy(ctx.cluster)}"
    return f"patronictl reinit {' '.join(stuck)}: rc={res.returncode}; {state}"


def run_fault(ctx: Context, fault: plan.Fault, heal_timeout: float) -> Dict[str, Any]:
    """Inject, hold, heal, wait for health.  The row's private `_start`/`_end` (monotonic)
    bound the window the checker measures the no-primary time in."""
    before = ctx.primary_name()
    wall = time.strftime("%H:%M:%S", time.gmtime())  # to find the fault in the logs (UTC)
    start = time.monotonic()
    details: List[str] = []
    if fault.kind == plan.SWITCHOVER:
        # Synchronous modes accept only a synchronous standby as the candidate.
        p = ctx.primary(fault.pick)
        sync = ctx.sync_standbys(p) if ctx.synchronous else []
        cand = ctx.name(plan.choose(sync or ctx.replicas(p), fault.pick)) if sync or not ctx.synchronous else None
        target = f"{ctx.name(p)}->{cand or 'any'}"
        details.append(_switchover(ctx, cand))
        heal: Heal = _nothing
    elif fault.kind in (plan.PARTITION_PRIMARY, plan.PARTITION_PRIMARY_DCS, plan.PARTITION_HALVES,
                        plan.PARTITION_RING, plan.ISOLATE_REPLICA):
        target, heal = _network_fault(ctx, fault.kind, fault.pick)
    else:
        target, heal, detail = _process_fault(ctx, fault.kind, fault.pick)
        if detail:
            details.append(detail)
    if fault.mid_switchover:
        time.sleep(fault.hold_s / 2)
        details.append("mid-hold " + _switchover(ctx))
        time.sleep(max(0.0, fault.hold_s - (time.monotonic() - start)))
    else:
        time.sleep(fault.hold_s)
    held = time.monotonic() - start
    heal()
    ctx.network.heal()  # belt and braces: no cut or shaping outlives its fault
    healed_at = time.monotonic()
    healed = cc.wait_healthy(ctx.cluster, heal_timeout)
    end = time.monotonic()
    row: Dict[str, Any] = {
        "index": fault.index, "at_utc": wall, "kind": fault.kind, "target": target, "held_s": round(held, 3),
        "healed_s": None if healed is None else round(healed, 3), "mid_switchover": fault.mid_switchover,
        "detail": "; ".join(details), "primary_before": before, "primary_after": ctx.primary_name(),
        "_start": start, "_end": end,
    }
    if healed is None:
        row["unhealthy"] = cc.unhealthy(ctx.cluster)
        print(f"  not healthy {heal_timeout:.0f}s after the heal (at {healed_at - start:.1f}s): {row['unhealthy']}",
              flush=True)
        row["repair"] = _repair(ctx, heal_timeout)
        print(f"  repair: {row['repair']}", flush=True)
    time.sleep(1.0)
    return row
