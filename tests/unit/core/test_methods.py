"""core.methods: which custom bootstrap / replica creation methods run, with what arguments."""
from __future__ import annotations

from qhb_patroni.core.methods import (
    BASEBACKUP,
    ReplicaMethod,
    can_clone_without_leader,
    custom_bootstrap,
    methods_to_try,
    replica_methods,
)


def test_no_method_or_initdb_means_initdb() -> None:
    assert custom_bootstrap({}) == (None, [])
    assert custom_bootstrap({"method": "initdb", "initdb": ["data-checksums"]}) == (None, [])


def test_method_without_command_falls_back_to_initdb_with_a_warning() -> None:
    method, warnings = custom_bootstrap({"method": "restore", "restore": {"no_params": True}})
    assert method is None
    assert warnings == ["bootstrap.method is 'restore' but bootstrap.restore.command is not set: using initdb"]
    method, warnings = custom_bootstrap({"method": "restore"})
    assert method is None and "bootstrap.restore.command" in warnings[0]


def test_custom_bootstrap_arguments_and_options() -> None:
    method, warnings = custom_bootstrap({"method": "restore", "restore": {
        "command": "/usr/bin/restore --from s3", "keep_existing_recovery_conf": "true",
        "recovery_conf": {"restore_command": "cp /a/%f %p", "recovery_target_action": "promote"},
        "bogus": 1}})
    assert method is not None
    assert method.args("batman", "/data") == ["--scope=batman", "--datadir=/data"]
    assert method.keep_existing_recovery_conf and method.promotes
    assert dict(method.recovery_conf or ()) == {"restore_command": "cp /a/%f %p", "recovery_target_action": "promote"}
    assert warnings == ["bootstrap.restore.bogus is not a custom bootstrap option: ignored"]
    quiet, _ = custom_bootstrap({"method": "m", "m": {"command": "x", "no_params": True}})
    assert quiet is not None and quiet.args("s", "/d") == [] and not quiet.promotes
    assert quiet.recovery_conf is None


def test_promotes_only_with_promote_action_or_kept_recovery() -> None:
    paused, _ = custom_bootstrap({"method": "m", "m": {"command": "x", "recovery_conf": {
        "recovery_target_action": "pause"}}})
    assert paused is not None and not paused.promotes


def test_replica_methods_default_and_legacy_name() -> None:
    assert replica_methods({}) == ((ReplicaMethod(BASEBACKUP),), [])
    assert replica_methods({"create_replica_methods": []})[0] == (ReplicaMethod(BASEBACKUP),)
    methods, _ = replica_methods({"create_replica_method": ["wal_e", "basebackup"], "wal_e": {"command": "w"}})
    assert [m.name for m in methods] == ["wal_e", "basebackup"]


def test_custom_replica_method_arguments() -> None:
    methods, warnings = replica_methods({
        "create_replica_methods": ["restore", "basebackup"],
        "restore": {"command": "/bin/restore -v", "no_leader": True, "keep_data": "on", "target": "x y"},
        "basebackup": {"checkpoint": "fast"},
    })
    assert warnings == []
    restore, basebackup = methods
    assert restore.command == "/bin/restore -v" and restore.no_leader and restore.keep_data
    assert not restore.no_params and basebackup.builtin
    # Patroni passes every option (its own flags too) before the four fixed ones.
    assert restore.args("batman", "/data", "dbname=qhb host=h") == [
        "--no_leader=True", "--keep_data=on", "--target=x y",
        "--scope=batman", "--role=replica", "--datadir=/data", "--connstring=dbname=qhb host=h",
    ]


def test_no_params_drops_fixed_arguments_and_patroni_flags() -> None:
    methods, _ = replica_methods({"create_replica_methods": ["m"], "m": {
        "command": "c", "no_params": True, "no_master": 1, "keep_data": True, "bucket": "b"}})
    (m,) = methods
    assert m.no_leader  # legacy no_master
    assert m.args("s", "/d", "conn") == ["--bucket=b"]


def test_command_defaults_to_the_method_name_and_bad_sections_are_reported() -> None:
    methods, warnings = replica_methods({"create_replica_methods": ["pgbackrest", "broken"], "broken": "yes"})
    assert [(m.name, m.command) for m in methods] == [("pgbackrest", "pgbackrest")]
    assert warnings == ["postgresql.broken is not a mapping: method 'broken' skipped"]


def test_without_a_source_only_no_leader_methods_are_tried() -> None:
    methods, _ = replica_methods({"create_replica_methods": ["a", "basebackup", "b"],
                                  "a": {"command": "a"}, "b": {"command": "b", "no_leader": "yes"}})
    assert [m.name for m in methods_to_try(methods, have_source=True)] == ["a", "basebackup", "b"]
    assert [m.name for m in methods_to_try(methods, have_source=False)] == ["b"]
    assert can_clone_without_leader(methods)
    assert not can_clone_without_leader(replica_methods({})[0])
    # basebackup needs a source even when someone marks it no_leader.
    marked, _ = replica_methods({"basebackup": {"no_leader": True}})
    assert not can_clone_without_leader(marked)
