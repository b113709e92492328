"""Consul backend over py-consul (spec 4.6).

Keys are Patroni's base path without the leading slash (`service/<scope>/leader`).

- One session per process, created lazily by the first ephemeral put: name
  `<scope>-<member>`, behavior `delete` (its keys vanish with it), lock_delay
  0.001 s, the configured `checks` (default none), TTL = ttl/2 seconds because
  Consul invalidates a session twice its TTL after the last renewal.  An agent
  refuses a TTL below its `session_ttl_min` (10 s unless configured) and says so
  only in the refusal ("must be between [10s=24h0m0s]"): the store then asks again
  with that minimum, remembers it, and warns once with the effective ttl (twice the
  session TTL).  `keepalive()` renews the session; a session Consul no longer knows
  is re-created on the next ephemeral put.
- A renewal (ephemeral write with a version) stores that version in the entry's
  flags: Consul ignores identical writes, and the contract wants a new version.
- Every write goes through /v1/txn so that conditions and session locks combine
  (a plain `PUT ?cas=&acquire=` ignores the cas when acquire is present):
  create -> check-not-exists, version -> check-index, ephemeral -> lock verb.
- Read: one recursive `kv get` (consistency mode as configured).  Watch: blocking
  queries on the leader key (index + wait) until its ModifyIndex moves.
- `register_service`: see ServiceRegistration (driven by this member's key writes).
Every failure becomes `DCSError("consul <url>: <reason>")`, bounded by retry_timeout.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, TypeVar

import consul
import requests

from qhb_patroni.dcs.base import DCSError, Node, Snapshot, WatchEvent
from qhb_patroni.dcs.consul_agent import DEFAULT_PORT, ConsulSettings, ServiceRegistration, service_name, ttl_text
from qhb_patroni.dcs.consul_agent import reason as _reason
from qhb_patroni.dcs.retry import RetryExhausted, call_with_retry

__all__ = [  # the agent side (settings, service registration) lives in consul_agent.py
    "DEFAULT_PORT", "MAX_SESSION_TTL", "STOCK_SESSION_TTL_MIN", "ConsulSettings", "ConsulStore",
    "ServiceRegistration", "go_duration", "leader_expiry", "refused_ttl_minimum", "service_name", "session_ttl",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

STOCK_SESSION_TTL_MIN = 10.0  # a stock agent's session_ttl_min (Consul reports it only in a refusal)
MAX_SESSION_TTL = 86400.0  # Consul's upper bound for a session TTL
_TTL_RANGE = re.compile(r"must be between \[([0-9a-zµ.]+)=")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def session_ttl(ttl: float, agent_min: Optional[float] = None) -> float:
    """Session TTL in seconds for a cluster `ttl`: half of it, because Consul keeps a
    session for twice its TTL, but not below the agent's minimum once known."""
    return min(MAX_SESSION_TTL, max(ttl / 2.0, agent_min or 0.0))


def leader_expiry(ttl: float, agent_min: Optional[float] = STOCK_SESSION_TTL_MIN) -> float:
    """Upper bound of how long a leader key outlives its last renewal (on a stock
    agent unless `agent_min` says otherwise)."""
    return 2.0 * session_ttl(ttl, agent_min)


def go_duration(text: str) -> Optional[float]:
    """Seconds in a Go duration such as `10s`, `1m30s` or `500ms`; None if it is not one."""
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def refused_ttl_minimum(message: str) -> Optional[float]:
    """The minimum session TTL an agent states when it refuses one
    (`Invalid Session TTL '5000000000', must be between [10s=24h0m0s]`)."""
    match = _TTL_RANGE.search(message)
    return go_duration(match.group(1)) if match else None


def _retriable(exc: BaseException) -> bool:
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    # 5xx (no cluster leader yet, rpc error): try again; 4xx (ACL, bad request): at once
    return type(exc) is consul.ConsulException and str(exc)[:1] == "5"


class _Rolledback(Exception):
    """A txn whose check failed (HTTP 409)."""


class _TTLRefused(Exception):
    """The agent refused the session TTL; `minimum` is the lowest it takes, if it said."""

    def __init__(self, message: str, minimum: Optional[float]) -> None:
        super().__init__(message)
        self.minimum = minimum


class ConsulStore:
    """dcs.base.Store over a Consul agent's KV store and sessions."""

    def __init__(
        self,
        settings: ConsulSettings,
        base: str,
        *,
        session_name: str = "qhb-patroni",
        ttl: float = 30.0,
        retry_timeout: float = 10.0,
        service: Optional[ServiceRegistration] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.prefix = base.strip("/") + "/"
        self.session_name = session_name
        self.service = service if service is not None and service.enabled else None
        self._ttl = float(ttl)
        self._retry_timeout = float(retry_timeout)
        self._sleep = sleep
        self._clock = clock
        self.last_watch: Optional[WatchEvent] = None  # the answers do not carry the event
        self._lock = threading.RLock()
        self._session: Optional[str] = None
        self._session_ttl = 0.0
        self._agent_min: Optional[float] = None  # the agent's session_ttl_min, once it refused one
        self._warned_min: Optional[float] = None
        self._old_sessions: Set[str] = set()  # ours, replaced after a ttl change
        self._client = self._make_client()

    def _make_client(self) -> consul.Consul:
        s = self.settings
        client = consul.Consul(host=s.host, port=s.port, token=s.token, scheme=s.scheme,
                               consistency=s.consistency, dc=s.dc, verify=s.verify, cert=s.cert,
                               connections_timeout=max(1.0, self._retry_timeout))
        if s.token:  # py-consul lets CONSUL_HTTP_TOKEN override the token given: the config wins
            client.token = s.token
        return client

    # ---- settings -------------------------------------------------------------
    def set_ttl(self, ttl: float) -> None:
        self._ttl = float(ttl)

    def set_retry_timeout(self, retry_timeout: float) -> None:
        if float(retry_timeout) != self._retry_timeout:
            self._retry_timeout = float(retry_timeout)
            self._client = self._make_client()

    @property
    def endpoint(self) -> str:
        return self.settings.url

    @property
    def session(self) -> Optional[str]:
        return self._session

    # ---- plumbing -------------------------------------------------------------
    def _call(self, request: Callable[[], T]) -> T:
        """Run `request`, retrying connection trouble and 5xx answers until
        retry_timeout is spent (one agent: no endpoint to move on to)."""

        def classify(url: str, exc: Exception) -> str:
            if isinstance(exc, (_Rolledback, _TTLRefused)):
                raise exc
            if not _retriable(exc):
                raise DCSError(f"consul {url}: {_reason(exc)}") from exc
            return _reason(exc)

        try:
            return call_with_retry(lambda url, t: request(), self, self._retry_timeout, classify,
                                   self._clock, self._sleep)
        except RetryExhausted as exc:
            raise DCSError(f"consul {exc.url}: {exc.reason}") from None

    @property
    def urls(self) -> List[str]:
        return [self.endpoint]

    def rotate(self) -> None:
        pass  # one agent

    def _txn(self, operations: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """PUT /v1/txn; the results, or _Rolledback when a check failed."""
        client = self._client
        params: List[Tuple[str, Any]] = [("dc", self.settings.dc)] if self.settings.dc else []

        def handle(response: Any) -> List[Dict[str, Any]]:
            if response.code == 409:
                errors = " / ".join(str(e.get("What")) for e in json.loads(response.body).get("Errors") or ())
                if "permission denied" in errors.lower() or "acl not found" in errors.lower():
                    raise consul.ACLPermissionDenied(errors)  # refused, not a failed condition
                raise _Rolledback(errors)
            if response.code == 403:
                raise consul.ACLPermissionDenied(response.body)
            if response.code >= 400:
                raise consul.ConsulException(f"{response.code} {response.body}")
            results = json.loads(response.body).get("Results") or []
            return [r.get("KV") or {} for r in results]

        payload = json.dumps([{"KV": op} for op in operations])
        return client.http.put(handle, "/v1/txn", params=params, data=payload,  # type: ignore[no-any-return]
                               headers=client.prepare_headers())

    # ---- session --------------------------------------------------------------
    def _ensure_session(self) -> str:
        with self._lock:
            ttl = session_ttl(self._ttl, self._agent_min)
            if self._session is not None and self._session_ttl != ttl:
                # ttl changed: a new session.  The old one is not destroyed (that would
                # delete the leader key at once); its keys move over as they are re-put
                # and it runs out on its own.
                self._old_sessions.add(self._session)
                self._session = None
            if self._session is None:
                self._session, self._session_ttl = self._create_session(ttl)
            return self._session

    def _create_session(self, ttl: float) -> Tuple[str, float]:
        """Create our session with TTL `ttl`; when the agent refuses it as below its
        minimum, once more with that minimum (remembered, and warned about once)."""
        try:
            return self._call(lambda: self._session_create(ttl)), ttl
        except _TTLRefused as refused:
            if refused.minimum is None or refused.minimum <= ttl:
                raise DCSError(f"consul {self.endpoint}: {refused}") from refused
            self._agent_min = refused.minimum
        ttl = session_ttl(self._ttl, self._agent_min)
        if self._warned_min != self._agent_min:
            self._warned_min = self._agent_min
            log.warning("consul %s refuses session TTLs below %s (session_ttl_min): a leader key "
                        "lives up to %s after its last renewal, so the effective ttl is %s instead "
                        "of %s", self.endpoint, ttl_text(ttl), ttl_text(2 * ttl),
                        ttl_text(2 * ttl), ttl_text(self._ttl))
        try:
            return self._call(lambda: self._session_create(ttl)), ttl
        except _TTLRefused as refused:
            raise DCSError(f"consul {self.endpoint}: {refused}") from refused

    def _session_create(self, ttl: float) -> str:
        """PUT /v1/session/create ourselves: py-consul only takes whole TTLs of 10 s or more."""
        client = self._client
        params: List[Tuple[str, Any]] = [("dc", self.settings.dc)] if self.settings.dc else []
        body: Dict[str, Any] = {"Name": self.session_name, "Checks": self.settings.checks,
                                "LockDelay": "1ms", "Behavior": "delete", "TTL": ttl_text(ttl)}

        def handle(response: Any) -> str:
            text = response.body.decode("utf-8", "replace") if isinstance(response.body, bytes) \
                else str(response.body)
            if "Invalid Session TTL" in text:
                raise _TTLRefused(text.strip(), refused_ttl_minimum(text))
            if response.code == 403:
                raise consul.ACLPermissionDenied(text)
            if response.code >= 400:
                raise consul.ConsulException(f"{response.code} {text}")
            return str(json.loads(text)["ID"])

        return client.http.put(handle, "/v1/session/create", params=params,  # type: ignore[no-any-return]
                               data=json.dumps(body), headers=client.prepare_headers())

    def _destroy_sessions(self) -> None:
        sessions = self._old_sessions | ({self._session} if self._session else set())
        self._session = None
        self._old_sessions = set()
        for session in sessions:
            try:
                self._client.session.destroy(session)
            except Exception:  # best effort: it expires anyway
                pass

    def keepalive(self) -> None:
        with self._lock:
            session = self._session
            if session is None:
                return
            try:
                self._call(lambda: self._client.session.renew(session))
            except DCSError as exc:
                if isinstance(exc.__cause__, consul.NotFound):
                    self._session = None  # invalidated: the next ephemeral put makes a new one
                    return
                raise

    # ---- Store ------------------------------------------------------------------
    def load(self) -> Snapshot:
        index, entries = self._call(lambda: self._client.kv.get(self.prefix, recurse=True))
        nodes: Dict[str, Node] = {}
        for entry in entries or ():
            key = str(entry.get("Key", ""))
            if not key.startswith(self.prefix) or key.endswith("/"):
                continue
            raw = entry.get("Value")
            # Not UTF-8 (anyone may write such bytes): U+FFFD, never an exception.
            value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
            nodes[key[len(self.prefix):]] = Node(value=value, version=int(entry["ModifyIndex"]),
                                                 ephemeral_owner=entry.get("Session"))
        return Snapshot(nodes=nodes, index=int(index) if index is not None else None)

    def put(
        self,
        key: str,
        value: str,
        *,
        version: Optional[int] = None,
        create: bool = False,
        ephemeral: bool = False,
    ) -> Optional[int]:
        full = self.prefix + key
        encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
        takeover: List[Dict[str, Any]] = []
        for attempt in (1, 2, 3):
            checks: List[Dict[str, Any]] = []
            if create:
                checks.append({"Verb": "check-not-exists", "Key": full})
            elif version is not None:
                checks.append({"Verb": "check-index", "Key": full, "Index": version})
            write: Dict[str, Any] = {"Verb": "set", "Key": full, "Value": encoded}
            if ephemeral:
                write.update(Verb="lock", Session=self._ensure_session())
                if version is not None:
                    # Consul skips a write identical to the stored entry, so a renewal by
                    # the holder would keep its ModifyIndex; the flags (unused by Patroni)
                    # carry the version renewed so every renewal is a visible change.
                    write["Flags"] = version
            operations = checks + takeover + [write]
            try:
                results = self._call(lambda: self._txn(operations))  # noqa: B023 (called at once)
                if self.service is not None and ephemeral and key == f"members/{self.service.member}":
                    self.service.update(self._client, value, session_ttl(self._ttl, self._agent_min))
                return int(results[-1]["ModifyIndex"])
            except _Rolledback as exc:
                if not ephemeral or create or attempt == 3:
                    return None
                if "invalid session" in str(exc).lower():
                    self._session = None  # expired under us: a new session
                    continue
                if takeover:
                    return None
                takeover = self._takeover(full, version, unconditional=not checks)
                if not takeover:
                    return None
        return None

    def _takeover(self, full: str, version: Optional[int], unconditional: bool) -> List[Dict[str, Any]]:
        """When `full` is locked by another session that we may displace (one of our
        own earlier sessions, or anyone's for an unconditional put): the txn op that
        deletes it first (CAS on its ModifyIndex).  Otherwise []."""
        _, entry = self._call(lambda: self._client.kv.get(full))
        holder = entry.get("Session") if entry else None
        if holder is None or holder == self._session:
            return []
        if not unconditional and holder not in self._old_sessions:
            return []  # someone else's lock: the race is lost
        index = int(entry["ModifyIndex"])
        if version is not None and index != version:
            return []
        return [{"Verb": "delete-cas", "Key": full, "Index": index}]

    def delete(self, key: str, *, version: Optional[int] = None) -> bool:
        full = self.prefix + key
        if version is None:
            _, entry = self._call(lambda: self._client.kv.get(full))
            if not entry:
                return False
            version = int(entry["ModifyIndex"])
        try:
            self._call(lambda: self._txn([{"Verb": "delete-cas", "Key": full, "Index": version}]))
        except _Rolledback:
            return False
        return True

    def delete_tree(self) -> None:
        self._call(lambda: self._client.kv.delete(self.prefix, recurse=True))

    def watch(self, key: str, version: Optional[int], index: Optional[int], timeout: float) -> bool:
        """Blocking queries on `key` until its ModifyIndex differs from `version`."""
        if timeout <= 0:
            return False
        deadline = self._clock() + timeout
        full = self.prefix + key
        wait_index = max([i for i in (index, version) if i is not None], default=0)
        try:
            while True:
                remaining = deadline - self._clock()
                if wait_index and remaining > 0.05:
                    # Consul adds up to wait/16 of jitter: ask for a little less
                    wait = f"{max(1, int(remaining * 1000 * 15 / 16))}ms"
                    new_index, entry = self._client.kv.get(full, index=wait_index, wait=wait)
                else:
                    new_index, entry = self._client.kv.get(full)
                current = int(entry["ModifyIndex"]) if entry else None
                if current != version:
                    return True
                if deadline - self._clock() <= 0.05:
                    return False
                wait_index = max(wait_index, int(new_index or 0))
        except Exception:  # unreachable: sleep out the time (contract)
            remaining = deadline - self._clock()
            if remaining > 0:
                self._sleep(remaining)
            return False

    def close(self) -> None:
        with self._lock:
            self._destroy_sessions()
            try:
                self._client.http.session.close()
            except Exception:  # closing is best effort
                pass
