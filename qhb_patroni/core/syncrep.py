"""Synchronous replication managed by the lock holder (spec 5.11), pure.

The invariant that makes a failover in synchronous mode lose nothing: a standby
is named in /sync only while the primary really waits for it, and only after
it holds every WAL byte written before that.  So /sync is always shrunk before
synchronous_standby_names drops a standby, and grows only after a standby was
seen synchronous *and* past the primary's WAL position read after the change
(the shell's ProbeReplication with `confirm`).

Who may take over follows from it: with a /sync naming a leader, only that
leader and its standbys race (election.py, switchover.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from . import actions as A
from .local import ReplicationRow, ReplicationState
from .model import ClusterView, SyncState
from .observation import Settings

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z_0-9$]*$")
_SYNC_RANK = {"sync": 2, "quorum": 1, "potential": 1}


def sync_members(sync: Optional[SyncState]) -> Tuple[str, ...]:
    """The /sync leader and its standbys; () when /sync names no leader."""
    if sync is None or not sync.leader:
        return ()
    return (sync.leader,) + tuple(sync.sync_standby)


def _quote(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def format_standby_names(names: Tuple[str, ...], count: int) -> str:
    """`a` for one standby, `N (a,b)` when more are wanted, '' for none."""
    if not names:
        return ""
    quoted = ",".join(_quote(n) for n in names)
    if count <= 1 and len(names) == 1:
        return quoted
    return f"{min(count, len(names))} ({quoted})"


def parse_standby_names(value: str) -> Tuple[str, ...]:
    """Names listed in a synchronous_standby_names value ('*' stays '*')."""
    text = value.strip()
    match = re.match(r"^(?:(?:FIRST|ANY)\s+)?\d+\s*\((.*)\)\s*$", text, re.IGNORECASE)
    if match:
        text = match.group(1)
    names: List[str] = []
    for part in re.findall(r'"(?:[^"]|"")*"|[^,\s]+', text):
        if part.startswith('"'):
            names.append(part[1:-1].replace('""', '"'))
        else:
            names.append(part)
    return tuple(names)


def _listed(name: str, listed: Tuple[str, ...]) -> bool:
    # The server compares standby names case-insensitively; '*' matches everyone.
    return "*" in listed or name.lower() in (n.lower() for n in listed)


def standby_position(row: ReplicationRow, synchronous_commit: str) -> int:
    """What a commit waits for on this standby: replay, write or (default) flush position."""
    if synchronous_commit == "remote_apply":
        return row.replay_lsn
    if synchronous_commit == "remote_write":
        return row.write_lsn
    return row.flush_lsn


def pick(cluster: ClusterView, rep: ReplicationState, settings: Settings) -> Tuple[str, ...]:
    """The standbys that should be synchronous, best first (spec 5.11)."""
    candidates = []
    for row in rep.rows:
        member = cluster.member(row.name)
        if row.state != "streaming" or member is None or row.name == settings.name:
            continue
        if member.state != "running" or member.nosync:
            continue
        candidates.append((member.nofailover, row))
    candidates.sort(key=lambda c: (not c[0], _SYNC_RANK.get(c[1].sync_state, 0),
                                   standby_position(c[1], rep.synchronous_commit)), reverse=True)
    lag = settings.maximum_lag_on_syncnode
    if lag > 0 and candidates:
        positions = [standby_position(r, rep.synchronous_commit) for _, r in candidates]
        best = max(positions) if len(candidates) > 1 else rep.lsn
        candidates = [c for c, p in zip(candidates, positions) if best - p <= lag]
    return tuple(r.name for _, r in candidates[: settings.synchronous_node_count])


@dataclass(frozen=True)
class SyncStep:
    actions: Tuple[A.Action, ...] = ()
    probe: Optional[A.ProbeReplication] = None  # ask first, then decide again


def leader_sync_step(cluster: ClusterView, settings: Settings, rep: Optional[ReplicationState]) -> SyncStep:
    """What the writable lock holder does about synchronous replication this cycle."""
    me = settings.name
    sync = cluster.sync
    version = sync.version if sync is not None else None
    if not settings.synchronous_mode:
        if sync is not None and sync.leader:
            return SyncStep((A.DeleteSync(version), A.SetSyncStandbyNames(None)))
        return SyncStep()
    if rep is None:
        return SyncStep(probe=A.ProbeReplication())
    if rep.error is not None:
        return SyncStep()  # unknown: change nothing (shrinking on a failed read would be a guess)
    owned = sync is not None and sync.leader == me
    current = tuple(sync.sync_standby) if sync is not None and owned else ()
    picked = pick(cluster, rep, settings)
    target = format_standby_names(picked, settings.synchronous_node_count)
    if not target and settings.synchronous_mode_strict:
        target = "*"
    listed = parse_standby_names(rep.standby_names)

    def synchronous(name: str) -> bool:
        row = rep.row(name)
        return row is not None and row.sync_state == "sync" and _listed(name, listed)

    # Who stays in /sync: still picked and still synchronous under the settings in effect.
    keep = tuple(n for n in current if n in picked and synchronous(n))
    if rep.standby_names.strip() != target:
        acts: List[A.Action] = []
        if not owned or keep != current:
            acts.append(A.WriteSync(me, keep, version))
        acts.append(A.SetSyncStandbyNames(target))
        return SyncStep(tuple(acts))
    add = tuple(n for n in picked if n not in keep)
    if add and rep.confirm_lsn is None:
        return SyncStep(probe=A.ProbeReplication(confirm=add))
    confirmed = tuple(
        n for n in add
        if synchronous(n) and rep.confirm_lsn is not None
        and standby_position(rep.row(n) or ReplicationRow(n), rep.synchronous_commit) >= rep.confirm_lsn
    )
    wanted = tuple(sorted(keep + confirmed))
    if owned and wanted == tuple(sorted(current)):
        return SyncStep()
    return SyncStep((A.WriteSync(me, wanted, version),))


def promote_sync_actions(cluster: ClusterView, settings: Settings) -> Tuple[A.Action, ...]:
    """Before promoting in synchronous mode: claim /sync with no standby, and make
    the new primary wait for nobody ('' ) or for anybody ('*', strict) meanwhile."""
    if not settings.synchronous_mode:
        return ()
    version = cluster.sync.version if cluster.sync is not None else None
    return (
        A.WriteSync(settings.name, (), version),
        A.SetSyncStandbyNames("*" if settings.synchronous_mode_strict else ""),
    )
