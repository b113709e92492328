"""etcd v3 API backend over etcd's JSON gateway with urllib3 only (spec 4.5).

No python-etcd on this path, so it keeps working on etcd >= 3.6 (v2 API gone).
Keys and values are the ones Patroni 3.0.2's etcd3 backend writes (the gateway
carries them base64-encoded in JSON).

- The gateway prefix is detected per endpoint from `GET /version`:
  3.4+ -> /v3, 3.3 -> /v3beta, older -> /v3alpha.
- One lease per process: granted lazily by the first ephemeral put (TTL = ttl),
  refreshed by `keepalive()`, re-granted when etcd reports it lost or when the
  ttl changes, revoked by `close()`.
- Every conditional write is a `/kv/txn` comparing mod_revision (create: the key's
  create_revision == 0).  Reads are one serializable prefix range.
- `watch` streams `/watch` on the key from the revision after the last read and
  returns at the first event (or compaction), False at the timeout.
- Auth: username/password -> token (`/auth/authenticate`), sent as the
  Authorization header and renewed when etcd says it is invalid.
- Several endpoints: we fail over to the next one ourselves, every operation is
  bounded by retry_timeout in total; unless use_proxies, the member list
  (`/cluster/member/list`) is discovered and tried first.
Every failure becomes `DCSError("etcd3 <endpoint>: <reason>")`.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import urllib3

from qhb_patroni.dcs.base import DCSError, Node, Snapshot, WatchEvent
from qhb_patroni.dcs.endpoints import endpoints_from_config as _endpoints
from qhb_patroni.dcs.retry import RetryExhausted, call_with_retry

# gRPC status codes (in the gateway's error body)
_NOT_FOUND = 5  # "requested lease not found"
_UNAUTHENTICATED = 16
_RETRIABLE = {1, 4, 10, 14}  # canceled, deadline exceeded, aborted, unavailable


class _EtcdAnswer(Exception):
    """An error answer from etcd (JSON body with a gRPC code)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def endpoints_from_config(config: Mapping[str, Any]) -> Tuple[List[str], Optional[str], Optional[str]]:
    """(endpoint URLs, username, password) from an `etcd3:` section (same keys as `etcd:`)."""
    return _endpoints(config, "etcd3")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _unb64(text: str) -> str:
    # Bytes that are not UTF-8 (anyone may write them) read as U+FFFD, which the
    # key codec then finds invalid where it matters; they never raise here.
    return base64.b64decode(text).decode("utf-8", "replace")


def prefix_end(prefix: str) -> str:
    """range_end covering every key starting with `prefix` (last byte + 1)."""
    raw = bytearray(prefix.encode("utf-8"))
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return _b64("\0")
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode("ascii")


def api_prefix(version: str) -> str:
    """Gateway path prefix for an etcd server version such as '3.4.23'."""
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return "/v3"
    if (major, minor) >= (3, 4):
        return "/v3"
    return "/v3beta" if (major, minor) == (3, 3) else "/v3alpha"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _EtcdAnswer):
        return str(exc)
    cur: Optional[BaseException] = exc
    for _ in range(6):
        if cur is None:
            break
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, urllib3.exceptions.NewConnectionError):
            return "connection refused" if "refused" in str(cur).lower() else str(cur)
        if isinstance(cur, urllib3.exceptions.SSLError):
            return f"TLS error: {cur}"
        if isinstance(cur, (urllib3.exceptions.TimeoutError, TimeoutError)):
            return "timed out"
        reason = getattr(cur, "reason", None)
        cur = reason if isinstance(reason, BaseException) else (cur.__cause__ or cur.__context__)
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 200 else text[:200] + "..."


class Etcd3Store:
    """dcs.base.Store over the etcd v3 JSON gateway."""

    def __init__(
        self,
        urls: Sequence[str],
        base: str,
        *,
        ttl: float = 30.0,
        retry_timeout: float = 10.0,
        username: Optional[str] = None,
        password: Optional[str] = None,
        cacert: Optional[str] = None,
        cert: Optional[str] = None,
        key: Optional[str] = None,
        use_proxies: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("etcd3: no endpoints")
        self.configured_urls = [u.rstrip("/") for u in urls]
        self.urls = list(self.configured_urls)
        self.use_proxies = use_proxies
        self.base = "/" + base.strip("/")
        self._ttl = float(ttl)
        self._retry_timeout = float(retry_timeout)
        self._auth = (username, password)
        self._sleep = sleep
        self._clock = clock
        self.last_watch: Optional[WatchEvent] = None  # the answers do not carry the event
        self._lock = threading.RLock()
        self._current = 0
        self._discovered_at: Optional[float] = None
        self._prefixes: Dict[str, str] = {}
        self._token: Optional[str] = None
        self._lease: Optional[str] = None
        self._lease_ttl = 0
        self._lease_refreshed = 0.0
        tls: Dict[str, Any] = {}
        if cacert:
            tls.update(ca_certs=cacert, cert_reqs="CERT_REQUIRED")
        if cert:
            tls.update(cert_file=cert, key_file=key)
        self._http = urllib3.PoolManager(num_pools=8, maxsize=4, retries=False, **tls)

    # ---- settings -------------------------------------------------------------
    def set_ttl(self, ttl: float) -> None:
        self._ttl = float(ttl)

    def set_retry_timeout(self, retry_timeout: float) -> None:
        self._retry_timeout = float(retry_timeout)

    @property
    def endpoint(self) -> str:
        return self.urls[self._current]

    @property
    def lease_id(self) -> Optional[str]:
        return self._lease

    def _key(self, key: str = "") -> str:
        return self.base + "/" + key

    # ---- plumbing -------------------------------------------------------------
    def _raw(self, method: str, url: str, body: Optional[Dict[str, Any]], timeout: float,
             headers: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        response = self._http.request(
            method, url, body=json.dumps(body).encode() if body is not None else None,
            headers=headers, timeout=urllib3.Timeout(connect=timeout, read=timeout), retries=False)
        try:
            data = json.loads(response.data.decode("utf-8") or "{}")
        except ValueError:
            raise _EtcdAnswer(-1, f"HTTP {response.status}: not JSON") from None
        if not isinstance(data, dict):
            raise _EtcdAnswer(-1, f"unexpected answer {data!r}")
        if "error" in data or response.status >= 400:
            code = data.get("code")
            message = str(data.get("message") or data.get("error") or f"HTTP {response.status}")
            if not isinstance(code, int):  # e.g. a proxy's answer: 5xx is worth another try
                code = 14 if response.status >= 500 else -1
            raise _EtcdAnswer(code, message)
        return data

    def _prefix(self, url: str, timeout: float) -> str:
        prefix = self._prefixes.get(url)
        if prefix is None:
            answer = self._raw("GET", url + "/version", None, timeout)
            prefix = api_prefix(str(answer.get("etcdserver", "")))
            self._prefixes[url] = prefix
        return prefix

    def _authenticate(self, url: str, prefix: str, timeout: float) -> None:
        name, password = self._auth
        try:
            answer = self._raw("POST", url + prefix + "/auth/authenticate",
                               {"name": name, "password": password or ""}, timeout)
        except _EtcdAnswer as exc:
            if "authentication is not enabled" in str(exc):
                self._auth = (None, None)  # credentials given to a server without auth: go on without
                return
            raise
        token = answer.get("token")
        if not token:
            raise _EtcdAnswer(-1, "authentication answered without a token")
        self._token = str(token)

    def _once(self, url: str, path: str, body: Dict[str, Any], timeout: float) -> Dict[str, Any]:
        prefix = self._prefix(url, timeout)
        for attempt in (1, 2):
            if self._auth[0] and self._token is None:
                self._authenticate(url, prefix, timeout)
            headers = {"Authorization": self._token} if self._token else None
            try:
                return self._raw("POST", url + prefix + path, body, timeout, headers)
            except _EtcdAnswer as exc:
                stale = exc.code == _UNAUTHENTICATED or "auth token" in str(exc)
                if not (stale and self._auth[0] and attempt == 1):
                    raise
                self._token = None  # expired or server restarted: authenticate again
        raise AssertionError("unreachable")

    def _discover(self) -> None:
        if self.use_proxies:
            return
        now = self._clock()
        if self._discovered_at is not None and now - self._discovered_at < 10 * self._ttl:
            return
        self._discovered_at = now
        found: List[str] = []
        t = max(0.2, min(1.0, self._retry_timeout / 4))
        for url in [self.endpoint] + [u for u in self.configured_urls if u != self.endpoint]:
            try:
                answer = self._once(url, "/cluster/member/list", {}, t)
            except Exception:  # discovery is an optimisation: keep what we have
                continue
            for member in answer.get("members") or ():
                for client_url in member.get("clientURLs") or ():
                    if isinstance(client_url, str) and client_url.rstrip("/") not in found:
                        found.append(client_url.rstrip("/"))
            break
        if found:
            with self._lock:
                current = self.endpoint
                self.urls = found + [u for u in self.configured_urls if u not in found]
                self._current = self.urls.index(current) if current in self.urls else 0

    def _call(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """POST `body` to `path`, failing over between endpoints until one answers
        or retry_timeout is spent.  Non-retriable etcd answers raise _EtcdAnswer."""
        self._discover()

        def attempt(url: str, t: float) -> Dict[str, Any]:
            return self._once(url, path, body, t)

        def classify(url: str, exc: Exception) -> str:
            if isinstance(exc, _EtcdAnswer):
                if exc.code not in _RETRIABLE:
                    raise exc
                return str(exc)
            self._prefixes.pop(url, None)  # socket/urllib3/TLS trouble: next endpoint
            return _reason(exc)

        try:
            return call_with_retry(attempt, self, self._retry_timeout, classify, self._clock, self._sleep)
        except RetryExhausted as exc:
            self._discovered_at = None
            raise DCSError(f"etcd3 {exc.url}: {exc.reason}") from None

    def rotate(self) -> None:
        with self._lock:
            self._current = (self._current + 1) % len(self.urls)

    def _request(self, path: str, body: Dict[str, Any]) -> Dict[str, Any]:
        try:
            return self._call(path, body)
        except _EtcdAnswer as exc:
            raise DCSError(f"etcd3 {self.endpoint}: {exc}") from exc

    # ---- lease ----------------------------------------------------------------
    def _lease_for_put(self) -> str:
        ttl = max(1, int(round(self._ttl)))
        with self._lock:
            if self._lease is not None and self._lease_ttl != ttl:
                self._lease = None  # the old lease runs out by itself; keys move on re-put
            if self._lease is None:
                answer = self._call("/lease/grant", {"TTL": ttl})
                self._lease, self._lease_ttl = str(answer["ID"]), ttl
                self._lease_refreshed = self._clock()
            elif self._clock() - self._lease_refreshed > ttl / 3:
                self._keepalive()
            if self._lease is None:  # lost during the keepalive: grant anew
                return self._lease_for_put()
            return self._lease

    def _keepalive(self) -> None:
        lease = self._lease
        if lease is None:
            return
        started = self._clock()
        answer = self._call("/lease/keepalive", {"ID": lease})
        result = answer.get("result") or {}
        if int(result.get("TTL") or 0) <= 0:
            self._lease = None  # expired on the server: the next ephemeral put grants a new one
        else:
            self._lease_refreshed = started

    def keepalive(self) -> None:
        with self._lock:
            try:
                self._keepalive()
            except _EtcdAnswer as exc:
                raise DCSError(f"etcd3 {self.endpoint}: {exc}") from exc

    # ---- Store ------------------------------------------------------------------
    def load(self) -> Snapshot:
        prefix = self._key()
        answer = self._request("/kv/range", {"key": _b64(prefix), "range_end": prefix_end(prefix),
                                             "serializable": True})
        nodes: Dict[str, Node] = {}
        for kv in answer.get("kvs") or ():
            name = _unb64(kv["key"])
            if name.startswith(prefix):
                lease = kv.get("lease")
                nodes[name[len(prefix):]] = Node(value=_unb64(kv.get("value", "")),
                                                 version=int(kv["mod_revision"]),
                                                 ephemeral_owner=str(lease) if lease else None)
        revision = (answer.get("header") or {}).get("revision")
        return Snapshot(nodes=nodes, index=int(revision) if revision is not None else None)

    def _txn(self, compare: List[Dict[str, Any]], operation: Dict[str, Any]) -> Dict[str, Any]:
        return self._call("/kv/txn", {"compare": compare, "success": [operation]})

    @staticmethod
    def _compare(key: str, version: Optional[int], create: bool) -> List[Dict[str, Any]]:
        if create:
            return [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}]
        if version is not None:
            return [{"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(version)}]
        return []

    def put(
        self,
        key: str,
        value: str,
        *,
        version: Optional[int] = None,
        create: bool = False,
        ephemeral: bool = False,
    ) -> Optional[int]:
        full = self._key(key)
        for attempt in (1, 2):
            request: Dict[str, Any] = {"key": _b64(full), "value": _b64(value)}
            try:
                if ephemeral:
                    request["lease"] = self._lease_for_put()
                answer = self._txn(self._compare(full, version, create), {"request_put": request})
            except _EtcdAnswer as exc:
                if ephemeral and exc.code == _NOT_FOUND and attempt == 1:
                    self._lease = None  # lease lost (expired/revoked): grant a new one, once
                    continue
                raise DCSError(f"etcd3 {self.endpoint}: {exc}") from exc
            if not answer.get("succeeded"):
                return None
            return int(answer["header"]["revision"])
        return None

    def delete(self, key: str, *, version: Optional[int] = None) -> bool:
        full = self._key(key)
        try:
            answer = self._txn(self._compare(full, version, False), {"request_delete_range": {"key": _b64(full)}})
        except _EtcdAnswer as exc:
            raise DCSError(f"etcd3 {self.endpoint}: {exc}") from exc
        if not answer.get("succeeded"):
            return False
        responses = answer.get("responses") or [{}]
        deleted = (responses[0].get("response_delete_range") or {}).get("deleted")
        return int(deleted or 0) > 0

    def delete_tree(self) -> None:
        prefix = self._key()
        self._request("/kv/deleterange", {"key": _b64(prefix), "range_end": prefix_end(prefix)})

    def watch(self, key: str, version: Optional[int], index: Optional[int], timeout: float) -> bool:
        """Stream `/watch` on `key` from the revision after everything already seen."""
        if timeout <= 0:
            return False
        deadline = self._clock() + timeout
        create: Dict[str, Any] = {"key": _b64(self._key(key))}
        candidates = [i + 1 for i in (index, version) if i is not None]
        if candidates:
            create["start_revision"] = str(max(candidates))
        url = self.endpoint
        response: Any = None
        try:
            prefix = self._prefix(url, min(timeout, 2.0))
            if self._auth[0] and self._token is None:
                self._authenticate(url, prefix, min(timeout, 2.0))
            headers = {"Authorization": self._token} if self._token else None
            response = self._http.request(
                "POST", url + prefix + "/watch", body=json.dumps({"create_request": create}).encode(),
                headers=headers, preload_content=False, retries=False,
                timeout=urllib3.Timeout(connect=min(timeout, 2.0), read=timeout))
            if response.status >= 400:
                raise _EtcdAnswer(-1, f"watch: HTTP {response.status}")
            buffer = b""
            chunks = response.read_chunked() if response.chunked else response.stream(1)
            for chunk in chunks:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and self._watch_fired(json.loads(line)):
                        return True
                if self._clock() >= deadline:
                    return False
            return False  # stream ended (server closed it): let the caller reload
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            return False
        except Exception:  # unreachable or refused: sleep out the time (contract)
            with self._lock:
                if self.urls[self._current] == url:
                    self._current = (self._current + 1) % len(self.urls)
                self._prefixes.pop(url, None)
                self._token = None if self._auth[0] else self._token
        finally:
            if response is not None:
                response.close()
                response.release_conn()
        remaining = deadline - self._clock()
        if remaining > 0:
            self._sleep(remaining)
        return False

    @staticmethod
    def _watch_fired(message: Any) -> bool:
        if not isinstance(message, dict):
            return False
        if "error" in message:
            raise _EtcdAnswer(-1, str(message["error"]))
        result = message.get("result") or {}
        # an event, or the start revision was compacted away: the caller reloads
        return bool(result.get("events") or result.get("canceled") or result.get("compact_revision"))

    def close(self) -> None:
        with self._lock:
            lease, self._lease = self._lease, None
            if lease is not None:
                saved = self._retry_timeout
                self._retry_timeout = min(saved, 2.0)
                try:
                    self._call("/kv/lease/revoke", {"ID": lease})
                except Exception:  # best effort: the lease expires anyway
                    pass
                finally:
                    self._retry_timeout = saved
            self._http.clear()
