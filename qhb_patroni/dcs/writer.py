"""Cluster operations (leader race, member touch, config/failover/sync writes)
built on a narrow `Store` and the key codec.  Used by the daemon and patronictl.

Every conditional write takes the version it read (compare-and-swap); every
method raises DCSError when the store cannot be reached, and returns False /
None when a condition failed.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from qhb_patroni.core.model import ClusterView
from qhb_patroni.dcs import keys
from qhb_patroni.dcs.base import Snapshot, Store

log = logging.getLogger(__name__)


class ClusterDCS:
    """One node's handle on one cluster's keys."""

    def __init__(self, store: Store, name: str, ttl: float = 30.0, retry_timeout: float = 10.0,
                 base: str = "") -> None:
        self.store = store
        self.name = name
        self.base = base  # for messages / patronictl display only
        self._ttl = float(ttl)
        self._retry_timeout = float(retry_timeout)
        self._last_status: Optional[str] = None
        self._last_failsafe: Optional[str] = None
        # key -> (value, reasons) last logged as invalid: each bad value is logged once,
        # not every cycle; a key that reads fine again is forgotten.
        self._reported: Dict[str, Tuple[str, Tuple[str, ...]]] = {}
        store.set_ttl(self._ttl)

    # ---- settings ------------------------------------------------------------
    @property
    def ttl(self) -> float:
        return self._ttl

    @property
    def retry_timeout(self) -> float:
        return self._retry_timeout

    def set_ttl(self, ttl: float) -> bool:
        """Apply a new ttl (from /config). True if it changed."""
        ttl = float(ttl)
        if ttl == self._ttl:
            return False
        self._ttl = ttl
        self.store.set_ttl(ttl)
        return True

    def set_retry_timeout(self, retry_timeout: float) -> None:
        self._retry_timeout = float(retry_timeout)
        setter = getattr(self.store, "set_retry_timeout", None)
        if callable(setter):
            setter(self._retry_timeout)

    # ---- reading -------------------------------------------------------------
    def get_cluster(self) -> ClusterView:
        snapshot = self.store.load()
        view, problems = keys.decode_checked(snapshot)
        self._report(snapshot, problems)
        return view

    def _report(self, snapshot: Snapshot, problems: List[Tuple[str, str]]) -> None:
        """Log what the decoder ignored, once per key and value."""
        by_key: Dict[str, List[str]] = {}
        for key, reason in problems:
            by_key.setdefault(key, []).append(reason)
        for key in [k for k in self._reported if k not in by_key]:
            del self._reported[key]
        for key, reasons in by_key.items():
            node = snapshot.nodes.get(key)
            value = node.value if node is not None else ""
            entry = (value, tuple(reasons))
            if self._reported.get(key) == entry:
                continue
            self._reported[key] = entry
            where = f"{self.base.rstrip('/')}/{key}" if self.base else key
            log.warning("ignoring invalid DCS value at %s: %s", where or "(cluster)", "; ".join(reasons[:5]))

    def watch_leader(self, cluster: Optional[ClusterView], timeout: float) -> bool:
        """Sleep up to `timeout` s, waking early when the leader key changes
        relative to `cluster` (changed, expired, deleted, or appeared).
        True when woken by a change."""
        version = cluster.leader.version if cluster is not None and cluster.leader is not None else None
        index = cluster.watch_index if cluster is not None else None
        return self.store.watch(keys.LEADER, version, index, timeout)

    def renewed(self, cluster: Optional[ClusterView]) -> Optional[ClusterView]:
        """After watch_leader() woke: `cluster` with the leader key at its new version when
        the event that woke it was a renewal by the same leader (the store told its value
        with it: etcd v2), so the watch goes on without reading the whole cluster again;
        None when it was anything else or is not known (the caller reads the cluster)."""
        event = self.store.last_watch
        if event is None or cluster is None or cluster.leader is None or event[0] != cluster.leader.name:
            return None
        return replace(cluster, leader=replace(cluster.leader, version=event[1]))

    def watch_failover(self, cluster: Optional[ClusterView], timeout: float) -> bool:
        """Sleep up to `timeout` s, waking early when /failover changes from what it
        held in `cluster` (its raw version: a cleared key "{}" decodes to no failover at
        all), i.e. since that read; without a view, from what it holds now.  The lock
        holder watches this instead of its own leader key."""
        if cluster is None:
            snap = self.store.load()
            node = snap.nodes.get(keys.FAILOVER)
            return self.store.watch(keys.FAILOVER, node.version if node else None, snap.index, timeout)
        return self.store.watch(keys.FAILOVER, cluster.failover_version, cluster.watch_index, timeout)

    # ---- members -------------------------------------------------------------
    def touch_member(self, data: Mapping[str, Any]) -> bool:
        """Publish this node's member key (ephemeral, ttl-bound)."""
        value = keys.encode_member(data)
        ok = self.store.put(keys.member_key(self.name), value, ephemeral=True) is not None
        if ok:
            self.store.keepalive()
        return ok

    def delete_member(self, name: Optional[str] = None) -> bool:
        return self.store.delete(keys.member_key(name or self.name))

    # ---- leader lock -----------------------------------------------------------
    def attempt_to_acquire_leader(self) -> Optional[int]:
        """Create-only put of my name at /leader. The new version, or None if taken."""
        return self.store.put(keys.LEADER, self.name, create=True, ephemeral=True)

    def update_leader(self, version: Optional[int], last_lsn: Optional[int] = None,
                      slots: Optional[Mapping[str, int]] = None) -> Optional[int]:
        """Renew my lock (CAS on `version`). Returns the new version, None if the
        lock is not mine any more.  On success writes /status when last_lsn is
        given and the value changed."""
        new_version = self._renew(version)
        if new_version is not None:
            self.store.keepalive()
            if last_lsn:
                self.write_status(last_lsn, slots)
        return new_version

    def _renew(self, version: Optional[int]) -> Optional[int]:
        if version is not None:
            new_version = self.store.put(keys.LEADER, self.name, version=version, ephemeral=True)
            if new_version is not None:
                return new_version
        # Key gone (expired): re-acquire, as Patroni does.
        new_version = self.store.put(keys.LEADER, self.name, create=True, ephemeral=True)
        if new_version is not None:
            return new_version
        # Our version was stale, but the key may still hold our name (e.g. an
        # answer lost in transit): ownership is by name, like etcd's prevValue.
        node = self.store.load().nodes.get(keys.LEADER)
        if node is not None and node.value == self.name:
            return self.store.put(keys.LEADER, self.name, version=node.version, ephemeral=True)
        return None

    def take_leader(self) -> bool:
        """Unconditional put (bootstrap / standby leader takeover)."""
        return self.store.put(keys.LEADER, self.name, ephemeral=True) is not None

    def delete_leader(self, version: Optional[int], last_lsn: Optional[int] = None) -> bool:
        """Release my lock, only if it is still mine (CAS on `version`, or by
        name when the version is unknown).  Writes /status first when last_lsn given."""
        if version is None:
            node = self.store.load().nodes.get(keys.LEADER)
            if node is None or node.value != self.name:
                return False
            version = node.version
        if last_lsn:
            self.write_status(last_lsn)
        return self.store.delete(keys.LEADER, version=version)

    # ---- initialize --------------------------------------------------------------
    def initialize(self, value: str = "", create: bool = True, version: Optional[int] = None) -> bool:
        """create=True: the bootstrap race (create-only).  Otherwise set the
        system identifier (CAS on `version` when given)."""
        if create:
            return self.store.put(keys.INITIALIZE, value, create=True) is not None
        return self.store.put(keys.INITIALIZE, value, version=version) is not None

    def cancel_initialization(self) -> bool:
        return self.store.delete(keys.INITIALIZE)

    # ---- permanent keys ----------------------------------------------------------
    def set_config(self, data: Mapping[str, Any], version: Optional[int] = None) -> bool:
        return self.store.put(keys.CONFIG, keys.encode_config(data), version=version) is not None

    def set_config_value(self, value: str, version: Optional[int] = None) -> bool:
        """Raw JSON text (edit-config writes what the user typed, re-serialised by the caller)."""
        return self.store.put(keys.CONFIG, value, version=version) is not None

    def set_failover(self, data: Mapping[str, Any], version: Optional[int] = None) -> bool:
        """data keys: leader, member (or candidate), scheduled_at (datetime or ISO str).
        An empty mapping clears the request (`{}`)."""
        return self.store.put(keys.FAILOVER, keys.encode_failover_data(data), version=version) is not None

    def manual_failover(self, leader: Optional[str], candidate: Optional[str], scheduled_at: Any = None,
                        version: Optional[int] = None) -> bool:
        value = keys.encode_failover(leader, candidate, scheduled_at)
        return self.store.put(keys.FAILOVER, value, version=version) is not None

    def delete_failover(self, version: Optional[int] = None) -> bool:
        return self.store.delete(keys.FAILOVER, version=version)

    def set_sync(self, leader: Optional[str], standbys: Iterable[str], version: Optional[int] = None) -> bool:
        return self.store.put(keys.SYNC, keys.encode_sync(leader, standbys), version=version) is not None

    def delete_sync(self, version: Optional[int] = None) -> bool:
        return self.store.delete(keys.SYNC, version=version)

    def set_history(self, lines: Sequence[Sequence[Any]]) -> bool:
        return self.store.put(keys.HISTORY, keys.encode_history(lines)) is not None

    def write_status(self, optime: int, slots: Optional[Mapping[str, int]] = None) -> bool:
        """Plain put of /status; skipped (True) when unchanged since our last write."""
        value = keys.encode_status(optime, slots)
        if value == self._last_status:
            return True
        ok = self.store.put(keys.STATUS, value) is not None
        self._last_status = value if ok else None
        return ok

    def write_legacy_optime(self, optime: int) -> bool:
        """/optime/leader, only needed while members run Patroni < 2.1.0."""
        return self.store.put(keys.LEGACY_OPTIME, keys.encode_legacy_optime(optime)) is not None

    def write_failsafe(self, data: Mapping[str, str], force: bool = False) -> bool:
        """Plain put of /failsafe; skipped (True) when unchanged since our last write,
        unless `force` (the key was seen to differ: someone else changed or removed it)."""
        value = keys.encode_failsafe(data)
        if value == self._last_failsafe and not force:
            return True
        ok = self.store.put(keys.FAILSAFE, value) is not None
        self._last_failsafe = value if ok else None
        return ok

    def delete_failsafe(self) -> bool:
        """Delete /failsafe (failsafe_mode turned off)."""
        self._last_failsafe = None
        return self.store.delete(keys.FAILSAFE)

    def delete_cluster(self) -> None:
        """Remove the whole subtree (patronictl remove)."""
        self.store.delete_tree()
        self._last_status = self._last_failsafe = None

    def close(self) -> None:
        self.store.close()
