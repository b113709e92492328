"""The leader-key watcher: a thread that long-polls the DCS and wakes the HA loop.

A replica watches the leader key and wakes the loop when its owner changes, or it
expires or is deleted; a renewal (same owner, new version) does not wake it.  The lock
holder watches /failover instead: a switchover written straight into the DCS
(patronictl's fallback, a request to another member) acts at once.

The view the watcher read to tell a change from a renewal is handed to the loop
(`take_fresh`), so the cycle it wakes does not read the DCS once more on the failover's
path; the loop takes it only when it was read after its previous cycle had ended, so it
holds every write of that cycle.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Optional, Tuple

from ..core.model import ClusterView
from .ports import ClusterDCSPort

log = logging.getLogger(__name__)

# A handed-over view older than this (seconds) is not used: the loop reads afresh.
FRESH_FOR = 0.25


class LeaderWatcher:
    def __init__(self, dcs: ClusterDCSPort, wake: Callable[[], None], stopping: threading.Event,
                 me: Callable[[], Optional[str]], timeout: Callable[[], float],
                 monotonic: Callable[[], float]) -> None:
        """`me()`: my member name (None until the settings are known); `timeout()`: seconds
        per long poll (loop_wait)."""
        self.dcs = dcs
        self.wake = wake
        self.stopping = stopping
        self.me = me
        self.timeout = timeout
        self.monotonic = monotonic
        self._target: Optional[ClusterView] = None
        self._lock = threading.Condition()
        self._fresh: Optional[Tuple[float, ClusterView]] = None  # (read started at, view)

    def seen(self, cluster: Optional[ClusterView]) -> None:
        """The loop has read `cluster`: watch from it."""
        with self._lock:
            self._target = cluster
            self._lock.notify_all()

    def stop(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def take_fresh(self, cycle_ended_at: Optional[float]) -> Optional[ClusterView]:
        """The view read by the watcher after `cycle_ended_at` (and less than FRESH_FOR ago),
        once; None when there is none."""
        with self._lock:
            fresh, self._fresh = self._fresh, None
        if fresh is None or cycle_ended_at is None:
            return None
        read_at, view = fresh
        return view if read_at > cycle_ended_at and self.monotonic() - read_at < FRESH_FOR else None

    def run(self) -> None:
        while not self.stopping.is_set():
            with self._lock:
                target = self._target
                if target is None:
                    self._lock.wait(1.0)
                    continue
            name = self.me()
            mine = name is not None and target.leader is not None and target.leader.name == name
            timeout = self.timeout()
            try:
                if mine:
                    changed = self.dcs.watch_failover(target, timeout)
                else:
                    changed = self.dcs.watch_leader(target, timeout)
                if changed and not mine:
                    renewal = self.dcs.renewed(target)  # etcd v2 tells a renewal without a read
                    if renewal is not None:
                        with self._lock:
                            if self._target is target:
                                self._target = renewal
                        continue
                    read_at = self.monotonic()
                    fresh = self.dcs.get_cluster()
                    if _leader_name(fresh) == _leader_name(target):
                        with self._lock:  # a renewal: keep watching from the new version
                            if self._target is target:
                                self._target = fresh
                        continue
                    with self._lock:
                        self._fresh = (read_at, fresh)
            except Exception as exc:
                log.debug("leader watch failed: %s", exc)
                changed = False
                self.stopping.wait(1.0)
            if changed:
                log.debug("%s changed: waking the loop", "/failover" if mine else "the leader key")
                self.wake()
                # Wait until the loop has read the new state before watching again.
                with self._lock:
                    if self._target is target:
                        self._lock.wait(timeout)


def _leader_name(cluster: Optional[ClusterView]) -> Optional[str]:
    return cluster.leader.name if cluster is not None and cluster.leader is not None else None
