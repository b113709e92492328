"""decide() in a standby cluster: the lock holder follows the remote primary and is
never promoted; the others follow it; without standby_cluster it is promoted."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.observation import Memory
from qhb_patroni.core.slots import SlotSpec
from qhb_patroni.core.standby import REMOTE_MEMBER, standby_cluster
from qhb_patroni.messages import render

from .builders import STARTED, cluster, empty, hostport, make_obs, replica, settings, stopped, task
from .test_properties import memories, observations

SC, _ = standby_cluster({"host": "10.0.0.5", "port": 5433, "primary_slot_name": "dr", "restore_command": ""})
assert SC is not None
REMOTE = SC.remote
STANDBY = settings(standby=SC)


def test_standby_cluster_parsing() -> None:
    assert standby_cluster({"host": "", "port": "", "restore_command": ""}) == (None, ())
    assert standby_cluster(None) == (None, ())
    archive, _ = standby_cluster({"restore_command": "cp /a/%f %p"})
    assert archive is not None and archive.remote is None and archive.restore_command == "cp /a/%f %p"
    bad, problems = standby_cluster({"host": "h", "port": "x"})
    assert bad is not None and problems == ("standby_cluster.port: not a port number: 'x'",)
    assert REMOTE is not None and REMOTE.name == REMOTE_MEMBER and REMOTE.host_port == ("10.0.0.5", 5433)


def test_first_member_clones_the_remote_and_takes_the_lock() -> None:
    d = decide(make_obs(cluster(initialize=None), empty()), STARTED, STANDBY)
    assert d.actions == (A.WriteInitialize("", create=True), A.Clone(source=REMOTE, leader=REMOTE))
    assert d.memory.bootstrapping and render(d.reason) == "trying to bootstrap a new standby leader"
    done = make_obs(cluster(initialize=""), replica(50, following="10.0.0.5:5433"),
                    t=task("Clone", done=True, ok=True))
    d = decide(done, d.memory, STANDBY)
    assert [type(a) for a in d.actions] == [A.WriteInitialize, A.WriteConfig, A.TakeLock]
    # It lands as a replica (the standby leader), not as a primary (found by tests/sim).
    assert d.event == "standby_bootstrap_done" and render(d.reason) == "initialized a new cluster"


def test_failed_clone_of_the_remote_frees_initialize_and_retries() -> None:
    failed = make_obs(cluster(initialize=""), empty(), t=task("Clone", done=True, ok=False, error="unreachable"))
    d = decide(failed, Memory(started=True, bootstrapping=True), STANDBY)
    assert d.actions == (A.CancelInitialize(),) and not d.memory.bootstrapping
    assert render(d.reason) == "failed to bootstrap a standby leader from standby_cluster: unreachable"
    d = decide(make_obs(cluster(initialize=""), empty()), STARTED, STANDBY)
    assert d.actions == () and render(d.reason) == "waiting for standby_leader to bootstrap"


def test_lock_holder_follows_the_remote_and_never_promotes() -> None:
    c = cluster(leader="n0")
    d = decide(make_obs(c, replica(100, following=hostport("n1"))), STARTED, STANDBY)
    assert d.actions == (A.RenewLock(version=7), A.Follow(REMOTE))
    assert render(d.reason) == "promoted self to a standby leader because i had the session lock"
    following = replica(100, following="10.0.0.5:5433", slot="dr")
    d = decide(make_obs(c, following), STARTED, STANDBY)
    assert d.actions[0] == A.RenewLock(version=7) and not any(isinstance(a, A.Promote) for a in d.actions)
    assert render(d.reason) == "no action. I am (n0), the standby leader with the lock"
    # Member slots are kept on the standby leader.
    assert d.actions[1:] == (A.ManageSlots(create=(SlotSpec("n1"), SlotSpec("n2"))),)


def test_removing_standby_cluster_promotes_the_standby_leader() -> None:
    d = decide(make_obs(cluster(leader="n0"), replica(100, following="10.0.0.5:5433", slot="dr")), STARTED,
               settings())
    assert any(isinstance(a, A.Promote) for a in d.actions)


def test_race_winner_becomes_standby_leader_and_losers_follow_the_remote() -> None:
    unlocked = cluster()
    peers = {"n1": None, "n2": None}
    d = decide(make_obs(unlocked, replica(100, following=hostport("n0")), peers=peers), STARTED, STANDBY)
    assert d.actions == (A.AcquireLock(), A.Follow(REMOTE))
    assert render(d.reason) == "promoted self to a standby leader by acquiring session lock"
    lost = make_obs(unlocked, replica(100, following=hostport("n0")), failed=A.AcquireLock())
    d = decide(lost, STARTED, STANDBY)
    assert d.actions == (A.Follow(REMOTE),)


def test_others_follow_the_standby_leader_and_a_stopped_holder_starts_following_the_remote() -> None:
    c = cluster(leader="n1")
    d = decide(make_obs(c, replica(100, following=hostport("n1"), slot="n0")), STARTED, STANDBY)
    assert d.actions == ()
    assert render(d.reason) == "no action. I am (n0), a secondary, and following a standby leader (n1)"
    d = decide(make_obs(cluster(leader="n0"), stopped()), STARTED, STANDBY)
    assert d.actions == (A.RenewLock(version=7), A.Follow(REMOTE))
    assert render(d.reason) == "starting as a standby leader because i had the session lock"
    d = decide(make_obs(cluster(), stopped()), STARTED, STANDBY)
    assert d.actions == (A.Follow(REMOTE),)


def test_paused_standby_leader_keeps_its_lock() -> None:
    c = replace(cluster(leader="n0", config={"ttl": 30, "pause": True}))
    d = decide(make_obs(c, replica(100, following="10.0.0.5:5433", slot="dr")), STARTED, STANDBY)
    assert d.actions == (A.RenewLock(version=7),)



# ---- property: a standby cluster never promotes ------------------------------------------

standby_settings = st.builds(settings, standby=st.just(SC), use_pg_rewind=st.booleans(),
                             nofailover=st.booleans(), use_slots=st.booleans())


@hsettings(max_examples=300, deadline=None, derandomize=True)
@given(observations(), memories, standby_settings)
def test_standby_cluster_never_promotes(obs, memory, s) -> None:  # type: ignore[no-untyped-def]
    d = decide(obs, memory, s)
    assert not any(isinstance(a, (A.Promote, A.Bootstrap)) for a in d.actions), d
    render(d.reason)  # every sentence renders
