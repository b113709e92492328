"""Where base backups come from: a running member tagged clonefrom, for new replicas
and for an operator's reinitialize; otherwise the leader."""
from __future__ import annotations

from dataclasses import replace

from qhb_patroni.core import actions as A
from qhb_patroni.core.decide import decide
from qhb_patroni.core.methods import clone_member
from qhb_patroni.core.operator import ReinitCommand

from .builders import STARTED, cluster, make_obs, member, replica, settings

MEMBERS = (member("n0", role="master"), member("n1"), member("n2", tags={"clonefrom": True}),
           member("n3", tags={"clonefrom": True}, state="stopped"))


def test_clone_member_prefers_a_running_clonefrom_member() -> None:
    c = cluster(leader="n0", members=MEMBERS)
    leader = c.member("n0")
    assert clone_member(c, "n1", leader) is c.member("n2")
    assert clone_member(c, "n2", leader) is leader  # never myself; n3 is not running
    plain = cluster(leader="n0")
    assert clone_member(plain, "n1", plain.member("n0")) is plain.member("n0")


def test_reinitialize_clones_from_the_clonefrom_member_and_follows_the_leader() -> None:
    obs = make_obs(cluster(leader="n0", members=MEMBERS), replica(following="127.0.0.1:5432"), me="n1")
    d = decide(replace(obs, commands=(ReinitCommand(4),)), STARTED, settings("n1"))
    (reinit,) = d.actions
    assert isinstance(reinit, A.Reinitialize)
    assert reinit.leader is not None and reinit.leader.name == "n0"
    assert reinit.source is not None and reinit.source.name == "n2"
    alone = make_obs(cluster(leader="n0"), replica(following="127.0.0.1:5432"), me="n1")
    d = decide(replace(alone, commands=(ReinitCommand(5),)), STARTED, settings("n1"))
    assert isinstance(d.actions[0], A.Reinitialize) and d.actions[0].source is None
