"""Operator commands queued by the REST API (restart, reinitialize) and how the
core turns them into actions.  PURE: no I/O, no clock.

The API thread validates the request and queues a command; the loop puts the
pending commands into `Observation.commands`; `operator_actions()` answers each
one either with a task action (Restart, Reinitialize) or with RejectCommand
carrying the 3.0.2 refusal text.  A scheduled restart waits in the queue until
`Observation.wall_time` reaches its time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

from . import actions as A
from .methods import clone_member
from .observation import Observation, Settings


@dataclass(frozen=True)
class RestartCommand:
    ident: int
    role: Optional[str] = None  # compared with the internal role (3.0.2: "master"/"replica")
    postgres_version: Optional[int] = None  # server_version_num style (15.2 -> 150002)
    restart_pending: bool = False
    timeout: Optional[float] = None
    scheduled_at: Optional[float] = None  # epoch seconds; None = at once
    # The server's start time when a restart was scheduled: a restart since then cancels it.
    postmaster_start_time: Optional[str] = None


@dataclass(frozen=True)
class ReinitCommand:
    ident: int
    force: bool = False


Command = Union[RestartCommand, ReinitCommand]

NOT_SATISFIED = "restart conditions are not satisfied"
RESTARTED_MEANWHILE = "scheduled restart cancelled: postgres was restarted meanwhile"
NO_LEADER = "Cluster has no leader, can not reinitialize"
I_AM_LEADER = "I am the leader, can not reinitialize"
NO_CLONE_SOURCE = "Leader has no connection URL to clone from, can not reinitialize"


def version_to_int(text: str) -> int:
    """'15.2' -> 150002, '9.6.24' -> 90624 (server_version_num); ValueError if malformed."""
    parts = str(text).strip().split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a valid PostgreSQL version, expected X.Y or X.Y.Z")
    numbers = [int(p) for p in parts]
    if len(numbers) == 2:
        major, minor = numbers
        return major * 10000 + minor if major >= 10 else major * 10000 + minor * 100
    return numbers[0] * 10000 + numbers[1] * 100 + numbers[2]


def restart_mismatch(cmd: RestartCommand, role: str, server_version: Optional[int], pending: bool) -> str:
    """Why the restart filters do not match ('' when they do)."""
    if cmd.role and cmd.role != role:
        return "host role mismatch"
    if cmd.postgres_version is not None and server_version is not None and cmd.postgres_version <= server_version:
        return "postgres version mismatch"
    if cmd.restart_pending and not pending:
        return "pending restart flag is not set"
    return ""


def operator_actions(obs: Observation, settings: Settings) -> Tuple[List[A.Action], Optional[A.Action]]:
    """(refusals to send, the one task action to start or None) for the queued commands."""
    rejects: List[A.Action] = []
    chosen: Optional[A.Action] = None
    task = obs.task if obs.task is not None and not obs.task.done else None
    cluster = obs.cluster
    for cmd in obs.commands:
        if isinstance(cmd, ReinitCommand):
            if cluster is None or cluster.leader is None:
                rejects.append(A.RejectCommand(cmd.ident, NO_LEADER))
            elif cluster.leader.name == settings.name:
                rejects.append(A.RejectCommand(cmd.ident, I_AM_LEADER))
            elif task is not None:
                rejects.append(A.RejectCommand(cmd.ident, f"{task.name} already in progress"))
            elif chosen is not None:
                rejects.append(A.RejectCommand(cmd.ident, "restart already in progress"))
            else:
                leader = cluster.leader.member or cluster.member(cluster.leader.name)
                if leader is None or not leader.conn_url:  # checked before anything is wiped
                    rejects.append(A.RejectCommand(cmd.ident, NO_CLONE_SOURCE))
                    continue
                source = clone_member(cluster, settings.name, leader)
                chosen = A.Reinitialize(cmd.ident, leader, source if source is not leader else None)
            continue
        started_then, started_now = cmd.postmaster_start_time, obs.local.postmaster_start_time
        if cmd.scheduled_at is not None and started_then and started_now and started_then != started_now:
            rejects.append(A.RejectCommand(cmd.ident, RESTARTED_MEANWHILE))
            continue
        if cmd.scheduled_at is not None:
            if obs.wall_time is None or obs.wall_time < cmd.scheduled_at or task is not None or chosen is not None:
                continue  # not due yet, or wait until the running task is over
        elif task is not None or chosen is not None:
            name = task.name if task is not None else "reinitialize"
            rejects.append(A.RejectCommand(cmd.ident, f"{name} already in progress"))
            continue
        if restart_mismatch(cmd, obs.local.role, obs.server_version, obs.local.pending_restart):
            rejects.append(A.RejectCommand(cmd.ident, NOT_SATISFIED))
            continue
        chosen = A.Restart(cmd.ident, cmd.timeout)
    return rejects, chosen
