"""postgresql.create_replica_methods against real binaries: tried in order, first
success wins, their arguments, no_leader without a source, failures leave the
data directory empty and name the key."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from qhb_patroni.manager import Manager
from qhb_patroni.manager import replica as mreplica
from qhb_patroni.manager.settings import ManagerError
from tests.fixtures.pgbin import PG_BIN_DIR, make_qhb_bin_dir, pg_available, qhb_node_config
from tests.fixtures.scripts import write_script
from tests.integration.helpers import sql

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Manager]:
    if not pg_available():
        pytest.skip("PostgreSQL 15 binaries missing or running as root")
    base = tmp_path_factory.mktemp("methods")
    p = Manager(qhb_node_config(base, "mp", bin_dir=str(make_qhb_bin_dir(base / "bin"))))
    try:
        assert p.bootstrap()
        sql(p, "CREATE TABLE marker (id int)")
        sql(p, "INSERT INTO marker VALUES (7)")
        yield p
    finally:
        p.stop("immediate", timeout=10)


def _replica(tmp_path: Path, methods: List[str], sections: Dict[str, Any]) -> Manager:
    config = qhb_node_config(tmp_path, "mr", bin_dir=str(make_qhb_bin_dir(tmp_path / "bin")),
                             create_replica_methods=methods, **sections)
    return Manager(config)


def _backup(tmp_path: Path, primary: Manager, name: str, use_connstring: bool) -> str:
    """A method that records its arguments and restores a base backup of the primary
    (through --connstring and the pgpass file, or with its own connection = a backup)."""
    own = f"host=127.0.0.1 port={primary.settings.port} user=replicator password=rep-pass dbname=qhb"
    source = '"$C"' if use_connstring else f'"{own}"'
    return write_script(tmp_path / f"{name}.sh", (
        f'echo "$@" > "{tmp_path}/{name}.args"\n'
        'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; --connstring=*) C="${a#--connstring=}";;'
        ' esac; done\n'
        f'exec {PG_BIN_DIR}/pg_basebackup -D "$D" -X stream -d {source}\n'
    ))


def test_methods_in_order_first_success_wins(tmp_path: Path, primary: Manager) -> None:
    broken = write_script(tmp_path / "broken.sh", "echo 'bucket not found' >&2\nexit 4\n")
    r = _replica(tmp_path, ["broken", "mine", "basebackup"], {
        "broken": {"command": broken},
        "mine": {"command": _backup(tmp_path, primary, "mine", use_connstring=True), "bucket": "b1"},
    })
    try:
        assert r.clone(primary.conn_url, primary.conn_url) is True
        args = (tmp_path / "mine.args").read_text().split()
        assert args[0] == "--bucket=b1"
        assert args[1:4] == ["--scope=qhbtest", "--role=replica", f"--datadir={r.settings.data_dir}"]
        conn = " ".join(args[4:])
        assert conn.startswith("--connstring=") and "user=replicator" in conn and "password" not in conn
        assert sql(r, "SELECT id FROM marker") == [(7,)]
        assert sql(r, "SELECT pg_is_in_recovery()") == [(True,)]
    finally:
        r.stop("immediate", timeout=10)


def test_no_leader_method_restores_without_a_source(tmp_path: Path, primary: Manager) -> None:
    r = _replica(tmp_path, ["basebackup", "backup"], {
        "backup": {"command": _backup(tmp_path, primary, "backup", use_connstring=False),
                   "no_leader": True, "no_params": False},
    })
    try:
        assert r.clone(None, None) is True  # basebackup needs a source: not tried
        assert "--connstring=" in (tmp_path / "backup.args").read_text()
        assert sql(r, "SELECT id FROM marker") == [(7,)]
        assert r.server.recovery is not None and "primary_conninfo" not in r.server.recovery
    finally:
        r.stop("immediate", timeout=10)


def test_without_source_and_without_no_leader_method_nothing_runs(tmp_path: Path) -> None:
    r = _replica(tmp_path, ["basebackup"], {})
    with pytest.raises(ManagerError, match="no method that works without a leader"):
        mreplica.clone(r.server, None)


def test_all_methods_failing_leave_the_directory_empty(tmp_path: Path, primary: Manager) -> None:
    half = write_script(tmp_path / "half.sh", 'for a in "$@"; do case "$a" in --datadir=*) D="${a#--datadir=}";; esac;'
                   ' done\necho x > "$D/half"\nexit 1\n')
    r = _replica(tmp_path, ["half", "missing"], {"half": {"command": half},
                                                 "missing": {"command": str(tmp_path / "nope")}})
    with pytest.raises(ManagerError) as err:
        mreplica.clone(r.server, primary.conn_url)
    text = str(err.value)
    assert "postgresql.half.command" in text and "code=1" in text and "postgresql.missing.command" in text
    assert os.listdir(r.settings.data_dir) == []
    assert r.state == "stopped"


def test_command_that_exits_0_without_a_cluster_fails(tmp_path: Path, primary: Manager) -> None:
    r = _replica(tmp_path, ["noop"], {"noop": {"command": "true"}})
    with pytest.raises(ManagerError, match="left no database cluster"):
        mreplica.clone(r.server, primary.conn_url)


def test_hanging_method_is_bounded(tmp_path: Path, primary: Manager) -> None:
    r = _replica(tmp_path, ["slow"], {"slow": {"command": "sleep 600", "no_params": True}})
    with pytest.raises(ManagerError, match="postgresql.slow.command: sleep timed out"):
        mreplica.clone(r.server, primary.conn_url, timeout=1.0)
    assert os.listdir(r.settings.data_dir) == []
