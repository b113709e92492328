"""Replication slots on the local server: perform what core.slots decided."""
from __future__ import annotations

import logging
import os
import shutil
from typing import Dict, List, Sequence, Tuple

from ..core.slots import LOGICAL, SlotSpec
from . import sql
from .conffiles import format_lsn, slot_name_from_member
from .connection import remote_params
from .names import REPLSLOT_DIR
from .server import LocalServer
from .settings import ManagerError

log = logging.getLogger(__name__)

ADVANCE_TIMEOUT_MS = 10000  # decoding to the published position; retried next cycle if longer
# SQLSTATEs of an advance that cannot work on this copy: WAL already removed, slot invalidated.
_COPY_AGAIN = ("58P01", "55000")


def create_slots(server: LocalServer, names: Sequence[str]) -> List[str]:
    """Create the missing physical slots among `names` (a standby about to be
    promoted: nothing is dropped); returns the created ones.  Over the kept local
    connection: this is on the failover's path."""
    return sql.create_physical_slots(server.local_params(), names, server.local_query)


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


def drop(server: LocalServer, names: Sequence[str], recreated: Sequence[str] = ()) -> None:
    params = server.local_params()
    for name in names:
        if name in recreated:
            log.info("Trying to drop replication slot '%s' to create it again", name)
        else:
            log.info("Trying to drop unknown replication slot '%s'", name)
        try:
            active, dropped = sql.drop_slot(params, name)
        except ManagerError as exc:
            log.error("Failed to drop replication slot '%s': %s", name, exc)
            continue
        if dropped:
            log.info("Dropped replication slot '%s'", name)
        elif active:
            log.warning("Unable to drop replication slot '%s', slot is active", name)


def create(server: LocalServer, specs: Sequence[SlotSpec]) -> None:
    """Each slot on its own: one the server refuses (a bad plugin, no such database)
    is logged with its key and tried again next cycle."""
    for spec in specs:
        try:
            if spec.type == LOGICAL:
                params = dict(server.local_params(), dbname=spec.database)
                sql.create_logical_slot(params, spec.name, spec.plugin or "")
            else:
                sql.create_physical_slot(server.local_params(), spec.name)
        except ManagerError as exc:
            what = f" plugin='{spec.plugin}' database='{spec.database}'" if spec.type == LOGICAL else ""
            log.error("Failed to create %s replication slot '%s'%s (slots.%s): %s",
                      spec.type, spec.name, what, spec.name, exc)
            continue
        log.info("Created %s replication slot '%s'", spec.type, spec.name)


def advance(server: LocalServer, targets: Sequence[Tuple[str, str, int]]) -> None:
    """pg_replication_slot_advance of a replica's copies to the published positions
    (the server stops at what it has replayed)."""
    for name, database, lsn in targets:
        params = dict(server.local_params(statement_timeout_ms=ADVANCE_TIMEOUT_MS), dbname=database)
        try:
            sql.advance_slot(params, name, format_lsn(lsn))
        except ManagerError as exc:
            if getattr(exc.__cause__, "pgcode", None) not in _COPY_AGAIN:
                log.error("Failed to advance logical replication slot '%s': %s", name, exc)
                continue
            # The copy starts before the WAL this replica has (or was invalidated): it could
            # never be used after a failover.  Drop it; the next cycle copies it again.
            log.error("Failed to advance logical replication slot '%s': %s; it will be copied again", name, exc)
            drop(server, [name], [name])


def copy_logical(server: LocalServer, names: Sequence[str], leader_url: str) -> List[str]:
    """Copy the state files of the primary's logical slots `names` into this replica's
    slot directory; the caller restarts the server (it loads slots only at start).
    Returns the copied names."""
    s = server.settings
    params = remote_params(leader_url, s.rewind, s.database)
    files: Dict[str, bytes] = {}
    for name, kind, database, plugin, data in sql.logical_slot_files(params, names):
        if kind != LOGICAL:
            log.warning("Will not copy the slot \"%s\": it is %s on the primary", name, kind)
            continue
        files[name] = data
        log.debug("copying logical slot %s (database %s, plugin %s)", name, database, plugin)
    if not files:
        return []
    if not server.stop("fast"):
        raise ManagerError("could not stop the server to copy logical replication slots")
    base = server.layout.data(REPLSLOT_DIR)
    for name, data in sorted(files.items()):
        _write_slot(base, name, data)
    _fsync_dir(base)
    return sorted(files)


def _write_slot(base: str, name: str, data: bytes) -> None:
    final = os.path.join(base, name)
    tmp = final + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp, mode=0o700)
    state = os.path.join(tmp, "state")
    fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(tmp)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(final)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



def check_readiness(server: LocalServer, leader_url: str) -> None:
    """A copied logical slot is safe after a failover once this replica's physical slot on
    the primary holds a catalog_xmin (hot_standby_feedback) that has overtaken the one the
    primary's slot had then, and is not newer than the copy's own (3.0.2's rule)."""
    s = server.settings
    unready = server.unready_slots
    mine = slot_name_from_member(s.name)
    try:
        rows = sql.catalog_xmins(remote_params(leader_url, s.rewind, s.database), [*unready, mine])
    except ManagerError as exc:
        log.error("Failed to check %s physical slot on the primary: %s", mine, exc)
        return
    if mine not in rows:
        log.warning("Physical slot %s does not exist on the primary", mine)
        return
    physical = rows.pop(mine)
    if physical is None:
        log.error('Logical slot failover requires "hot_standby_feedback"; %s has no catalog_xmin on the primary',
                  mine)
        return
    for name in list(unready):
        if unready[name] is None:
            unready[name] = rows.get(name)
    local = sql.catalog_xmins(server.local_params(), list(unready))
    for name, primary_xmin in list(unready.items()):
        standby_xmin = local.get(name)
        if standby_xmin is None or (primary_xmin is not None and primary_xmin <= physical <= standby_xmin):
            del unready[name]
            if standby_xmin is not None:
                log.info("Logical slot %s is safe to be used after a failover", name)
