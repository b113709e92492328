"""A standby that follows the leader but has no WAL receiver is woken to try streaming
again (core/running.py receiver_nudge): a member rejoining after a failover may start
before the new primary created its slot, and the server alone would wait
wal_retrieve_retry_interval (5 s) before its next attempt."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core import roles
from qhb_patroni.core.decide import decide
from qhb_patroni.core.running import RECEIVER_NUDGE_FOR, RECEIVER_POLL

from .builders import NOW, STARTED, cluster, hostport, make_obs, replica, settings

S = settings(ttl=10, loop_wait=2, retry_timeout=4)


def following(receiver: object) -> object:
    return replace(replica(following=hostport("n1"), slot="n0"), wal_receiver=receiver)


def test_a_following_standby_without_a_receiver_is_woken_and_looked_at_again_soon() -> None:
    d = decide(make_obs(cluster(leader="n1"), following(False)), STARTED, S)  # type: ignore[arg-type]
    assert d.event == roles.LOCKED_BY_OTHER
    assert A.WakeWalReceiver() in d.actions and A.Recheck(RECEIVER_POLL) in d.actions
    assert not any(isinstance(a, A.Follow) for a in d.actions)  # its settings are right: no restart
    assert d.memory.receiver_missing_since == NOW


def test_the_nudges_stop_after_a_while_and_the_server_paces_itself() -> None:
    obs = make_obs(cluster(leader="n1"), following(False))  # type: ignore[arg-type]
    first = decide(obs, STARTED, S)
    later = decide(replace(obs, now=NOW + RECEIVER_NUDGE_FOR - 0.1), first.memory, S)
    assert A.WakeWalReceiver() in later.actions
    done = decide(replace(obs, now=NOW + RECEIVER_NUDGE_FOR), later.memory, S)
    assert A.WakeWalReceiver() not in done.actions and A.Recheck(RECEIVER_POLL) not in done.actions
    assert done.memory.receiver_missing_since == NOW  # not restarted while it still has none


def test_a_receiver_resets_the_window() -> None:
    obs = make_obs(cluster(leader="n1"), following(False))  # type: ignore[arg-type]
    first = decide(obs, STARTED, S)
    streaming = decide(make_obs(cluster(leader="n1"), following(True)), first.memory, S)  # type: ignore[arg-type]
    assert A.WakeWalReceiver() not in streaming.actions
    assert streaming.memory.receiver_missing_since is None


def test_an_unknown_receiver_state_or_a_standby_to_re_point_is_not_nudged() -> None:
    unknown = decide(make_obs(cluster(leader="n1"), following(None)), STARTED, S)  # type: ignore[arg-type]
    assert A.WakeWalReceiver() not in unknown.actions
    elsewhere = replace(replica(following=hostport("n2"), slot="n0"), wal_receiver=False)
    d = decide(make_obs(cluster(leader="n1"), elsewhere), STARTED, S)
    assert any(isinstance(a, A.Follow) for a in d.actions) and A.WakeWalReceiver() not in d.actions


def test_with_a_long_loop_wait_the_window_covers_two_of_the_leaders_cycles() -> None:
    slow = settings(ttl=30, loop_wait=10, retry_timeout=10)
    obs = make_obs(cluster(leader="n1"), following(False))  # type: ignore[arg-type]
    first = decide(obs, STARTED, slow)
    assert A.WakeWalReceiver() in decide(replace(obs, now=NOW + 19.9), first.memory, slow).actions
    assert A.WakeWalReceiver() not in decide(replace(obs, now=NOW + 20), first.memory, slow).actions
