"""Planned switchover with patronictl, repeatedly, under a writer every 50 ms.

    python bench/switchover.py [RUNS] [--impl ours|patroni] [--fast-only]
        (as an unprivileged user; default 5 switchovers per timing set)

Per run it prints
  * the write window: the longest pause between acknowledged writes (writer every 50 ms)
    from the moment `patronictl switchover --force` was started; and the same window seen
    by direct probes (bench/probes.py): the old primary's last write (one every 5 ms,
    synchronous_commit off) to the new primary's first (it is asked every 5 ms);
  * how long `patronictl switchover --force` took to return;
  * when the old primary was streaming from the new one (pg_stat_replication on the new
    primary, polled every 10 ms), counted from the new primary's first acknowledged write;
and checks that no acknowledged row was lost.
Targets (issue 14.3, fast timings): window <= 0.2 s, patronictl <= 0.5 s, old primary
streaming within 1 s (Patroni 3.0.2 here: window 1.11 s).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from typing import List, Optional

from common import REPO, Etcd, refuse_root, summary
from impl import StreamingProbe, patronictl_cmd, patronictl_env, start_cluster, timed_runs
from probes import start_probes, stop_probes

from tests.e2e.harness import LocalCluster, Writer, rows_on, wait_for


def one_switchover(cluster: LocalCluster, impl: str, leader: str, candidate: str,
                   probe: StreamingProbe) -> tuple:
    """Run the command; return (started, returned, first time `leader` streams from the candidate)."""
    cmd = patronictl_cmd(cluster, impl) + ["switchover", "--leader", leader, "--candidate", candidate, "--force"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=patronictl_env(impl), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    returned: Optional[float] = None
    streaming_at: Optional[float] = None
    deadline = started + 120
    while time.monotonic() < deadline and (returned is None or streaming_at is None):
        if returned is None and proc.poll() is not None:
            returned = time.monotonic()
        if streaming_at is None and probe.streaming(leader):
            streaming_at = time.monotonic()
        time.sleep(0.01)
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0 or "Successfully switched over" not in out:
        raise RuntimeError(f"switchover failed: {out}\n{err}")
    if returned is None or streaming_at is None:
        raise RuntimeError("the old primary did not stream from the new one within 120 s")
    return started, returned, streaming_at


def main() -> None:
    refuse_root()
    args, sets = timed_runs("planned switchover benchmark")
    for label, (ttl, lw, rt) in sets:
        windows: List[float] = []
        probe_windows: List[float] = []
        ctl_times: List[float] = []
        stream_times: List[float] = []
        lost_total = 0
        with tempfile.TemporaryDirectory(prefix="qhb-bench-switchover-") as base:
            etcd = Etcd(base)
            cluster = LocalCluster(base, etcd.host, ttl=ttl, loop_wait=lw, retry_timeout=rt, scope="bench-so")
            try:
                start_cluster(cluster, args.impl)
                writer = Writer(cluster, interval=0.05).start()
                for i in range(args.runs):
                    primary = cluster.wait_all_running(timeout=300)
                    candidate = next(n for n in cluster.nodes if n is not primary and n.status())
                    on_primary = StreamingProbe(primary)
                    wait_for(lambda p=on_primary, n=candidate.name: p.streaming(n), 60, "the candidate streaming")
                    on_primary.close()
                    probe = StreamingProbe(candidate)
                    wait_for(lambda w=writer: len(w.acked) > 10, 60, "writes")
                    # Direct probes: the old primary written every 5 ms, the candidate asked every
                    # 5 ms whether it still is a replica and written once when it is not.
                    old_probe = start_probes([primary], primary, async_commit=True)[0]
                    new_probe = start_probes([candidate], primary, once=True)[0]
                    time.sleep(1.0)
                    started, returned, streaming_at = one_switchover(cluster, args.impl, primary.name,
                                                                     candidate.name, probe)
                    probe.close()
                    wait_for(candidate.is_primary, 60, "the candidate to be primary")
                    promoted_seen = time.monotonic()
                    wait_for(lambda w=writer, p=promoted_seen: w.ack_times[-1] > p, 60, "a write on the new primary")
                    # The longest pause between acknowledged writes since the command was started,
                    # and the first write after it (on the new primary).
                    pairs = [(a, b) for a, b in zip(writer.ack_times, writer.ack_times[1:]) if b > started]
                    gap_start, first_new = max(pairs, key=lambda ab: ab[1] - ab[0])
                    window = first_new - gap_start
                    windows.append(window)
                    wait_for(lambda p=new_probe: p.first is not None, 30, "the probe's write on the new primary")
                    stop_probes([old_probe, new_probe])
                    assert new_probe.first is not None
                    last_old = max(t for t in old_probe.acks if t < new_probe.first)
                    probe_windows.append(new_probe.first - last_old)
                    ctl_times.append(returned - started)
                    stream_times.append(streaming_at - first_new)
                    acked = list(writer.acked)
                    present = set(rows_on(candidate))
                    lost = [r for r in acked if r not in present]
                    lost_total += len(lost)
                    print(f"{label} run {i + 1}: {primary.name} -> {candidate.name}, write window {window:.3f} s "
                          f"(direct probes {probe_windows[-1]:.3f} s), "
                          f"patronictl {returned - started:.3f} s, old primary streaming "
                          f"{streaming_at - first_new:.3f} s after the first write on the new primary "
                          f"({streaming_at - started:.3f} s after the command), "
                          f"acknowledged rows lost: {len(lost)}{' ' + str(lost[:5]) if lost else ''}, "
                          f"load {os.getloadavg()[0]:.2f}", flush=True)
                    wait_for(lambda c=cluster: c.all_running(), 120, "everybody running again")
                writer.stop()
            finally:
                cluster.stop()
                etcd.stop()
        print(summary(f"{label}: write window", windows))
        print(summary(f"{label}: write window seen by direct probes", probe_windows))
        print(summary(f"{label}: patronictl switchover --force returned after", ctl_times))
        print(summary(f"{label}: old primary streaming after the new primary's first write", stream_times))
        print(f"{label}: acknowledged rows lost: {lost_total}", flush=True)


if __name__ == "__main__":
    main()
