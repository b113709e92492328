"""Physical replication slots on the primary: make them exactly a desired set."""
from __future__ import annotations

from typing import List, Sequence, Tuple

from . import sql
from .server import LocalServer


def create_slots(server: LocalServer, names: Sequence[str]) -> List[str]:
    """Create the missing physical slots among `names` (a standby about to be
    promoted: nothing is dropped); returns the created ones."""
    params = server.local_params()
    present = sql.physical_slots(params)
    created = [n for n in sorted(set(names)) if n not in present]
    for name in created:
        sql.create_physical_slot(params, name)
    return created


def sync_slots(server: LocalServer, names: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Create missing and drop unknown physical slots; returns (created, dropped).

    Active slots are never dropped (the drop is retried on a later cycle)."""
    params = server.local_params()
    wanted = sorted(set(names))
    present = sql.physical_slots(params)
    created = [n for n in wanted if n not in present]
    dropped = [n for n in present if n not in wanted]
    for name in dropped:
        sql.drop_slot(params, name)
    for name in created:
        sql.create_physical_slot(params, name)
    return created, dropped
