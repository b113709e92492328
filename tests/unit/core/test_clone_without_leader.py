"""decide(): a replica method with no_leader lets an empty member start from a backup
while nobody leads and nobody bootstraps (spec 6.1)."""
from __future__ import annotations

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.messages import render

from .builders import STARTED, SYSID, cluster, empty, make_obs, settings

NO_LEADER = settings(clone_without_leader=True)


def test_no_leader_method_clones_without_a_source_when_nobody_leads() -> None:
    # /initialize holds a system identifier: the cluster exists, its leader is gone.
    d = decide(make_obs(cluster(initialize=SYSID), empty()), STARTED, NO_LEADER)
    assert d.actions == (A.Clone(source=None, leader=None),)
    assert render(d.reason) == "trying to bootstrap (without leader)"
    # Not a tagged nofailover question: a member that may never lead restores too.
    d = decide(make_obs(cluster(initialize=None), empty()), STARTED, settings(clone_without_leader=True,
                                                                             nofailover=True))
    assert d.actions == (A.Clone(),)


def test_bootstrap_race_comes_first_and_a_running_bootstrap_is_waited_for() -> None:
    d = decide(make_obs(cluster(initialize=None), empty()), STARTED, NO_LEADER)
    assert d.actions == (A.WriteInitialize("", create=True), A.Bootstrap())
    d = decide(make_obs(cluster(initialize=""), empty()), STARTED, NO_LEADER)
    assert d.actions == () and render(d.reason) == "waiting for leader to bootstrap"


def test_with_a_leader_the_leader_is_cloned_and_without_the_option_nobody_clones() -> None:
    d = decide(make_obs(cluster(leader="n1"), empty()), STARTED, NO_LEADER)
    assert [type(a) for a in d.actions] == [A.Clone] and d.actions[0].source is not None  # type: ignore[union-attr]
    d = decide(make_obs(cluster(initialize=SYSID), empty()), STARTED, settings())
    assert d.actions == () and render(d.reason) == "waiting for leader to bootstrap"


def test_paused_cluster_never_clones() -> None:
    d = decide(make_obs(cluster(initialize=SYSID, config={"pause": True}), empty()), STARTED, NO_LEADER)
    assert d.actions == ()
