"""Ask peers for their status (GET /patroni) in parallel, with a short timeout.

Member-to-member requests carry what Patroni 3.0.2's daemon sends: basic auth and
the client certificate (key, key password) of `ctl.*`, else `restapi.*`; like 3.0.2's
daemon they do not verify the peer's certificate (members often reach each other by
an address the certificate does not name)."""
from __future__ import annotations

import base64
import json
import logging
import threading
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

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


def _setting(config: Mapping[str, Any], ctl_name: str, restapi_name: str) -> Any:
    ctl = config.get("ctl")
    restapi = config.get("restapi")
    value = ctl.get(ctl_name) if isinstance(ctl, Mapping) else None
    if not value and isinstance(restapi, Mapping):
        value = restapi.get(restapi_name)
    return value


def _basic_auth(config: Mapping[str, Any]) -> Optional[str]:
    for section in ("ctl", "restapi"):
        part = config.get(section)
        auth = part.get("authentication") if isinstance(part, Mapping) else None
        if isinstance(auth, Mapping) and auth.get("username") is not None:
            return f"{auth['username']}:{auth.get('password', '')}"
    return None


def peer_client_settings(config: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """(PoolManager TLS arguments, headers) for requests to the other members."""
    tls: Dict[str, Any] = {"cert_reqs": "CERT_NONE", "assert_hostname": False}
    certfile = _setting(config, "certfile", "certfile")
    if certfile:
        tls["cert_file"] = str(certfile)
        keyfile = _setting(config, "keyfile", "keyfile")
        if keyfile:
            tls["key_file"] = str(keyfile)
            password = _setting(config, "keyfile_password", "keyfile_password")
            if password:
                tls["key_password"] = str(password)
    cacert = _setting(config, "cacert", "cafile")
    if cacert:
        tls["ca_certs"] = str(cacert)
    headers = {"User-Agent": "Patroni/3.0.2"}
    auth = _basic_auth(config)
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")
    return tls, headers


class PeerProber:
    def __init__(self, timeout: float = 2.0, pool: Optional[urllib3.PoolManager] = None,
                 config: Optional[Mapping[str, Any]] = None) -> None:
        self._timeout = timeout
        self._headers: Dict[str, str] = {}
        self._http = pool or urllib3.PoolManager(num_pools=16, maxsize=4, retries=False)
        if config is not None and pool is None:
            self.reconfigure(config)

    def reconfigure(self, config: Mapping[str, Any]) -> None:
        """Take the TLS and authentication settings of a (re)loaded local configuration."""
        tls, headers = peer_client_settings(config)
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # not verifying is deliberate
        self._http = urllib3.PoolManager(num_pools=16, maxsize=4, retries=False, **tls)
        self._headers = headers

    def request(self, member: Member, method: str = "GET", path: str = "/patroni",
                body: Optional[bytes] = None) -> urllib3.BaseHTTPResponse:
        """One member-to-member call (TLS and authentication as configured)."""
        api_url = member.api_url or ""
        url = api_url.rsplit("/", 1)[0] + path if path else api_url
        headers = dict(self._headers, Connection="close")
        if body is not None:
            headers["Content-Type"] = "application/json"
        return self._http.request(method, url, body=body, headers=headers, retries=False,
                                  timeout=urllib3.Timeout(connect=self._timeout, read=self._timeout),
                                  preload_content=True)

    def fetch(self, member: Member) -> Optional[PeerStatus]:
        if not member.api_url:
            return None
        try:
            # A fresh connection per probe (Connection: close): a kept-alive one that the
            # peer closed while idle would fail without retry, and a failed probe counts
            # as "unreachable" in the leader race.
            resp = self.request(member, "GET", "")
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
