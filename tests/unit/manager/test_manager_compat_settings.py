"""postgresql.use_unix_socket / use_unix_socket_repl, proxy_address and custom_conf
as Patroni 3.0.2 reads them."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from qhb_patroni.manager import conffiles
from qhb_patroni.manager.connection import local_params
from qhb_patroni.manager.settings import load_settings


def _pg(tmp_path: Path, **extra: Any) -> Dict[str, Any]:
    return {"postgresql": {"listen": "0.0.0.0:5433", "data_dir": str(tmp_path), "database": "qhb", **extra}}


def test_unix_socket_connections_use_the_first_absolute_directory(tmp_path: Path) -> None:
    params = {"unix_socket_directories": "@abstract, /run/qhb ,/tmp"}
    tcp = load_settings(_pg(tmp_path, parameters=params))
    assert (tcp.local_connect_host, tcp.local_replication_host) == ("127.0.0.1", "127.0.0.1")
    sock = load_settings(_pg(tmp_path, parameters=params, use_unix_socket=True))
    assert (sock.local_connect_host, sock.local_replication_host) == ("/run/qhb", "127.0.0.1")
    assert local_params(sock)["host"] == "/run/qhb" and local_params(sock)["port"] == 5433
    repl = load_settings(_pg(tmp_path, parameters=params, use_unix_socket_repl="on"))
    assert (repl.local_connect_host, repl.local_replication_host) == ("127.0.0.1", "/run/qhb")


def test_unix_socket_without_an_absolute_directory_falls_back_to_tcp(tmp_path: Path) -> None:
    settings = load_settings(_pg(tmp_path, parameters={"unix_socket_directories": "@abstract"}, use_unix_socket=True))
    assert settings.local_connect_host == "127.0.0.1"
    assert load_settings(_pg(tmp_path, use_unix_socket=True)).local_connect_host == "127.0.0.1"


def test_proxy_address_becomes_proxy_url(tmp_path: Path) -> None:
    assert load_settings(_pg(tmp_path)).proxy_url is None
    assert load_settings(_pg(tmp_path, proxy_address="10.0.0.9:6432")).proxy_url == "postgres://10.0.0.9:6432/qhb"


def test_custom_conf_is_included_instead_of_the_base_conf(tmp_path: Path) -> None:
    settings = load_settings(_pg(tmp_path, custom_conf="/etc/qhb/custom.conf", config_base_name="qhb"))
    assert settings.custom_conf == "/etc/qhb/custom.conf"
    text = conffiles.render_main_conf(settings.custom_conf or settings.layout.base_conf_name, {}, "h", "i")
    assert "include '/etc/qhb/custom.conf'" in text and "qhb.base.conf" not in text


def test_primary_stop_timeout_only_in_synchronous_mode(tmp_path: Path) -> None:
    def timeout(**top: Any) -> Any:
        return load_settings({**_pg(tmp_path), **top}).primary_stop_timeout

    assert timeout(primary_stop_timeout=30) is None  # 3.0.2: only in synchronous mode
    assert timeout(primary_stop_timeout=30, synchronous_mode=True) == 30.0
    assert timeout(master_stop_timeout="15", synchronous_mode="on") == 15.0
    assert timeout(primary_stop_timeout=0, synchronous_mode=True) is None


def test_member_key_says_checkpoint_after_promote_false_until_the_checkpoint(tmp_path: Path) -> None:
    from qhb_patroni.core.model import ROLE_MASTER, ROLE_REPLICA
    from qhb_patroni.manager import Manager

    manager = Manager(_pg(tmp_path, proxy_address="10.0.0.9:6432", authentication={}))
    assert "checkpoint_after_promote" not in manager.member_data()
    assert manager.member_data()["proxy_url"] == "postgres://10.0.0.9:6432/qhb"
    manager.server.role = ROLE_MASTER
    manager.checkpoint_pending = True
    assert manager.member_data()["checkpoint_after_promote"] is False
    manager.server.role = ROLE_REPLICA  # demoted meanwhile: not a leader's field any more
    assert "checkpoint_after_promote" not in manager.member_data()


def test_a_primary_that_is_down_can_give_the_role_up(tmp_path: Path) -> None:
    from qhb_patroni.core.model import ROLE_MASTER
    from qhb_patroni.manager import Manager

    manager = Manager(_pg(tmp_path, authentication={}))
    manager.server.role = ROLE_MASTER
    manager.mark_demoted()  # nothing runs in tmp_path: a crashed primary
    assert manager.member_data()["role"] == "demoted"
