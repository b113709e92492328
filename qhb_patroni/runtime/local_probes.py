"""The probes decide() asks for that the local server answers (ProbePeers' streaming
list, ProbeDivergence, ProbeReplication): a failure is an answer too, never an error."""
from __future__ import annotations

import logging
from typing import Optional, Tuple

from ..core.lease import status_deadline
from ..core.local import Divergence, LocalState, ReplicationState
from ..core.model import ClusterView, Member
from ..core.observation import Settings
from .ports import ManagerPort
from .status import ServerStatus

log = logging.getLogger("qhb_patroni.runtime.loop")  # these lines belong to the loop's log


def deadline(settings: Optional[Settings]) -> float:
    """How long the loop waits for the server's status: a stalled server must not hold
    up the renewal of the leader key (core.lease.status_deadline)."""
    return status_deadline(settings.ttl, settings.loop_wait) if settings is not None else status_deadline(30, 10)


def observe(manager: ManagerPort, settings: Optional[Settings], cluster: Optional[ClusterView] = None) -> LocalState:
    """The local server for the observation, within the status deadline (`cluster`: the
    view just read, whose timeline spares a replica's IDENTIFY_SYSTEM when it matches)."""
    return manager.observe(deadline(settings), cluster.timeline if cluster is not None else None)


def server_status(manager: ManagerPort, settings: Optional[Settings]) -> ServerStatus:
    """The local server for the status board, within the status deadline."""
    return manager.server_status(deadline(settings))


def replication(manager: ManagerPort, confirm: Tuple[str, ...]) -> ReplicationState:
    """The local primary's pg_stat_replication / synchronous_standby_names."""
    try:
        return manager.replication_state(confirm)
    except Exception as exc:
        log.warning("could not read the replication state: %s", exc)
        return ReplicationState(error=str(exc) or type(exc).__name__)


def streaming(manager: ManagerPort) -> Optional[Tuple[str, ...]]:
    """Names of the standbys streaming from the local primary (fresh), None if unknown."""
    try:
        status = manager.server_status()
    except Exception as exc:
        log.debug("could not read pg_stat_replication: %s", exc)
        return None
    if not status.query_ok:
        return None
    return tuple(sorted(str(r.get("application_name")) for r in status.replication
                        if isinstance(r, dict) and r.get("state") == "streaming"))


def divergence(manager: ManagerPort, leader: Member) -> Divergence:
    """Whether following `leader` needs a rewind (None when it cannot be told)."""
    if not leader.conn_url:
        return Divergence(leader=leader.name, needed=None, detail="no connection URL")
    try:
        needed = manager.check_divergence(leader.conn_url)
    except Exception as exc:
        log.warning("could not check timeline divergence against %s: %s", leader.name, exc)
        needed = None
    return Divergence(leader=leader.name, needed=needed)
