"""What every phase of decide() needs: the inputs, the role, and the way out.

`Ctx.out(event, actions, memory, **args)` looks the event up in the role
table and builds the Decision, so no phase can produce a reason that is not
a documented transition.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional, Type

from . import roles
from .actions import Action
from .local import LocalState
from .model import ClusterView, Leader, Member
from .observation import Decision, Memory, Observation, Reason, Settings


@dataclass(frozen=True)
class Ctx:
    obs: Observation
    settings: Settings
    role: roles.Role = field(default=roles.Role.UNKNOWN)

    @staticmethod
    def of(obs: Observation, settings: Settings) -> Ctx:
        return Ctx(obs, settings, roles.current_role(obs))

    @property
    def me(self) -> str:
        return self.settings.name

    @property
    def local(self) -> LocalState:
        return self.obs.local

    @property
    def cluster(self) -> ClusterView:
        assert self.obs.cluster is not None, "phase used before the DCS check"
        return self.obs.cluster

    @property
    def leader(self) -> Optional[Leader]:
        return self.obs.cluster.leader if self.obs.cluster is not None else None

    @property
    def i_am_leader(self) -> bool:
        """The leader key names me (Patroni's has_lock after reading the DCS)."""
        return self.leader is not None and self.leader.name == self.me

    @property
    def other_leader(self) -> Optional[Leader]:
        lead = self.leader
        return lead if lead is not None and lead.name != self.me else None

    def leader_member(self) -> Optional[Member]:
        lead = self.leader
        if lead is None:
            return None
        if lead.member is not None:
            return lead.member
        return self.cluster.member(lead.name) or Member(name=lead.name)

    def failed(self, kind: Type[Any]) -> bool:
        """The previous execution in this cycle failed on an action of this kind."""
        return self.obs.failed is not None and isinstance(self.obs.failed.action, kind)

    @property
    def rewind_configured(self) -> bool:
        s = self.settings
        return (s.use_pg_rewind and self.local.rewind_possible) or s.remove_data_directory_on_diverged_timelines

    def out(self, event: roles.Event, actions: Iterable[Action], memory: Memory, **args: Any) -> Decision:
        row = roles.transition(self.role, event)
        args.setdefault("me", self.me)
        return Decision(tuple(actions), memory, Reason(row.reason, args), event=event, role=self.role)


def arm_rewind_check(ctx: Ctx, memory: Memory) -> Memory:
    """After a demotion or a lost race the timelines may have forked: check
    before following again (only matters when rewind/reinit is configured)."""
    if ctx.rewind_configured and memory.rewind_state in ("idle", "done"):
        return replace(memory, rewind_state="check")
    return memory
