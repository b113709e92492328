"""Fault harness: partitions, kills, stalls, DCS quorum loss and link shaping on a
3-node cluster (one network namespace per node with its etcd member, database and
daemon), with clients writing throughout and a checker at the end.

    python3 bench/chaos.py --faults 20 --seed 1 --mode strict --dcs etcd [--report FILE.json]

Run as root (namespaces); databases, daemons and etcd run as the unprivileged test
user.  Prints a line per fault and a summary; exits non-zero when a safety target
fails (lost acknowledged writes in a synchronous mode, a split brain, a fault not
healed in time).  Logs of every daemon, database and etcd member are kept when
the run fails (or with --keep).  docs/reliability.md explains the figures.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
VENV_PYTHON = os.path.join(os.environ.get("QHB_VENV", "/opt/qhb-patroni/venv"), "bin", "python")


def _reexec_in_venv() -> None:
    """`python3 bench/chaos.py` works with the system python: re-run in the venv."""
    try:
        import psycopg2  # noqa: F401
        import yaml  # noqa: F401
    except ImportError:
        if os.path.exists(VENV_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(VENV_PYTHON):
            os.execv(VENV_PYTHON, [VENV_PYTHON, *sys.argv])
        raise


_reexec_in_venv()
for path in (HERE, REPO):
    if path not in sys.path:
        sys.path.insert(0, path)

import chaos_check as check  # noqa: E402
import chaos_cluster as cc  # noqa: E402
import chaos_faults as faults  # noqa: E402
import chaos_net as net  # noqa: E402
import chaos_plan as plan  # noqa: E402
import chaos_watchdog as wd  # noqa: E402
from chaos_workload import Workload, keys_on, wal_position  # noqa: E402

MODES = {
    "strict": {"synchronous_mode": True, "synchronous_mode_strict": True},
    "sync": {"synchronous_mode": True},
    "async": {},
}
MAX_LAG = 1048576  # maximum_lag_on_failover (bootstrap default of the harness)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="fault harness (run as root)")
    p.add_argument("--faults", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mode", choices=sorted(MODES), default="strict")
    p.add_argument("--dcs", choices=["etcd", "consul"], default="etcd",
                   help="etcd: 3 members, v3 API (etcd3 section); consul: 3 server agents, each daemon uses its node's")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--ttl", type=int, default=10)
    p.add_argument("--loop-wait", type=int, default=2)
    p.add_argument("--retry-timeout", type=int, default=4)
    p.add_argument("--hold-min", type=float, default=2.0)
    p.add_argument("--hold-max", type=float, default=8.0)
    p.add_argument("--heal-timeout", type=float, default=90.0,
                   help="a fault counts as unhealed when the cluster is not healthy this long after the heal")
    p.add_argument("--quiet", type=float, default=5.0, help="quiet period after the final heal")
    p.add_argument("--kinds", help="comma-separated subset of: " + ",".join(plan.KINDS))
    p.add_argument("--net", type=int, default=0,
                   help="which of several coexisting runs on this machine this is: namespaces, addresses and the "
                        "lock file derive from it (0: qhbchaos-*, 10.213.0.x/10.213.1.x, /run/qhbchaos.lock)")
    p.add_argument("--watchdog", action="store_true",
                   help="give every node an emulated hardware watchdog (watchdog.mode required): a node whose "
                        "device is not fed within its timeout is reset (kill -9 of all its processes) and rebooted")
    p.add_argument("--reboot-delay", type=float,
                   help="with --watchdog: seconds between a reset and the node's restart (default: ttl, so that "
                        "the reset node's leader key has expired when it is back, as after a real reboot)")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs) even when it passes")
    args = p.parse_args(argv)
    if args.reboot_delay is None:
        args.reboot_delay = float(args.ttl)
    if args.nodes < 3:
        p.error("--nodes must be 3 or more")
    if args.faults < 0:
        p.error("--faults must be >= 0")
    if not 0 <= args.hold_min <= args.hold_max:
        p.error("--hold-min must be between 0 and --hold-max")
    if not 0 <= args.net <= net.MAX_NET:
        p.error(f"--net must be between 0 and {net.MAX_NET}")
    if args.nodes > net.MAX_NODES:
        p.error(f"--nodes must be at most {net.MAX_NODES}")
    if args.kinds:
        bad = sorted(set(args.kinds.split(",")) - set(plan.KINDS))
        if bad:
            p.error(f"--kinds: unknown {', '.join(bad)}")
    return args


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def lost_per_fault(lost: List[int], acks: List[check.Ack], rows: List[Dict[str, Any]]) -> None:
    """Attribute each lost key to the first fault whose window ends after its ack."""
    ack_at = {a.key: a.ack for a in acks}
    for r in rows:
        r["lost_acked"] = 0
    for key in lost:
        at = ack_at[key]
        for r in rows:
            if at <= r["_end"]:
                r["lost_acked"] += 1
                break


def run(args: argparse.Namespace, base: str) -> Dict[str, Any]:
    schedule = plan.make_schedule(args.seed, args.faults, args.ttl, (args.hold_min, args.hold_max),
                                  args.kinds.split(",") if args.kinds else plan.KINDS)
    network = net.Network(args.nodes)
    network.create()
    inside = net.Entered(net.CLIENT_NS)  # the clients and the checker live outside the node namespaces
    margin = wd.timeout_margin(args.ttl, args.loop_wait, args.retry_timeout) if args.watchdog else None
    cluster, members = cc.build(base, args.nodes, args.ttl, args.loop_wait, args.retry_timeout, MODES[args.mode],
                                margin, args.dcs)
    print(f"chaos: net {args.net} ({net.PREFIX}-*), dcs {args.dcs}, {args.nodes} nodes, mode {args.mode}, "
          f"seed {args.seed}, {args.faults} faults, "
          f"ttl {args.ttl}, loop_wait {args.loop_wait}, retry_timeout {args.retry_timeout}, "
          f"link shaping: {network.shaping}, logs in {base}", flush=True)
    if margin is not None:
        print(f"chaos: emulated watchdog per node, mode required, timeout {args.ttl - margin} s "
              f"(safety_margin {margin}), reboot {args.reboot_delay:g} s after a reset", flush=True)
    workload: Optional[Workload] = None
    monitor: Optional[wd.Monitor] = None
    try:
        if margin is not None:
            monitor = _watchdog_monitor(cluster, members, args.reboot_delay)
            monitor.start()
        cc.start_dcs(members)
        cluster.start()
        if cc.wait_healthy(cluster, 240) is None:
            raise RuntimeError(f"cluster never became healthy: {cc.unhealthy(cluster)}")
        primary = cluster.primary()
        assert primary is not None
        workload = Workload(cluster.nodes, clients=args.clients)
        workload.setup(primary)
        wal_start = wal_position(primary)
        workload.start()
        time.sleep(2)
        ctx = faults.Context(cluster, members, network, args.ttl, args.mode != "async")
        rows: List[Dict[str, Any]] = []
        for fault in schedule:
            row = faults.run_fault(ctx, fault, args.heal_timeout)
            times = sorted(a.ack for a in workload.acks)
            row["no_primary_s"] = round(check.longest_gap(times, row["_start"], row["_end"], time.monotonic()), 3)
            if monitor is not None:
                row["watchdog_resets"] = wd.resets_in(monitor.resets, row["_start"], row["_end"])
            rows.append(row)
            healed = "NOT HEALED" if row["healed_s"] is None else f"healed {row['healed_s']:.1f}s"
            print(f"[{fault.index + 1}/{len(schedule)}] {row['at_utc']} {row['kind']:<21} {row['target']:<26} "
                  f"held {row['held_s']:.1f}s  no-primary {row['no_primary_s']:.1f}s  {healed}  "
                  f"primary {row['primary_before']}->{row['primary_after']}"
                  + (f"  ({row['detail']})" if row.get("detail") else "")
                  + (f"  watchdog reset {','.join(row['watchdog_resets'])}" if row.get("watchdog_resets") else ""),
                  flush=True)
        # Final heal (every fault healed itself already) and quiet period.
        network.heal()
        final_heal = cc.wait_healthy(cluster, args.heal_timeout)
        time.sleep(args.quiet)
        workload.stop()
        end = time.monotonic()
        final = cluster.primary()
        if final is None:
            raise RuntimeError(f"no primary at the end: {cc.unhealthy(cluster)}")
        present = keys_on(final)
        acks = sorted(workload.acks, key=lambda a: a.ack)
        times = [a.ack for a in acks]
        for r in rows:  # recompute with every acknowledgement known
            r["no_primary_s"] = round(check.longest_gap(times, r["_start"], r["_end"], end), 3)
        lost = check.lost_acked(acks, present)
        lost_per_fault(lost, acks, rows)
        brains = check.split_brain(check.writable_spans(acks))
        watchdog = _watchdog_summary(monitor, rows) if monitor is not None else None
        wal_per_row = (wal_position(final) - wal_start) / max(1, len(present))
        t0 = rows[0]["_start"] if rows else end
        for r in rows:
            r["start_s"] = round(r.pop("_start") - t0, 3)
            r.pop("_end")
        extra = {
            "seed": args.seed, "net": args.net, "dcs": args.dcs, "nodes": args.nodes, "clients": args.clients,
            "ttl": args.ttl, "loop_wait": args.loop_wait, "retry_timeout": args.retry_timeout,
            "link_shaping": network.shaping, "indeterminate_writes": workload.indeterminate,
            "refused_writes": workload.refused, "final_primary": final.name,
            "final_heal_s": None if final_heal is None else round(final_heal, 3),
            "maximum_lag_on_failover": MAX_LAG, "wal_bytes_per_row": round(wal_per_row, 1),
            "lost_wal_estimate_bytes": round(len(lost) * wal_per_row),
            "watchdog": watchdog,
        }
        brains_rel = [(s - t0, e - t0, a, b) for s, e, a, b in brains]
        report = check.summarize(args.mode, args.ttl, rows, acks, lost, brains_rel, extra)
        if final_heal is None:
            report["unhealed"] += 1
            report["final_unhealthy"] = cc.unhealthy(cluster)
        return report
    finally:
        if workload is not None:
            workload.stop()
        if monitor is not None:
            monitor.stop()  # no resets while the cluster is stopped on purpose
        network.heal()
        cc.stop_all(cluster, members)
        inside.leave()


def _watchdog_monitor(cluster: Any, members: List[cc.DcsMember], reboot_s: float) -> wd.Monitor:
    nodes = {n.name: n for n in cluster.nodes if isinstance(n, cc.ChaosNode)}
    for n in nodes.values():
        os.makedirs(n.dir, exist_ok=True)
        wd.make_fifo(n.watchdog_device)
        cc.chown_tree(n.dir)
    return wd.Monitor({name: n.watchdog_device for name, n in nodes.items()},
                      reset=lambda name: cc.hard_reset(nodes[name]),
                      reboot=lambda name: cc.reboot(nodes[name], members[nodes[name].index]),
                      reboot_s=reboot_s)


def _watchdog_summary(monitor: wd.Monitor, rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Every reset, and the ones outside any fault's window (before the first, after the last)."""
    inside = sum(len(r.get("watchdog_resets", [])) for r in rows)
    return {
        "resets": len(monitor.resets),
        "resets_outside_faults": len(monitor.resets) - inside,
        "reset_log": [{"node": r.node, "silent_s": round(r.silent_s, 2), "timeout": r.timeout,
                       "fault": next((row["index"] for row in rows if row["_start"] <= r.at < row["_end"]), None)}
                      for r in monitor.resets],
        "errors": monitor.errors,
    }


def print_summary(report: Dict[str, Any], failures: List[str]) -> None:
    print(check.markdown_table(check.per_kind(report["rows"])))
    med = report["median_no_primary_after_primary_partition_s"]
    print(f"chaos summary ({report['mode']}, seed {report['seed']}): {report['faults']} faults, "
          f"{report['acked']} acknowledged writes ({report['indeterminate_writes']} indeterminate), "
          f"lost_acked {report['lost_acked']}, split_brain_s {report['split_brain_s']}, "
          f"max_no_primary_s {report['max_no_primary_s']}, "
          f"median no-primary after a primary partition {med if med is not None else '-'} s, "
          f"unhealed {report['unhealed']}"
          + (f", watchdog resets {report['watchdog']['resets']}" if report.get("watchdog") else ""))
    if report["mode"] == "async" and report["lost_acked"]:
        print(f"  async: {report['lost_acked']} acknowledged writes lost (~{report['lost_wal_estimate_bytes']} bytes "
              f"of WAL; bound per failover: maximum_lag_on_failover = {report['maximum_lag_on_failover']})")
    print("chaos: " + ("FAILED: " + "; ".join(failures) if failures else "all safety targets met"), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("chaos.py creates network namespaces: run it as root")
    layout = net.use_net(args.net)
    lock = open(layout.lock, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(f"another chaos run holds {layout.lock} (use another --net to run beside it)")
    # Installed explicitly: a shell starts background jobs with SIGINT ignored, and
    # Python then never turns it into KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    leftovers = net.remove_all()
    if leftovers:
        print(f"chaos: removed leftovers of an earlier run: {', '.join(leftovers)}")
    base = tempfile.mkdtemp(prefix=f"qhb-chaos-{args.mode}-{args.seed}-" + (f"net{args.net}-" if args.net else ""))
    os.chmod(base, 0o755)
    report: Optional[Dict[str, Any]] = None
    failures = ["interrupted or crashed before the checker ran"]
    try:
        report = run(args, base)
        failures = check.safety_failures(report)
        print_summary(report, failures)
        if args.report:
            with open(args.report, "w", encoding="utf-8") as f:
                json.dump({**report, "failures": failures}, f, indent=1)
    except KeyboardInterrupt:
        print("chaos: interrupted, tearing down", file=sys.stderr)
        return 130
    finally:
        removed = net.remove_all()
        if report is None or failures or args.keep:
            print(f"chaos: logs of every daemon, database and DCS member kept in {base}", flush=True)
        else:
            shutil.rmtree(base, ignore_errors=True)
        if removed:
            print(f"chaos: removed namespaces {', '.join(removed)}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
