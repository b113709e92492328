"""Consul backend over py-consul (spec 4.6).

Keys are Patroni's base path without the leading slash (`service/<scope>/leader`).

- One session per process, created lazily by the first ephemeral put: name
  `<scope>-<member>`, behavior `delete` (its keys vanish with it), lock_delay
  0.001 s, the configured `checks` (default none), TTL = ttl/2 seconds because
  Consul keeps a session alive for up to twice its TTL.  A stock agent refuses a
  TTL below 10 s (`session_ttl_min`) and Consul 1.8.7 does not report that minimum
  in /v1/agent/self, so the TTL is never below 10 s: with ttl < 20 a dead leader's
  key lives up to 20 s (see docs/dcs.md).  `keepalive()` renews the session; a
  session Consul no longer knows is re-created on the next ephemeral put.
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
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple, TypeVar
from urllib.parse import urlsplit

import consul
import requests

from qhb_patroni.dcs.base import DCSError, Node, Snapshot

T = TypeVar("T")
log = logging.getLogger(__name__)

MIN_SESSION_TTL = 10  # a stock agent's session_ttl_min (not reported by Consul 1.8.7)
DEFAULT_PORT = 8500


def session_ttl(ttl: float) -> int:
    """Session TTL in whole seconds for a cluster `ttl` (Consul doubles it)."""
    return max(MIN_SESSION_TTL, int(ttl // 2))


def leader_expiry(ttl: float) -> float:
    """Upper bound of how long a leader key outlives its last renewal."""
    return 2.0 * session_ttl(ttl)


class ConsulSettings:
    """Connection settings from a `consul:` section (spec 3.6)."""

    def __init__(self, section: Mapping[str, Any]) -> None:
        scheme = str(section.get("scheme") or "http")
        host = str(section.get("host") or "127.0.0.1:8500")
        port = section.get("port")
        if section.get("url"):
            parts = urlsplit(str(section["url"]))
            scheme = parts.scheme or scheme
            self.host = parts.hostname or "127.0.0.1"
            self.port = parts.port or int(port or DEFAULT_PORT)
        else:
            parts = urlsplit("//" + host)
            self.host = parts.hostname or "127.0.0.1"
            self.port = parts.port or int(port or DEFAULT_PORT)
        self.scheme = scheme
        self.token: Optional[str] = str(section["token"]) if section.get("token") else None
        self.dc: Optional[str] = str(section["dc"]) if section.get("dc") else None
        consistency = str(section.get("consistency") or "default")
        if consistency not in ("default", "consistent", "stale"):
            raise ValueError(f"consul.consistency must be default, consistent or stale, got {consistency!r}")
        self.consistency = consistency
        verify: Any = section.get("verify")
        if section.get("cacert"):
            verify = str(section["cacert"])
        self.verify: Any = True if verify is None else verify
        cert, key = section.get("cert"), section.get("key")
        self.cert: Any = (str(cert), str(key)) if cert and key else (str(cert) if cert else None)
        checks = section.get("checks")
        self.checks: List[Any] = list(checks) if isinstance(checks, (list, tuple)) else []

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS error: {exc}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection refused" if "refused" in str(exc).lower() else f"connection failed: {exc}"
    if isinstance(exc, consul.ACLPermissionDenied):
        return f"permission denied (token): {exc}"
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 200 else text[:200] + "..."


def _retriable(exc: BaseException) -> bool:
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    # 5xx (no cluster leader yet, rpc error): try again; 4xx (ACL, bad request): at once
    return type(exc) is consul.ConsulException and str(exc)[:1] == "5"


def service_name(scope: str) -> str:
    """Consul service name for a cluster scope (Patroni's mapping): lower case,
    '.', '_' and ' ' -> '-', other characters outside [a-z0-9-] -> 'u%04d'."""
    out = []
    for char in scope.lower():
        if ("a" <= char <= "z") or ("0" <= char <= "9") or char == "-":
            out.append(char)
        elif char in "._ ":
            out.append("-")
        else:
            out.append(f"u{ord(char):04d}")
    return "".join(out)[:230]


class ServiceRegistration:
    """`register_service: true`: this member as service `<scope>` (id `<scope>/<member>`)
    tagged with its role, with an HTTP check on `<api origin>/<role>`; registered
    while the member's state is `running`, deregistered when it is `stopped`.
    Driven by the member key writes, like Patroni."""

    def __init__(self, scope: str, member: str, section: Mapping[str, Any]) -> None:
        self.scope, self.member = scope, member
        self.enabled = bool(section.get("register_service"))
        tags = section.get("service_tags") or []
        self.tags = [str(t) for t in ([tags] if isinstance(tags, str) else tags)]
        self.interval = str(section.get("service_check_interval") or "5s")
        tls_name = section.get("service_check_tls_server_name")
        self.tls_server_name = str(tls_name) if tls_name else None
        self.registered: Optional[Dict[str, Any]] = None
        self.last_error: Optional[str] = None

    @property
    def service_id(self) -> str:
        return f"{self.scope}/{self.member}"

    def definition(self, data: Mapping[str, Any], session_ttl_s: int) -> Optional[Dict[str, Any]]:
        """What to register for member `data`, None when it cannot be (no URLs)."""
        conn, api = urlsplit(str(data.get("conn_url") or "")), urlsplit(str(data.get("api_url") or ""))
        if not conn.hostname or not api.hostname:
            return None
        role = str(data.get("role") or "").replace("_", "-")
        tags = self.tags + [role]
        if role in ("master", "primary"):
            tags.append("primary" if role == "master" else "master")
        check: Dict[str, Any] = {"http": f"{api.scheme}://{api.netloc}/{role}", "interval": self.interval,
                                 "DeregisterCriticalServiceAfter": f"{10 * session_ttl_s}s"}
        if self.tls_server_name:
            check["TLSServerName"] = self.tls_server_name
        return {"name": service_name(self.scope), "service_id": self.service_id, "address": conn.hostname,
                "port": conn.port or 5432, "tags": tags, "check": check}

    def update(self, client: Any, value: str, session_ttl_s: int) -> None:
        """Follow a write of this member's key (best effort: errors are kept in
        last_error and the registration is retried on the next write)."""
        try:
            data = json.loads(value)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        try:
            if data.get("state") == "running":
                wanted = self.definition(data, session_ttl_s)
                if wanted is not None and wanted != self.registered:
                    client.agent.service.register(enable_tag_override=True, **wanted)
                    self.registered = wanted
            elif data.get("state") == "stopped" and self.registered is not None:
                client.agent.service.deregister(self.service_id)
                self.registered = None
            self.last_error = None
        except Exception as exc:
            self.last_error = f"consul service {self.service_id}: {_reason(exc)}"
            log.warning("%s", self.last_error)
            self.registered = None


class _Rolledback(Exception):
    """A txn whose check failed (HTTP 409)."""


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
    ) -> None:
        self.settings = settings
        self.prefix = base.strip("/") + "/"
        self.session_name = session_name
        self.service = service if service is not None and service.enabled else None
        self._ttl = float(ttl)
        self._retry_timeout = float(retry_timeout)
        self._sleep = sleep
        self._lock = threading.RLock()
        self._session: Optional[str] = None
        self._session_ttl = 0
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
        retry_timeout is spent."""
        deadline = time.monotonic() + self._retry_timeout
        pause = 0.1
        while True:
            try:
                return request()
            except _Rolledback:
                raise
            except Exception as exc:
                remaining = deadline - time.monotonic()
                if not _retriable(exc) or remaining <= 0.05:
                    raise DCSError(f"consul {self.endpoint}: {_reason(exc)}") from exc
            self._sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, 1.0)

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
        ttl = session_ttl(self._ttl)
        with self._lock:
            if self._session is not None and self._session_ttl != ttl:
                # ttl changed: a new session.  The old one is not destroyed (that would
                # delete the leader key at once); its keys move over as they are re-put
                # and it runs out on its own.
                self._old_sessions.add(self._session)
                self._session = None
            if self._session is None:
                self._session = self._call(lambda: self._client.session.create(
                    name=self.session_name, checks=self.settings.checks, lock_delay=0.001,
                    behavior="delete", ttl=ttl))
                self._session_ttl = ttl
            return self._session

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
                    self.service.update(self._client, value, session_ttl(self._ttl))
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
        deadline = time.monotonic() + timeout
        full = self.prefix + key
        wait_index = max([i for i in (index, version) if i is not None], default=0)
        try:
            while True:
                remaining = deadline - time.monotonic()
                if wait_index and remaining > 0.05:
                    # Consul adds up to wait/16 of jitter: ask for a little less
                    wait = f"{max(1, int(remaining * 1000 * 15 / 16))}ms"
                    new_index, entry = self._client.kv.get(full, index=wait_index, wait=wait)
                else:
                    new_index, entry = self._client.kv.get(full)
                current = int(entry["ModifyIndex"]) if entry else None
                if current != version:
                    return True
                if deadline - time.monotonic() <= 0.05:
                    return False
                wait_index = max(wait_index, int(new_index or 0))
        except Exception:  # unreachable: sleep out the time (contract)
            remaining = deadline - time.monotonic()
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
