"""Reason code -> the Patroni 3.0.2 cycle result sentence (spec Appendix A).

The HA loop logs `render(decision.reason)` once per cycle at INFO, exactly as
Patroni logs the return value of its `run_cycle()`; tools that grep Patroni logs
keep working.  Sentences marked "qhb-patroni" have no Patroni counterpart.
"""
from __future__ import annotations

import string
from typing import Any, Dict, Mapping

from .core import reasons as R
from .core.observation import Reason

MESSAGES: Dict[str, str] = {
    # steady state
    R.NO_ACTION_LEADER: "no action. I am ({me}), the leader with the lock",
    R.NO_ACTION_SECONDARY: "no action. I am ({me}), a secondary, and following a leader ({leader})",
    R.NO_ACTION_STANDBY_LEADER: "no action. I am ({me}), the standby leader with the lock",
    R.NO_ACTION_STANDBY_SECONDARY: "no action. I am ({me}), a secondary, and following a standby leader ({leader})",
    R.NO_ACTION: "no action. I am ({me})",
    # becoming leader
    R.ACQUIRED_LOCK: "acquired session lock as a leader",
    R.PROMOTED_BY_ACQUIRING: "promoted self to leader by acquiring session lock",
    R.PROMOTED_HAD_LOCK: "promoted self to leader because I had the session lock",
    R.PROMOTED_STANDBY_BY_ACQUIRING: "promoted self to a standby leader by acquiring session lock",
    R.PROMOTED_STANDBY_HAD_LOCK: "promoted self to a standby leader because i had the session lock",
    R.WAITING_AFTER_PROMOTE: "waiting to become primary after promote...",
    # losing / not winning
    R.RACE_LOST_DEMOTED: "demoted self after trying and failing to obtain lock",
    R.RACE_LOST_FOLLOW: "following new leader after trying and failing to obtain lock",
    R.NOT_HEALTHIEST_DEMOTE: "demoting self because i am not the healthiest node",
    R.NOT_HEALTHIEST_FOLLOW: "following a different leader because i am not the healthiest node",
    R.NOT_ALLOWED_DEMOTE: "demoting self because I am not allowed to become primary",
    R.NOT_ALLOWED_FOLLOW: "following a different leader because I am not allowed to promote",
    R.NO_LOCK_DEMOTE: "demoting self because I do not have the lock and I was a leader",
    R.STANDBY_CANNOT_BE_PRIMARY: "cannot be a real primary in a standby cluster",
    R.RENEW_FAILED_DEMOTED: "demoted self because failed to update leader lock in DCS",
    R.RENEW_FAILED_NOT_PROMOTING: "not promoting because failed to update leader lock in DCS",
    R.RENEW_FAILED_PAUSED: "continue to run as primary after failing to update leader lock in DCS",
    R.PRIMARY_WITHOUT_LOCK_PAUSED: "continue to run as primary without lock",
    R.OLD_STANDBY_LEADER: "continue following the old known standby leader",
    R.REMOVED_LOCK_NOT_PRIMARY: "removed leader lock because postgres is not running as primary",
    # promotion guards
    R.WATCHDOG_DEMOTE: "Demoting self because watchdog could not be activated",
    R.WATCHDOG_NOT_PROMOTING: "Not promoting self because watchdog could not be activated",
    R.PRE_PROMOTE_FAILED: "Promotion cancelled because the pre-promote script failed",
    R.SYNC_POSTPONED: "Postponing promotion because synchronous replication state was updated by somebody else",
    R.LOST_LEADER_BEFORE_PROMOTE: "lost leader before promote",
    # DCS trouble
    R.DCS_NOT_ACCESSIBLE: "DCS is not accessible",
    R.DCS_DEMOTING: "demoting self because DCS is not accessible and I was a leader",
    R.DCS_DEMOTED: "demoted self because DCS is not accessible and I was a leader",
    R.CANCELLING_FOR_REINIT: "cancelling {action} for a forced reinitialize",
    R.SYNC_HAND_OVER: "waiting for the primary to name another synchronous standby (nosync published)",
    R.SHUTDOWN_PAUSED: "shutting down: paused, leaving the database server running",
    R.SHUTDOWN_WAIT_TASK: "shutting down: waiting for {action} to end",
    R.SHUTDOWN_STOP: "shutting down: stopping the database server and releasing the leader key if held",
    R.SHUTDOWN_STOP_FAILED: "shutting down: the database server did not stop; the leader key is kept until it expires",
    R.CYCLES_FAILING: "the last {failed} HA cycle(s) failed; waiting for the next one",
    R.CYCLES_FAILING_DEMOTE: "demoting self because the last {failed} HA cycle(s) failed and the leader lock "
                             "cannot be kept",
    R.FAILSAFE_LEADER: "continue to run as a leader because failsafe mode is enabled and all members are accessible",
    # manual actions and tasks
    R.MANUAL_FAILOVER_DEMOTE: "manual failover: demoting myself",
    R.RESTART_INITIATED: "restart initiated",
    R.TASK_IN_PROGRESS: "{action} in progress",
    R.TASK_LOCK_UPDATED: "updated leader lock during {action}",
    R.TASK_LOCK_LOST: "lost leader lock during {action}",
    R.TASK_REFUSED: "Failed to run {action}, {other} is already in progress",
    R.TASK_FAILED: "failed to {action}",  # e.g. "failed to bootstrap from leader 'n1'"
    # start / crash
    R.STARTING_SECONDARY: "starting as a secondary",
    R.STARTING_READONLY_LEADER: "starting as readonly because i had the session lock",
    R.STARTING_STANDBY_LEADER: "starting as a standby leader because i had the session lock",
    R.FOLLOW_REMOTE_UNHEALTHY: "trying to follow a remote member because standby cluster is unhealthy",
    R.CRASH_FAILOVER: "stopped PostgreSQL to fail over after a crash",
    R.CRASH_RECOVERY: "doing crash recovery in a single user mode",
    R.CRASH_RECOVERY_TIMEOUT: "terminated crash recovery because of startup timeout",
    R.CRASH_RECOVERY_FAILED: (
        "crash recovery in single user mode failed, not starting postgres; reinitialize this member"
    ),
    R.CRASH_RECOVERY_RETRY_WAIT: "crash recovery could not run, trying again in {seconds} seconds",
    R.CRASH_CHECK_STOP: "postgres does not answer and has not shut down cleanly: stopping it before crash recovery",
    R.CRASH_CHECK_STOP_FAILED: "failed to stop postgres before crash recovery, trying again",
    R.STILL_STARTING: "PostgreSQL is still starting up, {seconds} seconds until timeout",
    R.START_TIMEOUT_DEMOTE: "stopped PostgreSQL because of startup timeout",
    R.START_TIMEOUT_WAIT: "primary start has timed out, but continuing to wait because failover is not possible",
    R.START_LOCK_LOST: "stopped PostgreSQL while starting up because leader key was lost",
    R.START_FAILED_RELEASED: "removed leader key after trying and failing to start postgres",
    R.CRASH_FAILOVER: "stopped PostgreSQL to fail over after a crash",
    R.START_FAILED: "failed to start postgres",
    R.NOT_RUNNING: "postgres is not running",
    R.NOT_RUNNING_RELEASED: "removed leader lock because postgres is not running",
    # rewind / reinit
    R.REWIND_RUNNING: "running pg_rewind from {leader}",
    R.REINIT_DIVERGED: "reinitializing due to diverged timelines",
    R.REWIND_FAILED_WAIT: "pg_rewind from {leader} failed, not starting postgres; reinitialize this member",
    R.REWIND_FAILED_REMOVE: "removing data directory after failed pg_rewind",
    R.DIVERGENCE_UNKNOWN: "not starting postgres: could not check timeline divergence against {leader}",
    R.DIVERGED_STAY: "not starting postgres: timelines diverged from {leader} and pg_rewind is not possible",
    # bootstrap
    R.BOOTSTRAP_NEW: "trying to bootstrap a new cluster",
    R.BOOTSTRAP_STANDBY_NEW: "trying to bootstrap a new standby leader",
    R.INIT_LOCK_FAILED: "failed to acquire initialize lock",
    R.BOOTSTRAP_FROM_LEADER: "trying to bootstrap from leader '{source}'",
    R.BOOTSTRAP_FROM_REPLICA: "trying to bootstrap from replica '{source}'",
    R.BOOTSTRAP_WITHOUT_LEADER: "trying to bootstrap (without leader)",
    R.COPYING_LOGICAL_SLOTS: "Copying logical slots {slots} from the primary",
    R.STANDBY_LOCK_ACQUIRED: "promoted self to a standby leader by acquiring session lock",
    R.STANDBY_LEADER_HOLDING: "no action. I am ({me}), the standby leader with the lock",
    R.STANDBY_LEADER_FOLLOWING_REMOTE: "promoted self to a standby leader because i had the session lock",
    R.STANDBY_FOLLOWING: "no action. I am ({me}), a secondary, and following a standby leader ({leader})",
    R.STANDBY_START_LEADER: "starting as a standby leader because i had the session lock",
    R.STANDBY_FOLLOW_REMOTE: "trying to follow a remote member because standby cluster is unhealthy",
    R.STANDBY_BOOTSTRAP_FAILED: "failed to bootstrap a standby leader from standby_cluster: {error}",
    R.WAITING_FOR_LEADER: "waiting for leader to bootstrap",
    R.WAITING_FOR_STANDBY_LEADER: "waiting for standby_leader to bootstrap",
    R.WAITING_END_OF_RECOVERY: "waiting for end of recovery after bootstrap",
    R.RUNNING_POST_BOOTSTRAP: "running post_bootstrap",
    R.INITIALIZED: "initialized a new cluster",
    R.EMPTY_DATA_PAUSED: "running with empty data directory",
    R.BOOTSTRAP_FAILED_FATAL: "Failed to bootstrap cluster",
    # data dir / identity
    R.RELEASED_EMPTY: "released leader key voluntarily as data dir empty and currently leader",
    R.RELEASED_INACCESSIBLE: "released leader key voluntarily as data dir not accessible and currently leader",
    R.DATA_INACCESSIBLE: "data directory is not accessible: {error}",
    R.SYSID_INVALID: "data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize",
    R.RELEASED_SYSID_MISMATCH: "released leader key voluntarily due to the system ID mismatch",
    R.SYSID_MISMATCH: "system ID mismatch, node {me} belongs to a different cluster: {cluster} != {mine}",
    # probes
    R.PROBING_PEERS: "asking the other members before the leader race",
    R.PROBING_REPLICATION: "reading the replication state to manage synchronous standbys",
    R.PROBING_DIVERGENCE: "checking timeline divergence against {leader}",
    R.DCS_LEASE_RUNS: "DCS is not accessible; still the leader for {seconds} s (the leader key cannot expire before)",
    R.CALLING_FAILSAFE: "DCS is not accessible: asking the members in /failsafe to keep me as leader",
    # misc
    R.COPY_LOGICAL_SLOTS: "Copying logical slots {names} from the primary",
    R.PG_ERROR: "Error communicating with PostgreSQL. Will try again later",
    R.UNEXPECTED: "Unexpected exception raised, please report it as a BUG",
}


class _Lenient(Dict[str, Any]):
    """Missing arguments render as '?' instead of raising from a log call."""

    def __missing__(self, key: str) -> str:
        return "?"


def render(reason: Reason) -> str:
    """The log sentence for `reason`; unknown codes render as the code itself."""
    template = MESSAGES.get(reason.code)
    if template is None:
        return reason.code
    return string.Formatter().vformat(template, (), _Lenient(_stringify(reason.args)))


def _stringify(args: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: ("None" if v is None else v) for k, v in args.items()}
