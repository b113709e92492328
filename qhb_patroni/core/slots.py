"""Replication slots (spec 5.16): member slots, permanent slots, ignored slots, pure.

Given the cluster view and the slots present on the local server, decide which
slots to drop, create or advance, which permanent logical slots a replica copies
from the primary, and which positions the leader publishes in /status.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .local import LocalState, SlotState
from .model import ClusterView

_NOT_ALLOWED = re.compile(r"[^a-z0-9_]")
MAX_SLOT_NAME = 63
VALID_SLOT_NAME = re.compile(r"^[a-z0-9_]{1,63}$")
PHYSICAL = "physical"
LOGICAL = "logical"


def slot_name_for(member_name: str) -> str:
    """Lower-case; '-' and '.' become '_'; any other character outside [a-z0-9_]
    becomes 'u' + its code point as (at least) 4 decimal digits; at most 63 chars."""
    name = member_name.lower().replace("-", "_").replace(".", "_")
    name = _NOT_ALLOWED.sub(lambda m: f"u{ord(m.group(0)):04d}", name)
    return name[:MAX_SLOT_NAME]


def member_slots(cluster: ClusterView, me: str) -> Tuple[str, ...]:
    """Slots the primary `me` keeps: one per other member that streams from it,
    i.e. whose `replicatefrom` is unset, is me, or names no current member."""
    names = {m.name for m in cluster.members}
    wanted = set()
    for m in cluster.members:
        if m.name == me:
            continue
        upstream = m.replicatefrom
        if upstream is None or upstream == me or upstream not in names:
            wanted.add(slot_name_for(m.name))
    wanted.discard(slot_name_for(me))
    return tuple(sorted(wanted))


def cascade_slots(cluster: ClusterView, me: str) -> Tuple[str, ...]:
    """Slots a replica `me` keeps for the members that stream from it (replicatefrom: me)."""
    return tuple(sorted(slot_name_for(m.name) for m in cluster.members if m.name != me and m.replicatefrom == me))


@dataclass(frozen=True)
class SlotSpec:
    """A slot as it should exist."""

    name: str
    type: str = PHYSICAL
    database: Optional[str] = None
    plugin: Optional[str] = None

    def matches(self, present: SlotState) -> bool:
        """Same kind: physical, or logical on the same database with the same plugin."""
        if present.type != self.type:
            return False
        return self.type == PHYSICAL or (present.database == self.database and present.plugin == self.plugin)


def _config_data(cluster: ClusterView) -> Mapping[str, Any]:
    return cluster.config.data if cluster.config is not None else {}


def permanent_slots(cluster: ClusterView) -> Tuple[Tuple[SlotSpec, ...], Tuple[str, ...]]:
    """(valid permanent slots of /config `slots`, problems naming the key)."""
    data = _config_data(cluster)
    raw = data.get("permanent_replication_slots") or data.get("permanent_slots") or data.get("slots") or {}
    if not isinstance(raw, Mapping):
        return (), (f"slots: expected a mapping of slot names, got {type(raw).__name__}",)
    specs: List[SlotSpec] = []
    problems: List[str] = []
    for name in sorted(raw, key=str):
        value = raw[name]
        key = f"slots.{name}"
        if not isinstance(name, str) or not VALID_SLOT_NAME.match(name):
            problems.append(f"{key}: invalid permanent replication slot name {name!r} (allowed: [a-z0-9_]{{1,63}})")
            continue
        if value is None:
            specs.append(SlotSpec(name))
            continue
        if not isinstance(value, Mapping):
            problems.append(f"{key}: bad value for slot {name!r} in permanent slots: {value!r}")
            continue
        database, plugin = value.get("database"), value.get("plugin")
        kind = value.get("type") or (LOGICAL if database and plugin else PHYSICAL)
        if kind == PHYSICAL:
            specs.append(SlotSpec(name))
        elif kind == LOGICAL and database and plugin:
            specs.append(SlotSpec(name, LOGICAL, str(database), str(plugin)))
        else:
            problems.append(f"{key}: bad value for slot {name!r} in permanent slots: {dict(value)!r}"
                            " (a logical slot needs database and plugin)")
    return tuple(specs), tuple(problems)


@dataclass(frozen=True)
class IgnoreRule:
    """An ignore_slots entry; a field that is not set matches anything."""

    name: Optional[str] = None
    type: Optional[str] = None
    database: Optional[str] = None
    plugin: Optional[str] = None

    def matches(self, slot: SlotState) -> bool:
        return all(
            want is None or want == have
            for want, have in ((self.name, slot.name), (self.type, slot.type),
                               (self.database, slot.database), (self.plugin, slot.plugin))
        )


def ignore_rules(cluster: ClusterView) -> Tuple[Tuple[IgnoreRule, ...], Tuple[str, ...]]:
    raw = _config_data(cluster).get("ignore_slots") or []
    if not isinstance(raw, (list, tuple)):
        return (), (f"ignore_slots: expected a list of matchers, got {type(raw).__name__}",)
    rules: List[IgnoreRule] = []
    problems: List[str] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            problems.append(f"ignore_slots[{i}]: expected a mapping with name/type/database/plugin, got {entry!r}")
            continue
        fields = {k: (str(entry[k]) if entry.get(k) else None) for k in ("name", "type", "database", "plugin")}
        rules.append(IgnoreRule(**fields))
    return tuple(rules), tuple(problems)


def present_slots(local: LocalState) -> Dict[str, SlotState]:
    """The non-temporary slots on the local server (details when read, else the
    physical names)."""
    found = {name: SlotState(name) for name in local.slots}
    for slot in local.slot_details or ():
        found[slot.name] = slot
    return {name: slot for name, slot in found.items() if not slot.temporary}


@dataclass(frozen=True)
class SlotPlan:
    drop: Tuple[str, ...] = ()
    create: Tuple[SlotSpec, ...] = ()
    advance: Tuple[Tuple[str, str, int], ...] = ()  # (slot, database, position)
    copy: Tuple[str, ...] = ()  # permanent logical slots a replica copies from the primary
    feedback: Optional[bool] = None  # hot_standby_feedback to enforce (None: unchanged)
    problems: Tuple[str, ...] = ()
    check: bool = False  # check the readiness of copied logical slots against the primary

    @property
    def changes(self) -> bool:
        return bool(self.drop or self.create or self.advance or self.feedback is not None)


def _diff(wanted: Sequence[SlotSpec], present: Mapping[str, SlotState], rules: Sequence[IgnoreRule],
          paused: bool) -> Tuple[List[str], List[SlotSpec]]:
    """(drop, create): unknown slots not ignored (never in pause); wanted slots of another
    kind are dropped and created again; missing ones created."""
    by_name = {s.name: s for s in wanted}
    drop: List[str] = []
    create: List[SlotSpec] = []
    for name, slot in sorted(present.items()):
        spec = by_name.get(name)
        if spec is None:
            if not paused and not any(rule.matches(slot) for rule in rules):
                drop.append(name)
        elif not spec.matches(slot):
            drop.append(name)
            create.append(spec)
    create += [s for s in wanted if s.name not in present]
    return drop, create


def primary_plan(cluster: ClusterView, me: str, local: LocalState, use_slots: bool, paused: bool,
                 physical_only: bool = False) -> SlotPlan:
    """The primary keeps the member slots and the permanent slots (permanent physical
    ones even with use_slots off, as 3.0.2 does), drops the rest unless ignored.  A
    standby leader (`physical_only`) keeps no logical slot."""
    permanent, problems = permanent_slots(cluster)
    rules, rule_problems = ignore_rules(cluster)
    members = member_slots(cluster, me) if use_slots else ()
    wanted: List[SlotSpec] = [SlotSpec(n) for n in members]
    mine = slot_name_for(me)
    extra: List[str] = []
    for spec in permanent:
        if spec.type == PHYSICAL:
            if spec.name != mine and spec.name not in members:
                wanted.append(spec)
        elif use_slots and not physical_only:
            if spec.name in members:
                extra.append(f"slots.{spec.name}: permanent logical replication slot {spec.name!r} "
                             "is conflicting with physical replication slot for cluster member")
            else:
                wanted.append(spec)
    drop, create = _diff(wanted, present_slots(local), rules, paused)
    return SlotPlan(drop=tuple(drop), create=tuple(create), problems=problems + rule_problems + tuple(extra),
                    feedback=False if local.feedback_enforced else None)


def replica_plan(cluster: ClusterView, me: str, local: LocalState, use_slots: bool, nofailover: bool,
                 paused: bool) -> SlotPlan:
    """A replica keeps the slots of members cascading from it and, when it may become
    the primary, the permanent logical slots: copied from the primary when missing,
    advanced to the position the leader publishes in /status."""
    permanent, problems = permanent_slots(cluster)
    rules, rule_problems = ignore_rules(cluster)
    wanted: List[SlotSpec] = [SlotSpec(n) for n in cascade_slots(cluster, me)] if use_slots else []
    logical = [s for s in permanent if s.type == LOGICAL] if use_slots and not nofailover else []
    present = present_slots(local)
    drop, create = _diff(wanted + logical, present, rules, paused)
    copy = [s.name for s in create if s.type == LOGICAL and s.name in cluster.slots]
    create = [s for s in create if s.type == PHYSICAL]  # a logical slot cannot be created on a standby
    advance: List[Tuple[str, str, int]] = []
    for spec in logical:
        slot = present.get(spec.name)
        target = cluster.slots.get(spec.name)
        if slot is None or spec.name in drop or not target:
            continue
        if slot.confirmed_flush_lsn is None or slot.confirmed_flush_lsn < target:
            advance.append((spec.name, spec.database or "", target))
    want_feedback = bool(logical)
    return SlotPlan(
        drop=tuple(drop), create=tuple(create), advance=tuple(advance), copy=tuple(copy),
        feedback=want_feedback if want_feedback != local.feedback_enforced else None,
        problems=problems + rule_problems,
        check=bool(set(local.unready_slots) & {s.name for s in logical}),
    )


def published_positions(cluster: ClusterView, local: LocalState) -> Optional[Tuple[Tuple[str, int], ...]]:
    """/status `slots` the leader publishes: the positions of the permanent slots on it
    (logical: confirmed_flush_lsn, physical: restart_lsn); None when there are none."""
    permanent, _ = permanent_slots(cluster)
    names = {s.name for s in permanent}
    out: List[Tuple[str, int]] = []
    for slot in local.slot_details or ():
        if slot.name not in names or slot.temporary:
            continue
        position = slot.confirmed_flush_lsn if slot.type == LOGICAL else slot.restart_lsn
        if position:
            out.append((slot.name, position))
    return tuple(sorted(out)) or None
