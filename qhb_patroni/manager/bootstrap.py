"""A new cluster: initdb or a custom method, config files, first start, users and database."""
from __future__ import annotations

import logging
import os
import shlex
import shutil
import tempfile
import time
from typing import Any, List, Mapping, Optional

from ..core.local import STATE_INITDB_FAILED, STATE_INITIALIZING
from ..core.methods import CustomBootstrap
from ..core.model import ROLE_MASTER
from . import conffiles, durable, sql
from .connection import connect
from .files import empty_directory, write_pgpass
from .names import FAILED_SUFFIX, INITDB_HBA_FILES, INITDB_IDENT_FILES, INITDB_MAIN_CONFS
from .process import check_cancelled, clean_env, command_words, run_tool, run_watched
from .server import LocalServer
from .settings import ManagerError

log = logging.getLogger(__name__)

STATE_CUSTOM_BOOTSTRAP = "running custom bootstrap script"
STATE_CUSTOM_BOOTSTRAP_FAILED = "custom bootstrap failed"
# Bounds of the operator's programs (a restore may take hours; a hung one must not
# hold /initialize forever): the custom bootstrap command, the recovery that follows
# it, and the post_bootstrap script.
COMMAND_TIMEOUT = 24 * 3600.0
SCRIPT_TIMEOUT = 3600.0


def run_initdb(server: LocalServer) -> None:
    """initdb into the emptied data directory; its files are on disk when this returns
    (with --no-sync and one syncfs per file system where that is usable: manager/durable.py)."""
    s = server.settings
    options = conffiles.initdb_options(s.initdb)
    options.append(f"--username={s.superuser.username}")
    flush = server.flush_instead_of_sync("initdb")
    if flush:
        options.append("--no-sync")
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
    if flush:
        durable.flush(s.data_dir)


def arrange_config_files(server: LocalServer, append_hba: bool = True) -> None:
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
    if hba_lines and append_hba:
        with open(layout.hba_file, "a") as f:
            f.write("\n" + "\n".join(hba_lines) + "\n")


def _user_options(spec: Mapping[str, Any]) -> List[str]:
    options = spec.get("options") or []
    if isinstance(options, str):
        options = [options]
    return [str(o) for o in options]


def run_post_bootstrap_script(server: LocalServer, script: str, timeout: float = SCRIPT_TIMEOUT) -> None:
    """bootstrap.post_bootstrap (or post_init) with one argument, the superuser's
    connection string without password; the password is in a pgpass file and the
    script's sessions commit with synchronous_commit=local (no standby exists yet)."""
    s = server.settings
    params = {"dbname": s.database, "user": s.superuser.username, "host": s.local_host, "port": s.port}
    write_pgpass(s.pgpass, [(s.local_host, s.port, s.superuser.username, s.superuser.password)])
    env = dict(clean_env(), PGPASSFILE=s.pgpass, PGOPTIONS="-c synchronous_commit=local")
    key = "bootstrap.post_bootstrap"
    try:
        cmd = shlex.split(script) + [conffiles.build_dsn(params)]
    except ValueError as exc:
        raise ManagerError(f"{key}: cannot parse {script!r}: {exc}") from exc
    log.info("running post_bootstrap")
    rc, _, err = run_watched(cmd, timeout, env)
    if rc != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:]
        detail = f": {tail[0]}" if tail else ""
        raise ManagerError(f"{key} script {script} returned {rc}{detail}")


def post_bootstrap(server: LocalServer, script: Optional[str] = None) -> None:
    """Database, superuser (password), the post_bootstrap script, replication/rewind/extra
    users, checkpoint: the order of 3.0.2, the roles and the checkpoint on one connection
    (a password-authenticated connection per statement cost more than the statements)."""
    s = server.settings
    params = server.local_params(statement_timeout_ms=None)
    # The configured database (qhb) may not exist yet: create it from a
    # maintenance database first, then work in it.
    maintenance = dict(params, dbname="postgres" if s.database != "postgres" else "template1")
    try:
        sql.ensure_database(maintenance, s.database)
    except ManagerError:
        sql.ensure_database(dict(params, dbname="template1"), s.database)
    with connect(params) as conn, conn.cursor() as cur:
        sql.quiet_session(cur)
        # The superuser connects without password checks only where hba allows it;
        # initdb set the password through --pwfile already, this re-asserts it.
        sql.create_or_alter_role(cur, s.superuser.username, s.superuser.password, ["SUPERUSER"])
        if script:
            run_post_bootstrap_script(server, script)
        reserved = {s.superuser.username}
        if s.replication.username not in reserved:
            sql.create_or_alter_role(cur, s.replication.username, s.replication.password, ["REPLICATION"])
            reserved.add(s.replication.username)
        if s.rewind.username not in reserved:
            sql.create_or_alter_role(cur, s.rewind.username, s.rewind.password, [])
            sql.grant_rewind(cur, s.rewind.username)
            reserved.add(s.rewind.username)
        for name, spec in s.bootstrap_users.items():
            if name in reserved:
                continue
            spec = spec or {}
            password = spec.get("password")
            sql.create_or_alter_role(cur, str(name), None if password is None else str(password),
                                     _user_options(spec))
        cur.execute("CHECKPOINT")


def bootstrap(server: LocalServer) -> None:
    """initdb (or the custom method) -> config files -> start -> wait writable ->
    users/database/post_bootstrap -> checkpoint."""
    method = server.settings.bootstrap_method
    if method is not None:
        custom_bootstrap(server, method)
        return
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
    post_bootstrap(server, server.settings.post_bootstrap)


def run_custom_command(server: LocalServer, method: CustomBootstrap, timeout: float = COMMAND_TIMEOUT) -> None:
    """`<command> --scope=<scope> --datadir=<data_dir>` into the emptied data directory."""
    s = server.settings
    key = f"bootstrap.{method.name}.command"
    words = command_words(key, method.command)
    empty_directory(s.data_dir)
    server.state = STATE_CUSTOM_BOOTSTRAP
    log.info("Running custom bootstrap script: %s", method.command)
    try:
        rc, _, err = run_watched(words + method.args(s.scope, s.data_dir), timeout, clean_env())
    except ManagerError as exc:  # could not run it, timed out or cancelled
        server.state = STATE_CUSTOM_BOOTSTRAP_FAILED
        raise ManagerError(f"{key}: {exc}") from exc
    if rc != 0:
        server.state = STATE_CUSTOM_BOOTSTRAP_FAILED
        tail = err.decode(errors="replace").strip().splitlines()[-1:]
        detail = f": {tail[0]}" if tail else ""
        raise ManagerError(f"{key} {method.command} exited with code={rc}{detail}")
    if not os.path.exists(server.layout.pg_control):
        server.state = STATE_CUSTOM_BOOTSTRAP_FAILED
        raise ManagerError(f"{key} {method.command} left no database cluster in {s.data_dir}")


def _temporary_hba(server: LocalServer) -> str:
    """Trust for the superuser and the replication user on the local addresses while
    the restored cluster's own passwords may differ from ours (3.0.2 does the same)."""
    s = server.settings
    path = server.layout.bootstrap_hba_file
    lines = []
    for kind, address in (("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128")):
        lines.append(f"{kind}\treplication\t{s.replication.username}\t{address}\ttrust")
        lines.append(f"{kind}\tall\t{s.superuser.username}\t{address}\ttrust")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


def wait_end_of_recovery(server: LocalServer, timeout: float = COMMAND_TIMEOUT) -> None:
    """Poll until the restored server leaves recovery (it may replay archives for hours)."""
    deadline = time.monotonic() + timeout
    logged = False
    while True:
        check_cancelled("bootstrap")
        if server.in_recovery() is False:
            return
        if not server.is_running():
            raise ManagerError("the server stopped during recovery after the custom bootstrap")
        if time.monotonic() >= deadline:
            raise ManagerError(f"recovery after the custom bootstrap did not end within {timeout:.0f}s")
        if not logged:
            log.info("waiting for end of recovery after bootstrap")
            logged = True
        time.sleep(1.0)


def custom_bootstrap(server: LocalServer, method: CustomBootstrap,
                     timeout: float = COMMAND_TIMEOUT) -> None:
    """bootstrap.<method>: run the command, write its recovery_conf (or drop the tool's
    recovery settings unless keep_existing_recovery_conf), start until the recovery
    ends, then the usual post-bootstrap with the real hba file and a restart."""
    run_custom_command(server, method, timeout)
    arrange_config_files(server)
    server.recovery = None
    if method.recovery_conf is not None:
        server.remove_recovery_files()
        settings = dict(method.recovery_conf)
        server.recovery = settings
        server.archive_recovery = settings.get("standby_mode", "").lower() not in ("on", "true", "1", "yes")
    elif not method.keep_existing_recovery_conf:
        server.remove_recovery_files()
    server.hba_override = _temporary_hba(server)
    if method.promotes:
        server.parameter_overrides = {"hot_standby": "off"}
    try:
        if not server.start():
            raise ManagerError(f"server did not start after the custom bootstrap (state {server.state})")
        wait_end_of_recovery(server, timeout)
        server.role = ROLE_MASTER
        post_bootstrap(server, server.settings.post_bootstrap)
    finally:
        server.hba_override = None
        server.parameter_overrides = {}
        server.recovery = None
        server.archive_recovery = False
        if os.path.exists(server.layout.bootstrap_hba_file):
            os.unlink(server.layout.bootstrap_hba_file)
    # Back to the configured hba file and parameters, without recovery settings.
    if not server.stop("fast"):
        raise ManagerError("server did not stop after the custom bootstrap")
    server.remove_recovery_files()
    if not server.start():
        raise ManagerError(f"server did not start after the custom bootstrap (state {server.state})")
    server.role = ROLE_MASTER


def move_data_directory_aside(server: LocalServer) -> Optional[str]:
    """After a failed bootstrap: rename the data directory to <data_dir>.failed (a
    timestamp is added when that exists already), so that the next attempt starts
    from an empty one and nothing half-made is ever taken for the cluster."""
    data_dir = server.settings.data_dir
    if not os.path.isdir(data_dir) or not os.listdir(data_dir):
        return None
    target = data_dir + FAILED_SUFFIX
    if os.path.lexists(target):
        target += "_" + time.strftime("%Y-%m-%d-%H-%M-%S")
    try:
        os.rename(data_dir, target)
    except OSError as exc:
        log.error("could not move the data directory of the failed bootstrap to %s: %s", target, exc)
        return None
    log.info("moved the data directory of the failed bootstrap to %s", target)
    return target
