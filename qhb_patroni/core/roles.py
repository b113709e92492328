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
from enum import Enum
from typing import Dict, Final, Literal, Tuple, Union

from . import reasons as R
from .local import DATA_PRESENT, STATE_STARTING, TaskKind
from .observation import Observation


# ---- roles -------------------------------------------------------------------
class Role(str, Enum):
    """The node's coarse situation as the core sees it."""

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

    def __str__(self) -> str:
        return self.value


UNINITIALIZED = Role.UNINITIALIZED
BOOTSTRAPPING = Role.BOOTSTRAPPING
CLONING = Role.CLONING
REWINDING = Role.REWINDING
PROMOTING = Role.PROMOTING
BUSY = Role.BUSY
STOPPED = Role.STOPPED
STARTING = Role.STARTING
REPLICA = Role.REPLICA
PRIMARY = Role.PRIMARY
UNKNOWN = Role.UNKNOWN
EXITED = Role.EXITED

ROLES: Tuple[Role, ...] = tuple(Role)
ANY: Final = "*"  # from-role wildcard
SAME: Final = "="  # to-role: unchanged
FromRole = Union[Role, Literal["*"]]
ToRole = Union[Role, Literal["="]]

_TASK_ROLES = {
    TaskKind.BOOTSTRAP: BOOTSTRAPPING, TaskKind.CLONE: CLONING, TaskKind.REWIND: REWINDING,
    TaskKind.PROMOTE: PROMOTING, TaskKind.REINITIALIZE: CLONING, TaskKind.CRASH_RECOVERY: REWINDING,
}


def current_role(obs: Observation) -> Role:
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
class Event(str, Enum):
    """What decide() saw; with the role it keys the transition table."""

    DCS_UNREACHABLE = "dcs_unreachable"
    CYCLES_FAILING_DEMOTE = "cycles_failing_demote"
    CYCLES_FAILING = "cycles_failing"
    TASK_RUNNING = "task_running"
    TASK_LOCK_RENEWED = "task_lock_renewed"
    TASK_LOCK_LOST = "task_lock_lost"
    BOOTSTRAP_FAILED = "bootstrap_failed"
    BOOTSTRAP_START_FAILED = "bootstrap_start_failed"
    CLONE_FAILED = "clone_failed"
    REWIND_FAILED_REMOVE = "rewind_failed_remove"
    PRE_PROMOTE_FAILED = "pre_promote_failed"
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
    PG_UNKNOWN_HOLDER = "pg_unknown_holder"
    STILL_STARTING = "still_starting"
    START_TIMEOUT_DEMOTE = "start_timeout_demote"
    START_TIMEOUT_WAIT = "start_timeout_wait"
    START_LOCK_LOST = "start_lock_lost"
    STARTING_FOLLOWER = "starting_follower"
    STARTING_LEADERLESS = "starting_leaderless"
    START_FAILED_HOLDER = "start_failed_holder"
    CRASH_FAILOVER = "crash_failover"
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
    CRASH_RECOVERY_RETRY_WAIT = "crash_recovery_retry_wait"
    CRASH_CHECK_STOP = "crash_check_stop"
    CRASH_CHECK_STOP_FAILED = "crash_check_stop_failed"
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
    CANCEL_FOR_REINIT = "cancel_for_reinit"
    SYNC_HAND_OVER = "sync_hand_over"
    SHUTDOWN_PAUSED = "shutdown_paused"
    SHUTDOWN_WAIT_TASK = "shutdown_wait_task"
    SHUTDOWN_STOP = "shutdown_stop"
    SHUTDOWN_STOP_FAILED = "shutdown_stop_failed"
    CLONE_WITHOUT_LEADER = "clone_without_leader"
    COPY_LOGICAL_SLOTS = "copy_logical_slots"
    STANDBY_LOCK_ACQUIRED = "standby_lock_acquired"
    STANDBY_LEADER_HOLD = "standby_leader_hold"
    STANDBY_LEADER_REFOLLOW = "standby_leader_refollow"
    STANDBY_FOLLOWING = "standby_following"
    STANDBY_START_LEADER = "standby_start_leader"
    STANDBY_FOLLOW_REMOTE = "standby_follow_remote"
    STANDBY_BOOTSTRAP_START = "standby_bootstrap_start"
    STANDBY_BOOTSTRAP_FAILED = "standby_bootstrap_failed"
    STANDBY_BOOTSTRAP_DONE = "standby_bootstrap_done"
    STANDBY_WAIT = "standby_wait"
    WATCHDOG_FAILED_DEMOTE = "watchdog_failed_demote"
    WATCHDOG_FAILED_NOT_PROMOTING = "watchdog_failed_not_promoting"
    DCS_UNREACHABLE_PAUSED = "dcs_unreachable_paused"
    DCS_UNREACHABLE_LEASE = "dcs_unreachable_lease"
    FAILSAFE_CALL = "failsafe_call"
    FAILSAFE_STAY = "failsafe_stay"

    def __str__(self) -> str:
        return self.value


DCS_UNREACHABLE = Event.DCS_UNREACHABLE
CYCLES_FAILING_DEMOTE = Event.CYCLES_FAILING_DEMOTE
CYCLES_FAILING = Event.CYCLES_FAILING
TASK_RUNNING = Event.TASK_RUNNING
TASK_LOCK_RENEWED = Event.TASK_LOCK_RENEWED
TASK_LOCK_LOST = Event.TASK_LOCK_LOST
BOOTSTRAP_FAILED = Event.BOOTSTRAP_FAILED
BOOTSTRAP_START_FAILED = Event.BOOTSTRAP_START_FAILED
CLONE_FAILED = Event.CLONE_FAILED
REWIND_FAILED_REMOVE = Event.REWIND_FAILED_REMOVE
PRE_PROMOTE_FAILED = Event.PRE_PROMOTE_FAILED
BOOTSTRAP_DONE = Event.BOOTSTRAP_DONE
DATA_EMPTY_HOLDER = Event.DATA_EMPTY_HOLDER
DATA_INACCESSIBLE_HOLDER = Event.DATA_INACCESSIBLE_HOLDER
DATA_INACCESSIBLE = Event.DATA_INACCESSIBLE
EMPTY_PAUSED = Event.EMPTY_PAUSED
INIT_LOCK_LOST = Event.INIT_LOCK_LOST
CLONE_FROM_LEADER = Event.CLONE_FROM_LEADER
CLONE_FROM_REPLICA = Event.CLONE_FROM_REPLICA
BOOTSTRAP_START = Event.BOOTSTRAP_START
WAIT_FOR_LEADER = Event.WAIT_FOR_LEADER
SYSID_INVALID = Event.SYSID_INVALID
SYSID_MISMATCH = Event.SYSID_MISMATCH
SYSID_MISMATCH_PAUSED = Event.SYSID_MISMATCH_PAUSED
PG_UNKNOWN = Event.PG_UNKNOWN
PG_UNKNOWN_HOLDER = Event.PG_UNKNOWN_HOLDER
STILL_STARTING = Event.STILL_STARTING
START_TIMEOUT_DEMOTE = Event.START_TIMEOUT_DEMOTE
START_TIMEOUT_WAIT = Event.START_TIMEOUT_WAIT
START_LOCK_LOST = Event.START_LOCK_LOST
STARTING_FOLLOWER = Event.STARTING_FOLLOWER
STARTING_LEADERLESS = Event.STARTING_LEADERLESS
START_FAILED_HOLDER = Event.START_FAILED_HOLDER
CRASH_FAILOVER = Event.CRASH_FAILOVER
START_READONLY_LEADER = Event.START_READONLY_LEADER
START_SECONDARY = Event.START_SECONDARY
PROBE_DIVERGENCE = Event.PROBE_DIVERGENCE
REWIND_START = Event.REWIND_START
REINIT_DIVERGED = Event.REINIT_DIVERGED
DIVERGED_STAY = Event.DIVERGED_STAY
DIVERGENCE_UNKNOWN = Event.DIVERGENCE_UNKNOWN
REWIND_FAILED_WAIT = Event.REWIND_FAILED_WAIT
CRASH_RECOVERY_START = Event.CRASH_RECOVERY_START
CRASH_RECOVERY_FAILED = Event.CRASH_RECOVERY_FAILED
CRASH_RECOVERY_RETRY_WAIT = Event.CRASH_RECOVERY_RETRY_WAIT
CRASH_CHECK_STOP = Event.CRASH_CHECK_STOP
CRASH_CHECK_STOP_FAILED = Event.CRASH_CHECK_STOP_FAILED
PROBE_PEERS = Event.PROBE_PEERS
LOCK_ACQUIRED = Event.LOCK_ACQUIRED
RACE_LOST = Event.RACE_LOST
NOT_HEALTHIEST = Event.NOT_HEALTHIEST
NOT_ALLOWED = Event.NOT_ALLOWED
LOCK_HELD = Event.LOCK_HELD
SYNC_POSTPONED = Event.SYNC_POSTPONED
PROBE_REPLICATION = Event.PROBE_REPLICATION
RENEW_FAILED = Event.RENEW_FAILED
LOCKED_BY_OTHER = Event.LOCKED_BY_OTHER
MANUAL_FAILOVER = Event.MANUAL_FAILOVER
PAUSED_NOT_RUNNING = Event.PAUSED_NOT_RUNNING
PAUSED_NOT_RUNNING_HOLDER = Event.PAUSED_NOT_RUNNING_HOLDER
PAUSED_IDLE = Event.PAUSED_IDLE
PAUSED_NOT_PRIMARY_HOLDER = Event.PAUSED_NOT_PRIMARY_HOLDER
PAUSED_RENEW_FAILED = Event.PAUSED_RENEW_FAILED
PAUSED_NO_LOCK = Event.PAUSED_NO_LOCK
OPERATOR_RESTART = Event.OPERATOR_RESTART
OPERATOR_REINITIALIZE = Event.OPERATOR_REINITIALIZE
CANCEL_FOR_REINIT = Event.CANCEL_FOR_REINIT
SYNC_HAND_OVER = Event.SYNC_HAND_OVER
SHUTDOWN_PAUSED = Event.SHUTDOWN_PAUSED
SHUTDOWN_WAIT_TASK = Event.SHUTDOWN_WAIT_TASK
SHUTDOWN_STOP = Event.SHUTDOWN_STOP
SHUTDOWN_STOP_FAILED = Event.SHUTDOWN_STOP_FAILED
CLONE_WITHOUT_LEADER = Event.CLONE_WITHOUT_LEADER
COPY_LOGICAL_SLOTS = Event.COPY_LOGICAL_SLOTS
STANDBY_LOCK_ACQUIRED = Event.STANDBY_LOCK_ACQUIRED
STANDBY_LEADER_HOLD = Event.STANDBY_LEADER_HOLD
STANDBY_LEADER_REFOLLOW = Event.STANDBY_LEADER_REFOLLOW
STANDBY_FOLLOWING = Event.STANDBY_FOLLOWING
STANDBY_START_LEADER = Event.STANDBY_START_LEADER
STANDBY_FOLLOW_REMOTE = Event.STANDBY_FOLLOW_REMOTE
STANDBY_BOOTSTRAP_START = Event.STANDBY_BOOTSTRAP_START
STANDBY_BOOTSTRAP_FAILED = Event.STANDBY_BOOTSTRAP_FAILED
STANDBY_BOOTSTRAP_DONE = Event.STANDBY_BOOTSTRAP_DONE
STANDBY_WAIT = Event.STANDBY_WAIT
WATCHDOG_FAILED_DEMOTE = Event.WATCHDOG_FAILED_DEMOTE
WATCHDOG_FAILED_NOT_PROMOTING = Event.WATCHDOG_FAILED_NOT_PROMOTING
DCS_UNREACHABLE_PAUSED = Event.DCS_UNREACHABLE_PAUSED
DCS_UNREACHABLE_LEASE = Event.DCS_UNREACHABLE_LEASE
FAILSAFE_CALL = Event.FAILSAFE_CALL
FAILSAFE_STAY = Event.FAILSAFE_STAY


@dataclass(frozen=True)
class Transition:
    role: FromRole  # from-role, or ANY
    event: Event
    to: ToRole  # to-role, or SAME
    reason: str  # reason code (qhb_patroni.messages)


def _t(role: FromRole, event: Event, to: ToRole, reason: str) -> Transition:
    return Transition(role, event, to, reason)


TRANSITIONS: Tuple[Transition, ...] = (
    # F: the DCS cannot be read - a primary never stays writable without a lease.
    _t(PRIMARY, DCS_UNREACHABLE, REPLICA, R.DCS_DEMOTING),
    _t(ANY, DCS_UNREACHABLE, SAME, R.DCS_NOT_ACCESSIBLE),
    # C: HA cycles keep failing (an unexpected error): a primary demotes before its lease ends.
    _t(PRIMARY, CYCLES_FAILING_DEMOTE, REPLICA, R.CYCLES_FAILING_DEMOTE),
    _t(ANY, CYCLES_FAILING, SAME, R.CYCLES_FAILING),
    # T: a background task is running.
    _t(ANY, TASK_LOCK_RENEWED, SAME, R.TASK_LOCK_UPDATED),
    _t(ANY, TASK_LOCK_LOST, REPLICA, R.TASK_LOCK_LOST),
    _t(ANY, TASK_RUNNING, SAME, R.TASK_IN_PROGRESS),
    # Results of finished tasks.
    _t(ANY, BOOTSTRAP_FAILED, EXITED, R.BOOTSTRAP_FAILED_FATAL),
    _t(ANY, BOOTSTRAP_START_FAILED, UNINITIALIZED, R.TASK_FAILED),
    _t(ANY, CLONE_FAILED, UNINITIALIZED, R.TASK_FAILED),
    _t(ANY, REWIND_FAILED_REMOVE, UNINITIALIZED, R.REWIND_FAILED_REMOVE),
    _t(ANY, PRE_PROMOTE_FAILED, SAME, R.PRE_PROMOTE_FAILED),
    _t(ANY, BOOTSTRAP_DONE, PRIMARY, R.INITIALIZED),
    # D: empty or inaccessible data directory.
    _t(UNINITIALIZED, DATA_EMPTY_HOLDER, UNINITIALIZED, R.RELEASED_EMPTY),
    _t(UNINITIALIZED, DATA_INACCESSIBLE_HOLDER, UNINITIALIZED, R.RELEASED_INACCESSIBLE),
    _t(UNINITIALIZED, DATA_INACCESSIBLE, UNINITIALIZED, R.DATA_INACCESSIBLE),
    _t(UNINITIALIZED, EMPTY_PAUSED, UNINITIALIZED, R.EMPTY_DATA_PAUSED),
    _t(UNINITIALIZED, INIT_LOCK_LOST, UNINITIALIZED, R.INIT_LOCK_FAILED),
    _t(UNINITIALIZED, CLONE_FROM_LEADER, CLONING, R.BOOTSTRAP_FROM_LEADER),
    _t(UNINITIALIZED, CLONE_FROM_REPLICA, CLONING, R.BOOTSTRAP_FROM_REPLICA),
    _t(UNINITIALIZED, CLONE_WITHOUT_LEADER, CLONING, R.BOOTSTRAP_WITHOUT_LEADER),
    _t(REPLICA, COPY_LOGICAL_SLOTS, BUSY, R.COPYING_LOGICAL_SLOTS),
    _t(UNINITIALIZED, BOOTSTRAP_START, BOOTSTRAPPING, R.BOOTSTRAP_NEW),
    _t(UNINITIALIZED, WAIT_FOR_LEADER, UNINITIALIZED, R.WAITING_FOR_LEADER),
    # I: identity of the data directory.
    _t(ANY, SYSID_INVALID, SAME, R.SYSID_INVALID),
    _t(ANY, SYSID_MISMATCH, EXITED, R.SYSID_MISMATCH),
    _t(ANY, SYSID_MISMATCH_PAUSED, SAME, R.RELEASED_SYSID_MISMATCH),
    _t(UNKNOWN, PG_UNKNOWN, UNKNOWN, R.PG_ERROR),
    _t(UNKNOWN, PG_UNKNOWN_HOLDER, UNKNOWN, R.NO_ACTION_LEADER),  # renewed on the role it last had
    # S: server starting or stopped.
    _t(STARTING, STILL_STARTING, STARTING, R.STILL_STARTING),
    _t(STARTING, START_TIMEOUT_DEMOTE, REPLICA, R.START_TIMEOUT_DEMOTE),  # Demote restarts it read-only
    _t(STARTING, START_TIMEOUT_WAIT, STARTING, R.START_TIMEOUT_WAIT),
    _t(STARTING, START_LOCK_LOST, REPLICA, R.START_LOCK_LOST),
    _t(STARTING, STARTING_FOLLOWER, STARTING, R.NO_ACTION_SECONDARY),
    _t(STARTING, STARTING_LEADERLESS, STARTING, R.NO_ACTION),
    _t(STOPPED, START_FAILED_HOLDER, STOPPED, R.START_FAILED_RELEASED),
    _t(STOPPED, CRASH_FAILOVER, STOPPED, R.CRASH_FAILOVER),
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
    _t(STOPPED, CRASH_RECOVERY_RETRY_WAIT, STOPPED, R.CRASH_RECOVERY_RETRY_WAIT),
    _t(STOPPED, CRASH_CHECK_STOP, STOPPED, R.CRASH_CHECK_STOP),
    _t(STOPPED, CRASH_CHECK_STOP_FAILED, STOPPED, R.CRASH_CHECK_STOP_FAILED),
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
    # Standby cluster: the lock holder follows the remote primary and is never promoted.
    _t(ANY, STANDBY_LOCK_ACQUIRED, REPLICA, R.STANDBY_LOCK_ACQUIRED),
    _t(REPLICA, STANDBY_LEADER_HOLD, REPLICA, R.STANDBY_LEADER_HOLDING),
    _t(ANY, STANDBY_LEADER_REFOLLOW, REPLICA, R.STANDBY_LEADER_FOLLOWING_REMOTE),
    _t(REPLICA, STANDBY_FOLLOWING, REPLICA, R.STANDBY_FOLLOWING),
    _t(STOPPED, STANDBY_START_LEADER, REPLICA, R.STANDBY_START_LEADER),
    _t(ANY, STANDBY_FOLLOW_REMOTE, REPLICA, R.STANDBY_FOLLOW_REMOTE),
    _t(UNINITIALIZED, STANDBY_BOOTSTRAP_START, CLONING, R.BOOTSTRAP_STANDBY_NEW),
    _t(ANY, STANDBY_BOOTSTRAP_FAILED, UNINITIALIZED, R.STANDBY_BOOTSTRAP_FAILED),
    _t(ANY, STANDBY_BOOTSTRAP_DONE, REPLICA, R.INITIALIZED),
    _t(UNINITIALIZED, STANDBY_WAIT, UNINITIALIZED, R.WAITING_FOR_STANDBY_LEADER),
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
    # A forced reinitialize cancels the running task; the same cycle then decides the
    # reinitialize (row above) on what the cancellation left.
    _t(ANY, CANCEL_FOR_REINIT, SAME, R.CANCELLING_FOR_REINIT),
    # A synchronous standby about to stop (planned stop, restart, reinitialize) publishes
    # nosync and waits until the primary names another standby.
    _t(ANY, SYNC_HAND_OVER, SAME, R.SYNC_HAND_OVER),
    # The planned stop (SIGTERM): stop the server, release the lock, exit.
    _t(ANY, SHUTDOWN_PAUSED, SAME, R.SHUTDOWN_PAUSED),
    _t(ANY, SHUTDOWN_WAIT_TASK, SAME, R.SHUTDOWN_WAIT_TASK),
    _t(PRIMARY, SHUTDOWN_STOP, STOPPED, R.SHUTDOWN_STOP),
    _t(REPLICA, SHUTDOWN_STOP, STOPPED, R.SHUTDOWN_STOP),
    _t(STARTING, SHUTDOWN_STOP, STOPPED, R.SHUTDOWN_STOP),
    _t(UNKNOWN, SHUTDOWN_STOP, STOPPED, R.SHUTDOWN_STOP),
    _t(ANY, SHUTDOWN_STOP, SAME, R.SHUTDOWN_STOP),
    _t(ANY, SHUTDOWN_STOP_FAILED, SAME, R.SHUTDOWN_STOP_FAILED),
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
    return role if row.to == SAME else str(row.to)
