"""Is a failover possible? The lock holder's question when its primary crashed with
primary_start_timeout 0, or did not start within primary_start_timeout (spec 5.9).

Pure: the peers' answers come in the observation (the core asks for them with
ProbePeers). The per-member test is switchover.eligible, shared with the manual
failover path: reachable, not nofailover, WAL within maximum_lag_on_failover,
timeline with check_timeline; in synchronous mode only /sync standbys count.
"""
from __future__ import annotations

from typing import Mapping, Optional, Tuple

from .model import ClusterView
from .observation import PeerStatus, Settings
from .switchover import eligible
from .syncrep import sync_members


def failover_candidates(cluster: ClusterView, settings: Settings) -> Tuple[str, ...]:
    """The members that could take over, to be asked for their status."""
    allowed = set(sync_members(cluster.sync)) if settings.synchronous_mode else None
    return tuple(sorted(
        m.name for m in cluster.members
        if m.name != settings.name and m.api_url and not m.nofailover and (allowed is None or m.name in allowed)
    ))


def failover_possible(cluster: ClusterView, settings: Settings,
                      peers: Mapping[str, Optional[PeerStatus]]) -> bool:
    """Some candidate answered and is eligible to take over."""
    return any(eligible(peers.get(name), cluster, settings) for name in failover_candidates(cluster, settings))
