"""The narrow store interface every DCS backend implements.

A backend knows nothing about leaders or members: it stores string values under
keys relative to the cluster's base path (`/<namespace>/<scope>/`), with version
tokens for compare-and-swap, "ephemeral" keys bound to this process's lease
(etcd v2: the key's TTL; etcd v3: a lease; Consul: a session), and a watch.
`qhb_patroni.dcs.keys` turns a `Snapshot` into a `ClusterView`;
`qhb_patroni.dcs.writer` builds the leader/member/config operations on top.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Protocol, Tuple

# What a watch saw: (the key's new value, None once deleted or expired; its new version).
WatchEvent = Tuple[Optional[str], int]


class DCSError(Exception):
    """The DCS could not be reached or answered with an error (after retries).

    The message names the endpoint and the reason, e.g.
    `etcd http://127.0.0.1:2379: connection refused`."""


@dataclass(frozen=True)
class Node:
    value: str
    version: int  # modify index / mod_revision / ModifyIndex
    ephemeral_owner: Optional[str] = None  # lease/session id when known


@dataclass(frozen=True)
class Snapshot:
    """Every key under the base path, by relative name ("leader", "members/n0")."""

    nodes: Dict[str, Node] = field(default_factory=dict)
    index: Optional[int] = None  # store-wide index at read time (for watches)


class Store(Protocol):
    """Implemented by memory, etcd (v2), etcd3 and consul backends."""

    # After watch() returned True: the event that woke it, when the backend's answer
    # carries it (etcd v2); None otherwise (the caller reads the store).
    last_watch: Optional[WatchEvent]

    def set_ttl(self, ttl: float) -> None:
        """TTL in seconds for ephemeral keys created from now on."""

    def load(self) -> Snapshot:
        """Read the whole cluster subtree in one consistent request.
        An absent subtree is an empty Snapshot, not an error."""

    def put(
        self,
        key: str,
        value: str,
        *,
        version: Optional[int] = None,
        create: bool = False,
        ephemeral: bool = False,
    ) -> Optional[int]:
        """Write `value` at `key`.

        version: only if the key's current version equals it (CAS);
        create: only if the key does not exist;
        ephemeral: bind the key to this process's lease (expires after ttl
        unless refreshed by another put or `keepalive`).
        Returns the new version, or None when the condition failed.
        Raises DCSError on communication failure."""

    def delete(self, key: str, *, version: Optional[int] = None) -> bool:
        """Delete `key` (only at `version` when given). False if the condition
        failed or the key was absent."""

    def delete_tree(self) -> None:
        """Delete the whole cluster subtree."""

    def keepalive(self) -> None:
        """Refresh this process's lease/session so ephemeral keys live on.
        (etcd v2: no-op; TTLs are refreshed by re-putting.)"""

    def watch(self, key: str, version: Optional[int], index: Optional[int], timeout: float) -> bool:
        """Block up to `timeout` seconds until `key` changes from `version`
        (or appears/disappears). `index` is the Snapshot.index of the last load.
        Returns True on a change, False on timeout. Never raises for a timeout;
        on a communication error it sleeps the remaining time and returns False."""

    def close(self) -> None:
        """Release the lease/session and network resources."""
