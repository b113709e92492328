"""Ask peers for their status (GET /patroni) in parallel, with a short timeout."""
from __future__ import annotations

import json
import logging
import threading
from typing import Any, Dict, Mapping, Optional, Sequence

import urllib3

from ..core.model import Member
from ..core.observation import PeerStatus

log = logging.getLogger(__name__)

_TRUE = ("true", "on", "yes", "1")


def parse_peer_status(name: str, doc: Mapping[str, Any]) -> PeerStatus:
    """Turn a GET /patroni document into the facts the election needs."""
    xlog = doc.get("xlog") or {}
    if not isinstance(xlog, dict):
        xlog = {}
    tags = doc.get("tags") or {}
    if not isinstance(tags, dict):
        tags = {}
    in_recovery = "location" not in xlog
    if in_recovery:
        positions = [xlog.get("received_location"), xlog.get("replayed_location")]
        wal = max((int(p) for p in positions if isinstance(p, int)), default=0)
    else:
        wal = int(xlog.get("location") or 0)
    nofailover = tags.get("nofailover", False)
    if isinstance(nofailover, str):
        nofailover = nofailover.lower() in _TRUE
    timeline = doc.get("timeline")
    return PeerStatus(
        name=name,
        role=doc.get("role"),
        state=doc.get("state"),
        in_recovery=in_recovery,
        wal_position=wal,
        timeline=timeline if isinstance(timeline, int) else None,
        nofailover=bool(nofailover),
        watchdog_failed=bool(doc.get("watchdog_failed", False)),
    )


class PeerProber:
    def __init__(self, timeout: float = 2.0, pool: Optional[urllib3.PoolManager] = None) -> None:
        self._timeout = timeout
        self._http = pool or urllib3.PoolManager(num_pools=16, maxsize=4, retries=False)

    def fetch(self, member: Member) -> Optional[PeerStatus]:
        if not member.api_url:
            return None
        try:
            resp = self._http.request(
                "GET",
                member.api_url,
                timeout=urllib3.Timeout(connect=self._timeout, read=self._timeout),
                retries=False,
                # A fresh connection per probe: a kept-alive one that the peer closed
                # while idle would fail without retry, and a failed probe counts as
                # "unreachable" in the leader race.
                headers={"Connection": "close"},
                preload_content=True,
            )
            doc = json.loads(resp.data.decode("utf-8"))
            if not isinstance(doc, dict):
                return None
            return parse_peer_status(member.name, doc)
        except Exception as exc:  # unreachable or garbage: the election ignores it
            log.debug("peer %s (%s) not reachable: %s", member.name, member.api_url, exc)
            return None

    @property
    def timeout(self) -> float:
        return self._timeout

    def post_json(self, url: str, doc: Mapping[str, Any],
                  headers: Optional[Mapping[str, str]] = None) -> Optional[int]:
        """POST a JSON document to a peer (POST /failsafe); its status code, None if unreachable."""
        try:
            resp = self._http.request(
                "POST", url, body=json.dumps(doc).encode("utf-8"),
                headers={"Content-Type": "application/json", "Connection": "close", **(headers or {})},
                timeout=urllib3.Timeout(connect=self._timeout, read=self._timeout),
                retries=False, preload_content=True,
            )
            return int(resp.status)
        except Exception as exc:
            log.debug("POST %s failed: %s", url, exc)
            return None

    def probe(self, members: Sequence[Member]) -> Dict[str, Optional[PeerStatus]]:
        results: Dict[str, Optional[PeerStatus]] = {}
        threads = []

        def one(m: Member) -> None:
            results[m.name] = self.fetch(m)

        for m in members:
            t = threading.Thread(target=one, args=(m,), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(self._timeout * 2 + 1)
        for m in members:
            results.setdefault(m.name, None)
        return results
