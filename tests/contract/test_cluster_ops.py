"""The DCS contract, part 1: the leader race, leases, and every key's round trip.
Runs against every backend in conftest.BACKEND_FACTORIES."""
from __future__ import annotations

import datetime as dt
import threading
from typing import Callable, List, Optional

from qhb_patroni.dcs import keys
from tests.contract.backends import Backend

Factory = Callable[..., Backend]


def test_absent_cluster_is_empty_not_an_error(store_factory: Factory) -> None:
    view = store_factory().client("n0").get_cluster()
    assert view.initialize is None and view.leader is None and view.members == ()
    assert view.config is None and view.failover is None and view.sync is None
    assert view.history is None and view.failsafe is None and view.last_lsn == 0


def test_initialize_race_has_exactly_one_winner(store_factory: Factory) -> None:
    backend = store_factory()
    clients = [backend.client(f"n{i}") for i in range(5)]
    results: List[Optional[bool]] = [None] * len(clients)
    barrier = threading.Barrier(len(clients))

    def race(i: int) -> None:
        barrier.wait()
        results[i] = clients[i].initialize("", create=True)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count(True) == 1 and results.count(False) == len(clients) - 1
    winner = clients[results.index(True)]
    view = winner.get_cluster()
    assert view.initialize == "" and view.initialize_version is not None
    # The winner records the system identifier (CAS on what it read); a stale version fails.
    assert winner.initialize("7214287012345678901", create=False, version=view.initialize_version)
    assert not winner.initialize("1", create=False, version=view.initialize_version)
    assert clients[0].get_cluster().initialize == "7214287012345678901"
    assert winner.cancel_initialization()
    assert clients[1].get_cluster().initialize is None
    assert clients[1].initialize("", create=True)


def test_leader_acquire_renew_and_cas_conflict(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    v1 = a.attempt_to_acquire_leader()
    assert v1 is not None
    assert b.attempt_to_acquire_leader() is None  # lost race
    view = b.get_cluster()
    assert view.leader is not None and view.leader.name == "a" and view.leader.version == v1
    v2 = a.update_leader(v1)
    assert v2 is not None and v2 != v1
    # b cannot renew a's lock with a version it saw before a renewed
    assert b.update_leader(v1) is None
    assert b.get_cluster().leader.name == "a"  # type: ignore[union-attr]
    # a renewing with a stale version still works: the key holds a's name
    v3 = a.update_leader(v1)
    assert v3 is not None and a.get_cluster().leader.version == v3  # type: ignore[union-attr]


def test_delete_leader_only_by_owner(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    v1 = a.attempt_to_acquire_leader()
    assert v1 is not None
    assert not b.delete_leader(None)  # not b's lock (checked by name)
    v2 = a.update_leader(v1)
    assert not a.delete_leader(v1)  # stale version: CAS fails
    assert b.get_cluster().leader is not None
    assert a.delete_leader(v2, last_lsn=12345)
    view = b.get_cluster()
    assert view.leader is None and view.last_lsn == 12345
    assert b.attempt_to_acquire_leader() is not None


def test_take_leader_is_unconditional(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    assert a.attempt_to_acquire_leader() is not None
    assert b.take_leader()
    assert a.get_cluster().leader.name == "b"  # type: ignore[union-attr]


def test_leader_lease_expires_within_ttl(store_factory: Factory) -> None:
    backend = store_factory()
    ttl = 2.0
    a, b = backend.client("a", ttl=ttl), backend.client("b", ttl=ttl)
    assert a.attempt_to_acquire_leader() is not None
    backend.let_time_pass(ttl / 4)
    assert b.get_cluster().leader is not None  # still valid before ttl
    # not renewed: gone after the lease (etcd's expiry sweeps run every ~0.5 s; allow slack)
    lease = backend.lease_seconds(ttl)
    assert backend.wait_until(lambda: b.get_cluster().leader is None, within=lease + 2 * ttl)
    assert b.attempt_to_acquire_leader() is not None
    # a's renewal now fails: the lock is b's
    assert a.update_leader(None) is None


def test_renewal_keeps_the_lease(store_factory: Factory) -> None:
    backend = store_factory()
    ttl = 2.0
    a = backend.client("a", ttl=ttl)
    version = a.attempt_to_acquire_leader()
    for _ in range(4):
        backend.let_time_pass(ttl / 2)
        version = a.update_leader(version)
        assert version is not None
    assert a.get_cluster().leader.name == "a"  # type: ignore[union-attr]


def test_member_keys_expire_when_not_renewed(store_factory: Factory) -> None:
    backend = store_factory()
    ttl = 2.0
    a, b = backend.client("a", ttl=ttl), backend.client("b", ttl=ttl)
    data = {"conn_url": "postgres://127.0.0.1:5432/postgres", "api_url": "http://127.0.0.1:8008/patroni",
            "state": "running", "role": "replica", "version": "3.0.2"}
    assert a.touch_member(data) and b.touch_member(dict(data, role="master"))
    names = [m.name for m in a.get_cluster().members]
    assert names == ["a", "b"]
    for _ in range(3):  # b keeps renewing, a does not
        backend.let_time_pass(ttl / 2)
        assert b.touch_member(data)
    lease = backend.lease_seconds(ttl)
    assert backend.wait_until(lambda: [m.name for m in b.get_cluster().members] == ["b"], within=lease + 2 * ttl)
    member = b.get_cluster().member("b")
    assert member is not None and member.role == "replica" and member.api_url == data["api_url"]


def test_permanent_keys_round_trip(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    at = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    assert a.set_config({"ttl": 30, "loop_wait": 10, "postgresql": {"parameters": {"max_connections": 100}}})
    assert a.set_failover({"leader": "a", "member": "b", "scheduled_at": at})
    assert a.set_sync("a", ["c", "b"])
    assert a.set_history([[1, 25623960, "no recovery target specified", "2023-03-20T16:57:57+00:00", "a"]])
    assert a.write_status(50331968, {"logical_1": 50331000})
    assert a.write_failsafe({"a": "http://a:8008/patroni", "b": "http://b:8008/patroni"})
    view = b.get_cluster()
    assert view.config is not None and view.config.data["postgresql"] == {"parameters": {"max_connections": 100}}
    assert view.failover is not None and (view.failover.leader, view.failover.candidate) == ("a", "b")
    assert view.failover.scheduled_at == at
    assert view.sync is not None and view.sync.leader == "a" and view.sync.sync_standby == ("b", "c")
    assert view.history == ((1, 25623960, "no recovery target specified", "2023-03-20T16:57:57+00:00", "a"),)
    assert view.timeline == 2
    assert view.last_lsn == 50331968 and dict(view.slots) == {"logical_1": 50331000}
    assert view.failsafe == {"a": "http://a:8008/patroni", "b": "http://b:8008/patroni"}
    # the stored strings are exactly Patroni's
    nodes = b.store.load().nodes
    assert nodes[keys.SYNC].value == '{"leader":"a","sync_standby":"b,c"}'
    assert nodes[keys.STATUS].value == '{"optime":50331968,"slots":{"logical_1":50331000}}'
    assert nodes[keys.FAILOVER].value == '{"leader":"a","member":"b","scheduled_at":"2031-05-06T07:08:09+00:00"}'


def test_cas_on_config_failover_sync(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    assert a.set_config({"ttl": 30})
    assert a.set_failover({"member": "b"})
    assert a.set_sync("a", ["b"])
    view = b.get_cluster()
    assert view.config is not None and view.failover is not None and view.sync is not None
    assert b.set_config({"ttl": 20}, version=view.config.version)
    assert not a.set_config({"ttl": 40}, version=view.config.version)  # stale
    assert b.get_cluster().config.data == {"ttl": 20}  # type: ignore[union-attr]
    assert a.set_failover({}, version=view.failover.version)  # clear with CAS
    assert b.get_cluster().failover is None
    assert not a.set_failover({"member": "x"}, version=view.failover.version)
    assert not b.delete_sync(version=(view.sync.version or 0) + 1000)
    assert b.delete_sync(version=view.sync.version)
    assert a.get_cluster().sync is None


def test_update_leader_writes_status_only_when_changed(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    v = a.attempt_to_acquire_leader()
    v = a.update_leader(v, last_lsn=100)
    first = b.get_cluster()
    assert first.last_lsn == 100 and first.status_version is not None
    v = a.update_leader(v, last_lsn=100)
    assert b.get_cluster().status_version == first.status_version  # unchanged -> not rewritten
    a.update_leader(v, last_lsn=200)
    assert b.get_cluster().last_lsn == 200


def test_legacy_optime_key(store_factory: Factory) -> None:
    backend = store_factory()
    a = backend.client("a")
    assert a.write_legacy_optime(777)
    assert a.get_cluster().last_lsn == 777


def test_delete_cluster_removes_everything(store_factory: Factory) -> None:
    backend = store_factory()
    a = backend.client("a")
    a.initialize("", create=True)
    a.attempt_to_acquire_leader()
    a.touch_member({"state": "running"})
    a.set_config({"ttl": 30})
    a.delete_cluster()
    view = a.get_cluster()
    assert view.initialize is None and view.leader is None and view.members == () and view.config is None
    assert a.store.load().nodes == {}


def test_failsafe_key_written_again_after_a_delete(store_factory: Factory) -> None:
    """failsafe_mode turned off deletes /failsafe; turned on again, the same value is
    written again (the writer's 'unchanged' shortcut must not skip it)."""
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    members = {"a": "http://a:8008/patroni"}
    assert a.write_failsafe(members)
    assert b.get_cluster().failsafe == members
    assert a.delete_failsafe()
    assert b.get_cluster().failsafe is None
    assert a.write_failsafe(members)
    assert b.get_cluster().failsafe == members


def test_failsafe_key_rewritten_after_someone_else_removed_it(store_factory: Factory) -> None:
    backend = store_factory()
    a, b = backend.client("a"), backend.client("b")
    members = {"a": "http://a:8008/patroni"}
    assert a.write_failsafe(members)
    assert b.delete_failsafe()
    assert a.write_failsafe(members)  # "unchanged since my last write": skipped
    assert b.get_cluster().failsafe is None
    assert a.write_failsafe(members, force=True)
    assert b.get_cluster().failsafe == members
