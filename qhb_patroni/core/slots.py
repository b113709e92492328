"""Physical replication slot names for members (spec 5.16)."""
from __future__ import annotations

import re
from typing import Tuple

from .model import ClusterView

_NOT_ALLOWED = re.compile(r"[^a-z0-9_]")
MAX_SLOT_NAME = 63


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
