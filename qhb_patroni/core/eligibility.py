"""Who may take over from the leader: the one eligibility rule for failover and
switchover candidates, used by the core (leader race, switchover), the REST API
(POST /switchover and /failover refuse with 412 when nobody qualifies) and
patronictl (the candidates it offers).

Two steps, as in Patroni 3.0.2: first the members worth considering, from the DCS
view alone (`candidate_members`); then, of those, the ones whose own answer on
GET /patroni shows they can take over (`peer_can_take_over`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Collection, Optional, Tuple

from .model import ClusterView, Member

if TYPE_CHECKING:  # a type only: patronictl uses this module without the decision types
    from .observation import PeerStatus


def candidate_members(
    cluster: ClusterView,
    exclude: Optional[str],
    allowed: Optional[Collection[str]] = None,
    require_api: bool = True,
    skip_nofailover: bool = True,
) -> Tuple[Member, ...]:
    """Members other than `exclude` (the leader, or me), sorted by name: with an API URL
    to ask (`require_api`), not tagged nofailover (`skip_nofailover`; the REST API
    leaves that to each member's own answer), and named in `allowed` when given (the
    /sync members in synchronous mode)."""
    return tuple(sorted(
        (m for m in cluster.members
         if m.name != exclude
         and (m.api_url or not require_api)
         and not (skip_nofailover and m.nofailover)
         and (allowed is None or m.name in allowed)),
        key=lambda m: m.name,
    ))


def candidate_names(cluster: ClusterView, exclude: Optional[str], allowed: Optional[Collection[str]] = None,
                    require_api: bool = True) -> Tuple[str, ...]:
    return tuple(m.name for m in candidate_members(cluster, exclude, allowed, require_api))


def peer_can_take_over(peer: Optional[PeerStatus]) -> bool:
    """A member's own answer: reachable, not tagged nofailover, its watchdog working."""
    return peer is not None and not peer.nofailover and not peer.watchdog_failed
