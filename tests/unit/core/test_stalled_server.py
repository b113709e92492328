"""A running server that does not answer its status query in time (SIGSTOP, a lock, an
overloaded machine): the lock holder keeps its lease without waiting for it
(core/running.py `_unknown`, core/lease.py `status_deadline`)."""
from __future__ import annotations

from dataclasses import replace
from typing import List

import pytest

from qhb_patroni.core import actions as A
from qhb_patroni.core import roles
from qhb_patroni.core.decide import decide
from qhb_patroni.core.lease import fence_at, status_deadline
from qhb_patroni.core.observation import Decision, FailedAction, WatchdogState
from qhb_patroni.messages import render

from .builders import STARTED, cluster, make_obs, primary, replica, settings

FAST = settings(ttl=5, loop_wait=1, retry_timeout=2)


def stalled_primary() -> object:
    return replace(primary(lsn=500), in_recovery=None)  # postmaster alive, status unknown


def kinds(d: Decision) -> List[str]:
    return [type(a).__name__ for a in d.actions]


def test_the_holder_renews_without_the_status_and_does_nothing_else() -> None:
    d = decide(make_obs(cluster(leader="n0"), stalled_primary()), STARTED, FAST)
    assert d.event == roles.PG_UNKNOWN_HOLDER
    assert kinds(d) == ["RenewLock"]
    renew = d.actions[0]
    assert isinstance(renew, A.RenewLock) and renew.last_lsn is None  # no position it has not read
    assert "leader with the lock" in render(d.reason)


def test_the_armed_watchdog_is_fed_before_that_renewal() -> None:
    obs = replace(make_obs(cluster(leader="n0"), stalled_primary()), watchdog=WatchdogState(armed=True, timeout=4))
    d = decide(obs, STARTED, replace(FAST, watchdog_mode="automatic", watchdog_safety_margin=1))
    assert kinds(d) == ["PingWatchdog", "RenewLock"]


def test_a_failed_renewal_is_not_retried_and_nothing_is_started_or_demoted() -> None:
    obs = make_obs(cluster(leader="n0"), stalled_primary())
    d = decide(obs, STARTED, FAST)
    again = replace(obs, failed=FailedAction(d.actions[0], "CAS failed"))
    d2 = decide(again, d.memory, FAST)
    assert d2.event == roles.PG_UNKNOWN and d2.actions == ()


@pytest.mark.parametrize("leader", [None, "n1"])
def test_a_stalled_node_that_does_not_hold_the_lock_waits(leader: object) -> None:
    stalled_replica = replace(replica(lsn=500), in_recovery=None)
    d = decide(make_obs(cluster(leader=leader), stalled_replica), STARTED, FAST)  # type: ignore[arg-type]
    assert d.event == roles.PG_UNKNOWN and d.actions == ()  # neither races nor restarts it


@pytest.mark.parametrize("ttl, loop_wait", [(5, 1), (10, 2), (30, 10), (4, 1), (100, 1)])
def test_the_status_deadline_leaves_the_renewal_inside_the_lease(ttl: int, loop_wait: int) -> None:
    """A renewal sent at 0 is followed by a sleep of at most loop_wait and a status query
    of at most the deadline before the next renewal; with a second of headroom for the
    DCS calls that must still fall before the lease guard's deadline."""
    deadline = status_deadline(ttl, loop_wait)
    assert 0.5 <= deadline <= 2.0
    end = fence_at(0.0, ttl)
    assert end is not None
    if ttl - loop_wait >= 2:
        assert loop_wait + deadline + 1.0 <= end
