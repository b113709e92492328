"""names (binary detection, layout), settings and control data parsing."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from qhb_patroni.manager.controldata import ControlData, parse_controldata
from qhb_patroni.manager.names import Layout, resolve_binaries
from qhb_patroni.manager.observe import following_from_conninfo
from qhb_patroni.manager.settings import ManagerError, load_settings, split_listen


def _exe(path: Path) -> None:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_qhb_name_preferred_then_postgres_name(tmp_path: Path) -> None:
    _exe(tmp_path / "qhb")
    _exe(tmp_path / "postgres")
    _exe(tmp_path / "pg_ctl")
    _exe(tmp_path / "initdb")
    _exe(tmp_path / "qhb_bootstrap")
    (tmp_path / "qhb_rewind").write_text("not executable")
    found = resolve_binaries(str(tmp_path))
    assert found["server"] == str(tmp_path / "qhb")
    assert found["ctl"] == str(tmp_path / "pg_ctl")
    assert found["initdb"] == str(tmp_path / "qhb_bootstrap")
    # missing (or not executable): the PostgreSQL name in bin_dir, so errors name it
    assert found["rewind"] == str(tmp_path / "pg_rewind")
    assert set(found) == {"server", "ctl", "initdb", "basebackup", "rewind", "controldata", "isready", "waldump"}


def test_bin_name_overrides(tmp_path: Path) -> None:
    _exe(tmp_path / "qhb")
    _exe(tmp_path / "my_ctl")
    found = resolve_binaries(str(tmp_path), {"server": "/opt/x/postgres", "ctl": "my_ctl"})
    assert found["server"] == "/opt/x/postgres"
    assert found["ctl"] == str(tmp_path / "my_ctl")


def test_bin_name_accepts_the_patroni_keys(tmp_path: Path) -> None:
    _exe(tmp_path / "my_rewind")
    found = resolve_binaries(str(tmp_path), {"postgres": "/opt/x/qhb", "pg_rewind": "my_rewind",
                                             "pg_ctl": "/a/pg_ctl", "ctl": "/b/qhb_ctl"})
    assert found["server"] == "/opt/x/qhb"
    assert found["rewind"] == str(tmp_path / "my_rewind")
    assert found["ctl"] == "/b/qhb_ctl"  # our own key wins when both are given


def test_path_lookup_without_bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _exe(tmp_path / "qhb_isready")
    monkeypatch.setenv("PATH", str(tmp_path))
    found = resolve_binaries("")
    assert found["isready"] == str(tmp_path / "qhb_isready")
    assert found["server"] == "postgres"


def test_layout_paths() -> None:
    layout = Layout("/d", "/c", "qhb", "qhb_hba.conf", "/abs/ident")
    assert layout.main_conf == "/c/qhb.conf" and layout.base_conf == "/c/qhb.base.conf"
    assert layout.hba_file == "/c/qhb_hba.conf" and layout.ident_file == "/abs/ident"
    assert layout.standby_signal == "/d/standby.signal"
    assert layout.pg_control == os.path.join("/d", "global", "pg_control")
    default = Layout("/d", "/d")
    assert default.main_conf == "/d/postgresql.conf" and default.hba_file == "/d/pg_hba.conf"


def test_split_listen() -> None:
    assert split_listen("127.0.0.1,10.0.0.1,::1:5432") == ("127.0.0.1,10.0.0.1,::1", 5432)
    with pytest.raises(ManagerError):
        split_listen("127.0.0.1")


def test_load_settings_guide_shape(tmp_path: Path) -> None:
    config = {
        "name": "qhb0",
        "scope": "cluster",
        "postgresql": {
            "listen": "127.0.0.1,10.0.0.4,::1:5432",
            "data_dir": str(tmp_path / "data"),
            "bin_dir": str(tmp_path),
            "pgpass": "/tmp/pgpass0",
            "authentication": {
                "replication": {"username": "replicator", "password": "rep-pass"},
                "superuser": {"username": "qhb", "password": "qhb", "sslmode": "require"},
                "rewind": {"username": "rewind_user", "password": "rewind_password"},
            },
            "parameters": {"unix_socket_directories": "."},
            "hba_file": "qhb_hba.conf",
            "ident_file": "qhb_ident.conf",
            "database": "qhb",
            "config_base_name": "qhb",
        },
        "bootstrap": {"qhb_hba": ["host all all 0.0.0.0/0 md5"], "initdb": ["data-checksums"]},
    }
    s = load_settings(config)
    assert s.connect_address == "localhost:5432"  # listen contains 127.0.0.1
    assert s.conn_url == "postgres://localhost:5432/qhb"
    assert s.local_host == "127.0.0.1"
    assert s.layout.main_conf == str(tmp_path / "data" / "qhb.conf")
    assert s.layout.hba_file == str(tmp_path / "data" / "qhb_hba.conf")
    assert s.superuser.extra == {"sslmode": "require"}
    assert s.rewind.username == "rewind_user"
    assert s.bootstrap_hba == ["host all all 0.0.0.0/0 md5"]
    assert s.use_slots is True and s.use_pg_rewind is False and s.pg_ctl_timeout == 60
    no_rewind = load_settings({**config, "postgresql": {**config["postgresql"], "authentication": {}}})
    assert no_rewind.rewind == no_rewind.superuser
    with pytest.raises(ManagerError):
        load_settings({"postgresql": {"listen": "1.2.3.4:5"}})


CONTROLDATA = """\
pg_control version number:            1300
Database system identifier:           7214159812345678901
Database cluster state:               shut down in recovery
Latest checkpoint location:           0/3000060
Latest checkpoint's TimeLineID:       1
Minimum recovery ending location:     0/30000D8
Min recovery ending loc's timeline:   2
wal_log_hints setting:                on
Current max_connections setting:      100
Data page checksum version:           0
"""


def test_parse_controldata() -> None:
    values = parse_controldata(CONTROLDATA)
    assert values["max_connections setting"] == "100"
    data = ControlData(values)
    assert data.sysid == "7214159812345678901"
    assert data.clean_shutdown and data.rewind_capable
    assert data.checkpoint_lsn == 0x3000060 and data.checkpoint_timeline == 1
    assert data.local_position() == (2, 0x30000D8)
    primary = ControlData({**values, "Database cluster state": "shut down", "wal_log_hints setting": "off"})
    assert primary.local_position() == (1, 0x3000060)
    assert not primary.rewind_capable
    assert ControlData({"Data page checksum version": "1"}).rewind_capable
    assert not ControlData({"Database cluster state": "in production"}).clean_shutdown


def test_following_from_conninfo() -> None:
    assert following_from_conninfo("user=r passfile=/p host=10.0.0.1 port=5433 sslmode=prefer") == "10.0.0.1:5433"
    assert following_from_conninfo("user=r host=h") == "h:5432"
    assert following_from_conninfo("") is None
    assert following_from_conninfo("user=r") is None


def test_pg_hba_and_pg_ident_go_into_the_configured_files(tmp_path: Path) -> None:
    pg = {"listen": "127.0.0.1:5432", "data_dir": str(tmp_path), "pg_hba": ["host all all 0.0.0.0/0 md5"]}
    managed = load_settings({"postgresql": pg})
    assert managed.pg_hba == ["host all all 0.0.0.0/0 md5"] and managed.pg_ident is None
    assert managed.layout.hba_file == str(tmp_path / "pg_hba.conf")
    qhb = load_settings({"postgresql": {**pg, "hba_file": "qhb_hba.conf", "ident_file": "qhb_ident.conf",
                                        "pg_ident": ["map1 os1 db1"]}})
    assert qhb.pg_hba == ["host all all 0.0.0.0/0 md5"] and qhb.pg_ident == ["map1 os1 db1"]
    assert (qhb.layout.hba_file, qhb.layout.ident_file) == (str(tmp_path / "qhb_hba.conf"),
                                                           str(tmp_path / "qhb_ident.conf"))
    unset = load_settings({"postgresql": {"listen": "127.0.0.1:5432", "data_dir": str(tmp_path),
                                          "hba_file": "qhb_hba.conf"}})
    assert unset.pg_hba is None and unset.pg_ident is None  # the file is left alone
