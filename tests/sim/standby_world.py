"""A standby cluster in the simulation: the members (the real runtime each, see
node.py) with `standby_cluster` set, and a remote primary outside the cluster that
stays writable, that the first member clones from and that the standby leader
streams from (the settings name it by host and port, as the config does).

The world's faults (crashes, planned stops, partitions, DCS outages, lost DCS
answers) hit the members only; the remote keeps writing.  Every simulated second,
on top of the world's own invariants: no member of the standby cluster is writable.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional

from qhb_patroni.core.local import Divergence
from qhb_patroni.core.model import Member
from qhb_patroni.core.standby import StandbyCluster

from .fakedb import FakeDB, port_of
from .node import SimNode, name_of
from .world import WAL_PER_SECOND, World

REMOTE = "n99"  # the remote primary's fake server (port_of(REMOTE) is its port)
REMOTE_HOST = "127.0.0.1"


@dataclass
class RemoteServer:
    """The remote primary: a server of another cluster, always up and writable."""

    name: str
    db: FakeDB
    up: bool = True


class StandbyWorld(World):
    def __init__(self, seed: int, n: int = 3, switchovers: bool = False, **settings_kw: Any) -> None:
        port = port_of(REMOTE)
        standby = StandbyCluster(host=REMOTE_HOST, port=port)
        dcs = {"ttl": 30, "loop_wait": 10, "standby_cluster": {"host": REMOTE_HOST, "port": port}}
        settings_kw.setdefault("bootstrap_dcs", dcs)
        super().__init__(seed, n=n, standby=standby, **settings_kw)
        db = FakeDB(REMOTE)
        db.bootstrap(self.new_sysid())
        self.remote = RemoteServer(REMOTE, db)
        self.switchovers_allowed = switchovers
        self.standby_leader_seconds = 0  # seconds a member held the lock while following the remote
        self.seconds = 0
        self.member_writable_checks = 0

    # ---- the remote is reachable like any server ----------------------------------------
    def server_at(self, name: Optional[str]) -> Optional[SimNode]:
        if name == REMOTE:
            return self.remote  # type: ignore[return-value]  # duck-typed: name, db, up
        return super().server_at(name)

    def probe_divergence(self, me: SimNode, leader: Member) -> Divergence:
        """Against the remote or the standby leader: a standby answers too (the
        timeline history is read over the replication connection)."""
        source = self.server_at(name_of(leader.conn_url) if leader.conn_url else leader.name)
        if source is None or not source.up or not source.db.running or not me.db.has_data:
            return Divergence(leader.name, None, "leader not reachable")
        return Divergence(leader.name, not me.db.on_history_of(source.db))

    def _request_switchover(self, candidate: str) -> None:
        if self.switchovers_allowed:
            super()._request_switchover(candidate)

    # ---- the world turning -------------------------------------------------------------------
    def _replicate(self) -> None:
        remote = self.remote.db
        remote.lsn += WAL_PER_SECOND
        for node in self.nodes.values():  # the standby leader streams from the remote first
            db = node.db
            if db.running and db.in_recovery and db.following == REMOTE and db.on_history_of(remote):
                db.history, db.lsn = remote.history, max(db.lsn, remote.lsn)
        super()._replicate()  # then the members that follow the standby leader

    def step(self, faults: bool) -> None:
        super().step(faults)
        self.seconds += 1
        if self.standby_leader() is not None:
            self.standby_leader_seconds += 1

    def standby_leader(self) -> Optional[SimNode]:
        """The lock holder, when it is up and streams from the remote."""
        key = self.leader_key()
        node = self.nodes.get(key[0]) if key is not None else None
        if node is None or not node.up:
            return None
        db = node.db
        if db.running and db.in_recovery and db.following == REMOTE and db.on_history_of(self.remote.db):
            return node
        return None

    # ---- invariants -----------------------------------------------------------------------------
    def check_invariants(self) -> None:
        super().check_invariants()
        self.member_writable_checks += 1
        writable = [n.name for n in self.nodes.values() if n.db.writable]
        if writable:
            self.fail(f"a member of the standby cluster is writable: {writable}")
        if self.promotions:
            self.fail("a member of the standby cluster was told to promote")

    def converged(self) -> List[str]:
        """Problems with the final state (empty = the lock holder is a standby leader
        streaming from the remote, every other member a caught-up replica of it)."""
        lead = self.standby_leader()
        if lead is None:
            return [f"no standby leader following the remote (leader key {self.leader_key()})"]
        remote = self.remote.db
        problems = []
        if lead.db.lsn < remote.lsn - WAL_PER_SECOND:
            problems.append(f"standby leader {lead.name} lags the remote ({lead.db.lsn} vs {remote.lsn})")
        for n in self.nodes.values():
            if n is lead:
                continue
            db = n.db
            if not (n.up and db.running and db.in_recovery and db.following == lead.name):
                problems.append(f"{n.name} is not a replica of {lead.name} (up={n.up}, following={db.following}, "
                                f"running={db.running})")
            elif not db.on_history_of(lead.db) or db.lsn < lead.db.lsn - WAL_PER_SECOND:
                problems.append(f"{n.name} does not stream from {lead.name} (lsn {db.lsn} vs {lead.db.lsn})")
        return problems

    def describe(self) -> str:
        r = self.remote.db
        return super().describe() + f"\nremote {REMOTE}: writable={r.writable} tl={r.history[-1][0]} lsn={r.lsn}"
