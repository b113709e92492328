"""Custom bootstrap (bootstrap.method) against real binaries: a base backup of
another cluster restored by the operator's command, recovery_conf of the method,
post_bootstrap with the superuser connection string, and failures that leave the
node safe (state, data directory moved aside, no server running)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from qhb_patroni.core.methods import CustomBootstrap
from qhb_patroni.manager import Manager
from qhb_patroni.manager import bootstrap as mbootstrap
from qhb_patroni.manager.settings import ManagerError
from tests.fixtures.pgbin import PG_BIN_DIR, make_qhb_bin_dir, pg_available, qhb_node_config
from tests.fixtures.scripts import write_script
from tests.integration.helpers import sql

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    """Another cluster (its own scope) with a row to find in the restored copy."""
    if not pg_available():
        pytest.skip("PostgreSQL 15 binaries missing or running as root")
    base = tmp_path_factory.mktemp("src")
    bin_dir = str(make_qhb_bin_dir(base / "bin"))
    src = Manager(qhb_node_config(base, "src", bin_dir=bin_dir, scope="elsewhere"))
    try:
        assert src.bootstrap()
        sql(src, "CREATE TABLE from_source (id int)")
        sql(src, "INSERT INTO from_source VALUES (42)")
        yield src
    finally:
        src.stop("immediate", timeout=10)
        assert not src.server.is_running()


def _restore_config(base: Path, source: Manager, **method: Any) -> Dict[str, Any]:
    restore = write_script(base / "restore.sh", (
        'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; --scope=*) S="${a#--scope=}";; esac; done\n'
        'echo "$S" > "$(dirname "$D")/scope-seen"\n'
        f'exec {PG_BIN_DIR}/pg_basebackup -D "$D" -X stream '
        f'-d "host=127.0.0.1 port={source.settings.port} user=replicator password=rep-pass dbname=qhb"\n'
    ))
    post = write_script(base / "post.sh", (
        'echo "$1" > "$(dirname "$0")/post-args"\n'
        'echo "$PGOPTIONS" > "$(dirname "$0")/post-options"\n'
        f'exec {PG_BIN_DIR}/psql "$1" -v ON_ERROR_STOP=1 -c "CREATE TABLE made_by_post_bootstrap (id int)"\n'
    ))
    config = qhb_node_config(base, "dst", bin_dir=str(make_qhb_bin_dir(base / "bin")), scope="here")
    config["postgresql"]["authentication"]["superuser"]["password"] = "another-pass"
    section: Dict[str, Any] = {"command": restore}
    section.update(method)
    config["bootstrap"].update(method="restore", restore=section, post_bootstrap=post)
    return config


def test_restore_base_backup_of_another_cluster(tmp_path: Path, source: Manager) -> None:
    config = _restore_config(tmp_path, source, recovery_conf={
        "restore_command": "false", "recovery_target": "immediate", "recovery_target_action": "promote"})
    dst = Manager(config)
    try:
        assert dst.bootstrap() is True
        # The source's data, now writable here, with our superuser password (the
        # source's was different) and the users of bootstrap.users.
        assert sql(dst, "SELECT id FROM from_source") == [(42,)]
        assert sql(dst, "SELECT pg_is_in_recovery()") == [(False,)]
        assert sql(dst, "SELECT 1", user="admin", password="admin-pass") == [(1,)]
        # post_bootstrap ran with the superuser DSN (no password: pgpass), commits local.
        assert sql(dst, "SELECT count(*) FROM made_by_post_bootstrap") == [(0,)]
        args = (tmp_path / "post-args").read_text()
        assert "user=qhb" in args and "dbname=qhb" in args and "password" not in args
        assert (tmp_path / "post-options").read_text().strip() == "-c synchronous_commit=local"
        assert (tmp_path / "dst" / "scope-seen").read_text().strip() == "here"
        # Back to the configured hba file and parameters; no recovery left behind.
        data = dst.settings.data_dir
        main = open(os.path.join(data, "qhb.conf")).read()
        assert "qhb_hba.conf'" in main and ".bootstrap" not in main and "recovery_target" not in main
        assert not os.path.exists(os.path.join(data, "recovery.signal"))
        assert not os.path.exists(os.path.join(data, "qhb_hba.conf.bootstrap"))
        assert sql(dst, "SHOW hot_standby") == [("on",)]
        assert dst.role == "master" and dst.state == "running"
    finally:
        dst.stop("immediate", timeout=10)


def test_failing_command_moves_the_data_directory_aside(tmp_path: Path, source: Manager) -> None:
    config = _restore_config(tmp_path, source)
    bad = write_script(tmp_path / "bad.sh",
                       'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; esac; done\n'
                       'echo half > "$D/half-restored"\necho "no backup found" >&2\nexit 3\n')
    config["bootstrap"]["restore"]["command"] = bad
    dst = Manager(config)
    with pytest.raises(ManagerError) as err:
        dst.bootstrap()
    assert "bootstrap.restore.command" in str(err.value) and "code=3" in str(err.value)
    assert "no backup found" in str(err.value)
    assert dst.state == "custom bootstrap failed" and not dst.server.is_running()
    data = dst.settings.data_dir
    assert not os.path.exists(data)
    assert os.path.exists(os.path.join(data + ".failed", "half-restored"))


def test_missing_command_fails_naming_the_key(tmp_path: Path, source: Manager) -> None:
    config = _restore_config(tmp_path, source)
    config["bootstrap"]["restore"]["command"] = str(tmp_path / "no-such-restore")
    dst = Manager(config)
    with pytest.raises(ManagerError, match="bootstrap.restore.command"):
        dst.bootstrap()
    assert dst.state == "custom bootstrap failed" and not dst.server.is_running()


def test_hanging_command_is_bounded(tmp_path: Path, source: Manager) -> None:
    config = _restore_config(tmp_path, source)
    dst = Manager(config)
    method = CustomBootstrap(name="restore", command="sleep 600", no_params=True)
    with pytest.raises(ManagerError, match="timed out"):
        mbootstrap.custom_bootstrap(dst.server, method, timeout=1.0)
    assert dst.state == "custom bootstrap failed"


def test_failing_post_bootstrap_fails_the_bootstrap(tmp_path: Path, source: Manager) -> None:
    config = _restore_config(tmp_path, source, recovery_conf={
        "restore_command": "false", "recovery_target": "immediate", "recovery_target_action": "promote"})
    config["bootstrap"]["post_bootstrap"] = write_script(tmp_path / "post-fails.sh",
                                                         "echo 'cannot do it' >&2\nexit 1\n")
    dst = Manager(config)
    with pytest.raises(ManagerError, match="bootstrap.post_bootstrap script .* returned 1: cannot do it"):
        dst.bootstrap()
    assert not dst.server.is_running()
    assert os.path.isdir(dst.settings.data_dir + ".failed") and not os.path.exists(dst.settings.data_dir)
