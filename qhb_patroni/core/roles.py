"""The role transition table: (from-role, event) -> (to-role, reason).

`decide()` names the event it saw and looks the row up here; the row gives the
reason code (the log sentence) and documents the role the node moves to once
its actions have run.  `scripts/gen_state_diagram.py` renders this table into
docs/failover-decisions.md, so the diagram is always the code.

Roles are the node's coarse situation as the core sees it (not Patroni's
`role` member field): derived from the local server state and the background
task by `current_role()`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

from . import reasons as R
from .local import DATA_PRESENT, STATE_STARTING
from .observation import Observation

# ---- roles -------------------------------------------------------------------
UNINITIALIZED = "uninitialized"  # empty (or inaccessible) data directory
BOOTSTRAPPING = "bootstrapping"  # Bootstrap task running
CLONING = "cloning"  # Clone task running
REWINDING = "rewinding"  # Rewind task running
PROMOTING = "promoting"  # Promote task running
BUSY = "busy"  # some other background task running
STOPPED = "stopped"  # data present, server not running
STARTING = "starting"  # server starting up
REPLICA = "replica"  # running, in recovery (read-only)
PRIMARY = "primary"  # running, writable
UNKNOWN = "unknown"  # running but its recovery state could not be read
EXITED = "exited"  # the daemon stops (Fatal)

ROLES = (
    UNINITIALIZED, BOOTSTRAPPING, CLONING, REWINDING, PROMOTING, BUSY,
    STOPPED, STARTING, REPLICA, PRIMARY, UNKNOWN, EXITED,
)
ANY = "*"  # from-role wildcard
SAME = "="  # to-role: unchanged

_TASK_ROLES = {
    "Bootstrap": BOOTSTRAPPING, "Clone": CLONING, "Rewind": REWINDING, "Promote": PROMOTING, "Reinitialize": CLONING,
    "CrashRecovery": REWINDING,
}


def current_role(obs: Observation) -> str:
    task = obs.task
    if task is not None and not task.done:
        return _TASK_ROLES.get(task.kind, BUSY)
    local = obs.local
    if local.data_dir != DATA_PRESENT:
        return UNINITIALIZED
    if local.is_primary:
        return PRIMARY
    if local.is_replica:
        return REPLICA
    if local.running:
        return UNKNOWN
    if local.state == STATE_STARTING:
        return STARTING
    return STOPPED


# ---- events ------------------------------------------------------------------
DCS_UNREACHABLE = "dcs_unreachable"
TASK_RUNNING = "task_running"
TASK_LOCK_RENEWED = "task_lock_renewed"
TASK_LOCK_LOST = "task_lock_lost"
BOOTSTRAP_FAILED = "bootstrap_failed"
BOOTSTRAP_START_FAILED = "bootstrap_start_failed"
CLONE_FAILED = "clone_failed"
REWIND_FAILED_REMOVE = "rewind_failed_remove"
BOOTSTRAP_DONE = "bootstrap_done"
DATA_EMPTY_HOLDER = "data_empty_holder"
DATA_INACCESSIBLE_HOLDER = "data_inaccessible_holder"
DATA_INACCESSIBLE = "data_inaccessible"
EMPTY_PAUSED = "empty_paused"
INIT_LOCK_LOST = "init_lock_lost"
CLONE_FROM_LEADER = "clone_from_leader"
CLONE_FROM_REPLICA = "clone_from_replica"
BOOTSTRAP_START = "bootstrap_start"
WAIT_FOR_LEADER = "wait_for_leader"
SYSID_INVALID = "sysid_invalid"
SYSID_MISMATCH = "sysid_mismatch"
SYSID_MISMATCH_PAUSED = "sysid_mismatch_paused"
PG_UNKNOWN = "pg_unknown"
STILL_STARTING = "still_starting"
START_TIMEOUT_DEMOTE = "start_timeout_demote"
START_TIMEOUT_WAIT = "start_timeout_wait"
START_LOCK_LOST = "start_lock_lost"
STARTING_FOLLOWER = "starting_follower"
STARTING_LEADERLESS = "starting_leaderless"
START_FAILED_HOLDER = "start_failed_holder"
START_READONLY_LEADER = "start_readonly_leader"
START_SECONDARY = "start_secondary"
PROBE_DIVERGENCE = "probe_divergence"
REWIND_START = "rewind_start"
REINIT_DIVERGED = "reinit_diverged"
DIVERGED_STAY = "diverged_stay"
DIVERGENCE_UNKNOWN = "divergence_unknown"
REWIND_FAILED_WAIT = "rewind_failed_wait"
CRASH_RECOVERY_START = "crash_recovery_start"
CRASH_RECOVERY_FAILED = "crash_recovery_failed"
PROBE_PEERS = "probe_peers"
LOCK_ACQUIRED = "lock_acquired"
RACE_LOST = "race_lost"
NOT_HEALTHIEST = "not_healthiest"
NOT_ALLOWED = "not_allowed"
LOCK_HELD = "lock_held"
SYNC_POSTPONED = "sync_postponed"
PROBE_REPLICATION = "probe_replication"
RENEW_FAILED = "renew_failed"
LOCKED_BY_OTHER = "locked_by_other"
MANUAL_FAILOVER = "manual_failover"
PAUSED_NOT_RUNNING = "paused_not_running"
PAUSED_NOT_RUNNING_HOLDER = "paused_not_running_holder"
PAUSED_IDLE = "paused_idle"
PAUSED_NOT_PRIMARY_HOLDER = "paused_not_primary_holder"
PAUSED_RENEW_FAILED = "paused_renew_failed"
PAUSED_NO_LOCK = "paused_no_lock"
OPERATOR_RESTART = "operator_restart"
OPERATOR_REINITIALIZE = "operator_reinitialize"
WATCHDOG_FAILED_DEMOTE = "watchdog_failed_demote"
WATCHDOG_FAILED_NOT_PROMOTING = "watchdog_failed_not_promoting"
DCS_UNREACHABLE_PAUSED = "dcs_unreachable_paused"
DCS_UNREACHABLE_LEASE = "dcs_unreachable_lease"
FAILSAFE_CALL = "failsafe_call"
FAILSAFE_STAY = "failsafe_stay"


@dataclass(frozen=True)
class Transition:
    role: str  # from-role, or ANY
    event: str
    to: str  # to-role, or SAME
    reason: str  # reason code (qhb_patroni.messages)


def _t(role: str, event: str, to: str, reason: str) -> Transition:
    return Transition(role, event, to, reason)


TRANSITIONS: Tuple[Transition, ...] = (
    # F: the DCS cannot be read - a primary never stays writable without a lease.
    _t(PRIMARY, DCS_UNREACHABLE, REPLICA, R.DCS_DEMOTING),
    _t(ANY, DCS_UNREACHABLE, SAME, R.DCS_NOT_ACCESSIBLE),
    # T: a background task is running.
    _t(ANY, TASK_LOCK_RENEWED, SAME, R.TASK_LOCK_UPDATED),
    _t(ANY, TASK_LOCK_LOST, REPLICA, R.TASK_LOCK_LOST),
    _t(ANY, TASK_RUNNING, SAME, R.TASK_IN_PROGRESS),
    # Results of finished tasks.
    _t(ANY, BOOTSTRAP_FAILED, EXITED, R.BOOTSTRAP_FAILED_FATAL),
    _t(ANY, BOOTSTRAP_START_FAILED, UNINITIALIZED, R.TASK_FAILED),
    _t(ANY, CLONE_FAILED, UNINITIALIZED, R.TASK_FAILED),
    _t(ANY, REWIND_FAILED_REMOVE, UNINITIALIZED, R.REWIND_FAILED_REMOVE),
    _t(ANY, BOOTSTRAP_DONE, PRIMARY, R.INITIALIZED),
    # D: empty or inaccessible data directory.
    _t(UNINITIALIZED, DATA_EMPTY_HOLDER, UNINITIALIZED, R.RELEASED_EMPTY),
    _t(UNINITIALIZED, DATA_INACCESSIBLE_HOLDER, UNINITIALIZED, R.RELEASED_INACCESSIBLE),
    _t(UNINITIALIZED, DATA_INACCESSIBLE, UNINITIALIZED, R.DATA_INACCESSIBLE),
    _t(UNINITIALIZED, EMPTY_PAUSED, UNINITIALIZED, R.EMPTY_DATA_PAUSED),
    _t(UNINITIALIZED, INIT_LOCK_LOST, UNINITIALIZED, R.INIT_LOCK_FAILED),
    _t(UNINITIALIZED, CLONE_FROM_LEADER, CLONING, R.BOOTSTRAP_FROM_LEADER),
    _t(UNINITIALIZED, CLONE_FROM_REPLICA, CLONING, R.BOOTSTRAP_FROM_REPLICA),
    _t(UNINITIALIZED, BOOTSTRAP_START, BOOTSTRAPPING, R.BOOTSTRAP_NEW),
    _t(UNINITIALIZED, WAIT_FOR_LEADER, UNINITIALIZED, R.WAITING_FOR_LEADER),
    # I: identity of the data directory.
    _t(ANY, SYSID_INVALID, SAME, R.SYSID_INVALID),
    _t(ANY, SYSID_MISMATCH, EXITED, R.SYSID_MISMATCH),
    _t(ANY, SYSID_MISMATCH_PAUSED, SAME, R.RELEASED_SYSID_MISMATCH),
    _t(UNKNOWN, PG_UNKNOWN, UNKNOWN, R.PG_ERROR),
    # S: server starting or stopped.
    _t(STARTING, STILL_STARTING, STARTING, R.STILL_STARTING),
    _t(STARTING, START_TIMEOUT_DEMOTE, STOPPED, R.START_TIMEOUT_DEMOTE),
    _t(STARTING, START_TIMEOUT_WAIT, STARTING, R.START_TIMEOUT_WAIT),
    _t(STARTING, START_LOCK_LOST, REPLICA, R.START_LOCK_LOST),
    _t(STARTING, STARTING_FOLLOWER, STARTING, R.NO_ACTION_SECONDARY),
    _t(STARTING, STARTING_LEADERLESS, STARTING, R.NO_ACTION),
    _t(STOPPED, START_FAILED_HOLDER, STOPPED, R.START_FAILED_RELEASED),
    _t(STOPPED, START_READONLY_LEADER, REPLICA, R.STARTING_READONLY_LEADER),
    _t(STOPPED, START_SECONDARY, REPLICA, R.STARTING_SECONDARY),
    # Divergence from the leader's timeline (stopped or running replica).
    _t(ANY, PROBE_DIVERGENCE, SAME, R.PROBING_DIVERGENCE),
    _t(STOPPED, REWIND_START, REWINDING, R.REWIND_RUNNING),
    _t(REPLICA, REWIND_START, REWINDING, R.REWIND_RUNNING),
    _t(STOPPED, REINIT_DIVERGED, UNINITIALIZED, R.REINIT_DIVERGED),
    _t(REPLICA, REINIT_DIVERGED, UNINITIALIZED, R.REINIT_DIVERGED),
    _t(STOPPED, DIVERGED_STAY, STOPPED, R.DIVERGED_STAY),
    _t(STOPPED, DIVERGENCE_UNKNOWN, STOPPED, R.DIVERGENCE_UNKNOWN),
    _t(STOPPED, REWIND_FAILED_WAIT, STOPPED, R.REWIND_FAILED_WAIT),
    _t(STOPPED, CRASH_RECOVERY_START, REWINDING, R.CRASH_RECOVERY),
    _t(STOPPED, CRASH_RECOVERY_FAILED, STOPPED, R.CRASH_RECOVERY_FAILED),
    # U: no leader - the race.
    _t(ANY, PROBE_PEERS, SAME, R.PROBING_PEERS),
    _t(PRIMARY, LOCK_ACQUIRED, PRIMARY, R.ACQUIRED_LOCK),
    _t(REPLICA, LOCK_ACQUIRED, PROMOTING, R.PROMOTED_BY_ACQUIRING),
    _t(PRIMARY, RACE_LOST, REPLICA, R.RACE_LOST_DEMOTED),
    _t(REPLICA, RACE_LOST, REPLICA, R.RACE_LOST_FOLLOW),
    _t(PRIMARY, NOT_HEALTHIEST, REPLICA, R.NOT_HEALTHIEST_DEMOTE),
    _t(REPLICA, NOT_HEALTHIEST, REPLICA, R.NOT_HEALTHIEST_FOLLOW),
    _t(PRIMARY, NOT_ALLOWED, REPLICA, R.NOT_ALLOWED_DEMOTE),
    _t(REPLICA, NOT_ALLOWED, REPLICA, R.NOT_ALLOWED_FOLLOW),
    # H: the lock is mine.
    _t(PRIMARY, LOCK_HELD, PRIMARY, R.NO_ACTION_LEADER),
    _t(REPLICA, LOCK_HELD, PROMOTING, R.PROMOTED_HAD_LOCK),
    _t(REPLICA, SYNC_POSTPONED, REPLICA, R.SYNC_POSTPONED),
    _t(PRIMARY, PROBE_REPLICATION, PRIMARY, R.PROBING_REPLICATION),
    _t(PRIMARY, RENEW_FAILED, REPLICA, R.RENEW_FAILED_DEMOTED),
    _t(REPLICA, RENEW_FAILED, REPLICA, R.RENEW_FAILED_NOT_PROMOTING),
    _t(PRIMARY, MANUAL_FAILOVER, REPLICA, R.MANUAL_FAILOVER_DEMOTE),
    # L: somebody else holds the lock.
    _t(PRIMARY, LOCKED_BY_OTHER, REPLICA, R.NO_LOCK_DEMOTE),
    _t(REPLICA, LOCKED_BY_OTHER, REPLICA, R.NO_ACTION_SECONDARY),
    # Paused (maintenance mode): never start, stop, promote or demote the server.
    _t(ANY, PAUSED_NOT_RUNNING, SAME, R.NOT_RUNNING),
    _t(ANY, PAUSED_NOT_RUNNING_HOLDER, SAME, R.NOT_RUNNING_RELEASED),
    _t(ANY, PAUSED_IDLE, SAME, R.NO_ACTION),
    _t(REPLICA, PAUSED_NOT_PRIMARY_HOLDER, REPLICA, R.REMOVED_LOCK_NOT_PRIMARY),
    _t(PRIMARY, PAUSED_RENEW_FAILED, PRIMARY, R.RENEW_FAILED_PAUSED),
    _t(PRIMARY, PAUSED_NO_LOCK, PRIMARY, R.PRIMARY_WITHOUT_LOCK_PAUSED),
    # Operator commands (POST /restart, POST /reinitialize).
    _t(ANY, OPERATOR_RESTART, BUSY, R.RESTART_INITIATED),
    _t(ANY, OPERATOR_REINITIALIZE, CLONING, R.TASK_IN_PROGRESS),
    # watchdog.mode required and the watchdog could not be armed (core/fencing.py).
    _t(PRIMARY, WATCHDOG_FAILED_DEMOTE, REPLICA, R.WATCHDOG_DEMOTE),
    _t(ANY, WATCHDOG_FAILED_NOT_PROMOTING, SAME, R.WATCHDOG_NOT_PROMOTING),
    # The DCS cannot be read, continued (core/failsafe.py): in pause nothing changes; with
    # failsafe_mode the primary asks every member in /failsafe and stays while all answer.
    _t(ANY, DCS_UNREACHABLE_PAUSED, SAME, R.DCS_NOT_ACCESSIBLE),
    _t(ANY, DCS_UNREACHABLE_LEASE, SAME, R.DCS_LEASE_RUNS),
    _t(ANY, FAILSAFE_CALL, SAME, R.CALLING_FAILSAFE),
    _t(ANY, FAILSAFE_STAY, SAME, R.FAILSAFE_LEADER),
)

_INDEX: Dict[Tuple[str, str], Transition] = {(t.role, t.event): t for t in TRANSITIONS}


def transition(role: str, event: str) -> Transition:
    """The row for (role, event), falling back to the (ANY, event) row.
    Raises KeyError for a pair the table does not allow: decide() only names
    events that are legal for the role it computed, and the tests hold it to that."""
    row = _INDEX.get((role, event)) or _INDEX.get((ANY, event))
    if row is None:
        raise KeyError(f"no transition for role {role!r} on event {event!r}")
    return row


def target_role(row: Transition, role: str) -> str:
    return role if row.to == SAME else row.to
