"""Manager with PostgreSQL's own names (bin_dir = PG 15, default file names),
plus a clean switchover where the stopped former primary needs no rewind."""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator

import pytest

from qhb_patroni.manager import Manager
from tests.fixtures.pgbin import PG_BIN_DIR, pg_available, qhb_node_config
from tests.integration.helpers import eventually, sql

pytestmark = pytest.mark.pg


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    if not pg_available():
        pytest.skip("PostgreSQL 15 binaries missing or running as root")
    base = tmp_path_factory.mktemp("pg")
    p = Manager(qhb_node_config(base, "pg1", bin_dir=PG_BIN_DIR, qhb_names=False, socket_dir="."))
    r = Manager(qhb_node_config(base, "pg2", bin_dir=PG_BIN_DIR, qhb_names=False))
    try:
        yield {"p": p, "r": r}
    finally:
        for manager in (p, r):
            manager.stop("immediate", timeout=10)
        for manager in (p, r):
            assert not manager.server.is_running()


def test_bootstrap_with_postgres_names(pair: Dict[str, Any]) -> None:
    p: Manager = pair["p"]
    assert p.binaries["server"] == os.path.join(PG_BIN_DIR, "postgres")
    assert p.binaries["initdb"] == os.path.join(PG_BIN_DIR, "initdb")
    assert p.bootstrap() is True
    data_dir = p.settings.data_dir
    main = open(os.path.join(data_dir, "postgresql.conf")).read()
    assert "include 'postgresql.base.conf'" in main
    assert f"hba_file = '{os.path.join(data_dir, 'pg_hba.conf')}'" in main
    assert os.path.exists(os.path.join(data_dir, "postgresql.base.conf"))
    assert "host all all 127.0.0.1/32 scram-sha-256" in open(os.path.join(data_dir, "pg_hba.conf")).read()
    assert sql(p, "SELECT current_database(), current_user") == [("postgres", "postgres")]
    assert sql(p, "SELECT 1", user="admin", password="admin-pass") == [(1,)]


def test_clean_switchover_needs_no_rewind(pair: Dict[str, Any]) -> None:
    p: Manager = pair["p"]
    r: Manager = pair["r"]
    p.sync_slots(["pg2"])
    assert r.clone(p.conn_url, p.conn_url) is True
    sql(p, "CREATE TABLE t AS SELECT 1 AS id")
    eventually(lambda: sql(r, "SELECT id FROM t") == [(1,)], what="row replicated")
    assert p.stop("fast") is True
    assert p.observe().controldata_state == "shut down"
    assert r.promote(30) is True
    # The stopped former primary: its shutdown checkpoint ends at the switch point.
    assert p.check_divergence(r.conn_url) is False, p.last_divergence_detail
    assert "checkpoint end" in p.last_divergence_detail and "unknown" not in p.last_divergence_detail
    r.sync_slots(["pg1"])
    assert p.follow(r.conn_url) is True
    sql(r, "INSERT INTO t VALUES (2)")
    eventually(lambda: sql(p, "SELECT count(*) FROM t") == [(2,)], what="old primary follows new one")
    assert p.observe().timeline == 2 and p.observe().is_replica
