"""A new cluster: initdb, config files, first start, users and database."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, List, Mapping

from ..core.local import STATE_INITDB_FAILED, STATE_INITIALIZING
from ..core.model import ROLE_MASTER
from . import conffiles, sql
from .files import empty_directory
from .names import INITDB_HBA_FILES, INITDB_IDENT_FILES, INITDB_MAIN_CONFS
from .process import run_tool
from .server import LocalServer
from .settings import ManagerError


def run_initdb(server: LocalServer) -> None:
    s = server.settings
    options = conffiles.initdb_options(s.initdb)
    options.append(f"--username={s.superuser.username}")
    empty_directory(s.data_dir)
    fd, pwfile = tempfile.mkstemp(prefix="qhb-patroni-pw-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write((s.superuser.password or "") + "\n")
        if s.superuser.password:
            options.append(f"--pwfile={pwfile}")
        run_tool([server.bin["initdb"], "-D", s.data_dir, *options], timeout=600)
    finally:
        os.unlink(pwfile)


def arrange_config_files(server: LocalServer) -> None:
    """Move what initdb wrote to the configured names.

    The configured hba/ident files are created from PostgreSQL's (or QHB's)
    names when initdb did not write them; the original main config becomes
    <base>.base.conf, included by the <base>.conf we own.
    """
    layout = server.layout
    for target, candidates in ((layout.hba_file, INITDB_HBA_FILES), (layout.ident_file, INITDB_IDENT_FILES)):
        if not os.path.exists(target):
            source = layout.initdb_file(candidates)
            if source is not None:
                shutil.copy2(source, target)
            else:
                open(target, "a").close()
    if not os.path.exists(layout.base_conf):
        source = layout.initdb_file(INITDB_MAIN_CONFS)
        if source is None:
            if not os.path.exists(layout.main_conf):
                raise ManagerError("initdb wrote no main configuration file")
            source = layout.main_conf
        os.replace(source, layout.base_conf)
    hba_lines = server.settings.bootstrap_hba
    if hba_lines:
        with open(layout.hba_file, "a") as f:
            f.write("\n" + "\n".join(hba_lines) + "\n")


def _user_options(spec: Mapping[str, Any]) -> List[str]:
    options = spec.get("options") or []
    if isinstance(options, str):
        options = [options]
    return [str(o) for o in options]


def post_bootstrap(server: LocalServer) -> None:
    """Superuser password, replication/rewind/extra users, database, checkpoint."""
    s = server.settings
    params = server.local_params(statement_timeout_ms=None)
    # The configured database (qhb) may not exist yet: create it from a
    # maintenance database first, then work in it.
    maintenance = dict(params, dbname="postgres" if s.database != "postgres" else "template1")
    try:
        sql.ensure_database(maintenance, s.database)
    except ManagerError:
        sql.ensure_database(dict(params, dbname="template1"), s.database)
    # The superuser connects without password checks only where hba allows it;
    # initdb set the password through --pwfile already, this re-asserts it.
    sql.create_or_alter_role(params, s.superuser.username, s.superuser.password, ["SUPERUSER"])
    reserved = {s.superuser.username}
    if s.replication.username not in reserved:
        sql.create_or_alter_role(params, s.replication.username, s.replication.password, ["REPLICATION"])
        reserved.add(s.replication.username)
    if s.rewind.username not in reserved:
        sql.create_or_alter_role(params, s.rewind.username, s.rewind.password, [])
        sql.grant_rewind(params, s.rewind.username)
        reserved.add(s.rewind.username)
    for name, spec in s.bootstrap_users.items():
        if name in reserved:
            continue
        spec = spec or {}
        password = spec.get("password")
        sql.create_or_alter_role(params, str(name), None if password is None else str(password),
                                 _user_options(spec))
    server.checkpoint()


def bootstrap(server: LocalServer) -> None:
    """initdb -> config files -> start -> wait writable -> users/database -> checkpoint."""
    server.state = STATE_INITIALIZING
    try:
        run_initdb(server)
    except (ManagerError, OSError) as exc:
        server.state = STATE_INITDB_FAILED
        raise ManagerError(f"initdb failed: {exc}") from exc
    arrange_config_files(server)
    server.recovery = None
    server.remove_recovery_files()
    if not server.start():
        raise ManagerError(f"server did not start after initdb (state {server.state})")
    if not server.wait_recovery_state(False, server.settings.pg_ctl_timeout, dbname="template1"):
        raise ManagerError("server did not become writable after initdb")
    server.role = ROLE_MASTER
    post_bootstrap(server)
