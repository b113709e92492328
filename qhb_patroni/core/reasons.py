"""Reason codes of the decision core.

A `Reason.code` is one of these constants; `qhb_patroni.messages` turns it into
the Patroni 3.0.2 cycle sentence (Appendix A of the spec).  Codes are plain
strings so that a `Decision` stays printable and comparable in tests.
"""
from __future__ import annotations

# steady state
NO_ACTION_LEADER = "no_action_leader"
NO_ACTION_SECONDARY = "no_action_secondary"
NO_ACTION_STANDBY_LEADER = "no_action_standby_leader"
NO_ACTION_STANDBY_SECONDARY = "no_action_standby_secondary"
NO_ACTION = "no_action"

# becoming leader
ACQUIRED_LOCK = "acquired_lock"
PROMOTED_BY_ACQUIRING = "promoted_by_acquiring"
PROMOTED_HAD_LOCK = "promoted_had_lock"
PROMOTED_STANDBY_BY_ACQUIRING = "promoted_standby_by_acquiring"
PROMOTED_STANDBY_HAD_LOCK = "promoted_standby_had_lock"
WAITING_AFTER_PROMOTE = "waiting_after_promote"

# losing / not winning
RACE_LOST_DEMOTED = "race_lost_demoted"
RACE_LOST_FOLLOW = "race_lost_follow"
NOT_HEALTHIEST_DEMOTE = "not_healthiest_demote"
NOT_HEALTHIEST_FOLLOW = "not_healthiest_follow"
NOT_ALLOWED_DEMOTE = "not_allowed_demote"
NOT_ALLOWED_FOLLOW = "not_allowed_follow"
NO_LOCK_DEMOTE = "no_lock_demote"
STANDBY_CANNOT_BE_PRIMARY = "standby_cannot_be_primary"
RENEW_FAILED_DEMOTED = "renew_failed_demoted"
RENEW_FAILED_NOT_PROMOTING = "renew_failed_not_promoting"
RENEW_FAILED_PAUSED = "renew_failed_paused"
PRIMARY_WITHOUT_LOCK_PAUSED = "primary_without_lock_paused"
OLD_STANDBY_LEADER = "old_standby_leader"
REMOVED_LOCK_NOT_PRIMARY = "removed_lock_not_primary"

# promotion guards
WATCHDOG_DEMOTE = "watchdog_demote"
WATCHDOG_NOT_PROMOTING = "watchdog_not_promoting"
PRE_PROMOTE_FAILED = "pre_promote_failed"
SYNC_POSTPONED = "sync_postponed"
LOST_LEADER_BEFORE_PROMOTE = "lost_leader_before_promote"

# DCS trouble
DCS_NOT_ACCESSIBLE = "dcs_not_accessible"
DCS_DEMOTING = "dcs_demoting"
DCS_DEMOTED = "dcs_demoted"
CYCLES_FAILING = "cycles_failing"
CYCLES_FAILING_DEMOTE = "cycles_failing_demote"
CANCELLING_FOR_REINIT = "cancelling_for_reinit"
SYNC_HAND_OVER = "sync_hand_over"
SHUTDOWN_PAUSED = "shutdown_paused"
SHUTDOWN_WAIT_TASK = "shutdown_wait_task"
SHUTDOWN_STOP = "shutdown_stop"
SHUTDOWN_STOP_FAILED = "shutdown_stop_failed"
FAILSAFE_LEADER = "failsafe_leader"

# manual actions and background tasks
MANUAL_FAILOVER_DEMOTE = "manual_failover_demote"
RESTART_INITIATED = "restart_initiated"
TASK_IN_PROGRESS = "task_in_progress"
TASK_LOCK_UPDATED = "task_lock_updated"
TASK_LOCK_LOST = "task_lock_lost"
TASK_REFUSED = "task_refused"
TASK_FAILED = "task_failed"

# start / crash
STARTING_SECONDARY = "starting_secondary"
STARTING_READONLY_LEADER = "starting_readonly_leader"
STARTING_STANDBY_LEADER = "starting_standby_leader"
FOLLOW_REMOTE_UNHEALTHY = "follow_remote_unhealthy"
CRASH_FAILOVER = "crash_failover"
CRASH_RECOVERY = "crash_recovery"
CRASH_RECOVERY_TIMEOUT = "crash_recovery_timeout"
CRASH_RECOVERY_FAILED = "crash_recovery_failed"  # qhb-patroni addition
CRASH_RECOVERY_RETRY_WAIT = "crash_recovery_retry_wait"  # qhb-patroni addition
CRASH_CHECK_STOP = "crash_check_stop"  # qhb-patroni addition
CRASH_CHECK_STOP_FAILED = "crash_check_stop_failed"  # qhb-patroni addition
STILL_STARTING = "still_starting"
START_TIMEOUT_DEMOTE = "start_timeout_demote"
START_TIMEOUT_WAIT = "start_timeout_wait"
START_LOCK_LOST = "start_lock_lost"
START_FAILED_RELEASED = "start_failed_released"
CRASH_FAILOVER = "crash_failover"
START_FAILED = "start_failed"
NOT_RUNNING = "not_running"
NOT_RUNNING_RELEASED = "not_running_released"

# rewind / reinit
REWIND_RUNNING = "rewind_running"
REINIT_DIVERGED = "reinit_diverged"
REWIND_FAILED_WAIT = "rewind_failed_wait"  # qhb-patroni addition
REWIND_FAILED_REMOVE = "rewind_failed_remove"  # qhb-patroni addition
DIVERGENCE_UNKNOWN = "divergence_unknown"  # qhb-patroni addition
DIVERGED_STAY = "diverged_stay"  # qhb-patroni addition

# bootstrap
BOOTSTRAP_NEW = "bootstrap_new"
BOOTSTRAP_STANDBY_NEW = "bootstrap_standby_new"
INIT_LOCK_FAILED = "init_lock_failed"
BOOTSTRAP_FROM_LEADER = "bootstrap_from_leader"
BOOTSTRAP_FROM_REPLICA = "bootstrap_from_replica"
BOOTSTRAP_WITHOUT_LEADER = "bootstrap_without_leader"
COPYING_LOGICAL_SLOTS = "copying_logical_slots"
STANDBY_LOCK_ACQUIRED = "standby_lock_acquired"
STANDBY_LEADER_HOLDING = "standby_leader_holding"
STANDBY_LEADER_FOLLOWING_REMOTE = "standby_leader_following_remote"
STANDBY_FOLLOWING = "standby_following"
STANDBY_START_LEADER = "standby_start_leader"
STANDBY_FOLLOW_REMOTE = "standby_follow_remote"
STANDBY_BOOTSTRAP_FAILED = "standby_bootstrap_failed"
WAITING_FOR_LEADER = "waiting_for_leader"
WAITING_FOR_STANDBY_LEADER = "waiting_for_standby_leader"
WAITING_END_OF_RECOVERY = "waiting_end_of_recovery"
RUNNING_POST_BOOTSTRAP = "running_post_bootstrap"
INITIALIZED = "initialized"
EMPTY_DATA_PAUSED = "empty_data_paused"
BOOTSTRAP_FAILED_FATAL = "bootstrap_failed_fatal"  # the Fatal message, also a reason

# data dir / identity
RELEASED_EMPTY = "released_empty"
RELEASED_INACCESSIBLE = "released_inaccessible"
DATA_INACCESSIBLE = "data_inaccessible"
SYSID_INVALID = "sysid_invalid"
RELEASED_SYSID_MISMATCH = "released_sysid_mismatch"
SYSID_MISMATCH = "sysid_mismatch"

# probes (only logged when the per-cycle decision budget runs out)
PROBING_PEERS = "probing_peers"  # qhb-patroni addition
PROBING_REPLICATION = "probing_replication"  # qhb-patroni addition
PROBING_DIVERGENCE = "probing_divergence"  # qhb-patroni addition
CALLING_FAILSAFE = "calling_failsafe"  # qhb-patroni addition
DCS_LEASE_RUNS = "dcs_lease_runs"  # qhb-patroni addition (core/lease.py)

# misc
COPY_LOGICAL_SLOTS = "copy_logical_slots"
PG_ERROR = "pg_error"
UNEXPECTED = "unexpected"
