"""etcd v2 API backend (python-etcd), spec 4.4.

One `etcd.Client` per configured endpoint; we do the failover between them
ourselves so every operation is bounded by `retry_timeout` in total (python-etcd's
own reconnect logic and urllib3's retries would multiply timeouts).  Requests go
through `Client.api_execute` with an explicit timeout, and responses are parsed
here into `Snapshot`/versions (etcd's modifiedIndex).  Every failure becomes
`DCSError("etcd <endpoint>: <reason>")`.

Unless `use_proxies` (or `proxy`) is set, the etcd cluster's client URLs are
discovered through `GET /v2/members` and tried before the configured hosts;
the list is refreshed every 10*ttl seconds and after a total failure.
Not done (yet): DNS SRV discovery.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar
from urllib.parse import urlsplit

import etcd
import urllib3

from qhb_patroni.dcs.base import DCSError, Node, Snapshot, WatchEvent
from qhb_patroni.dcs.endpoints import endpoints_from_config as _endpoints
from qhb_patroni.dcs.retry import RetryExhausted, call_with_retry

T = TypeVar("T")

DEFAULT_PORT = 2379

# etcd v2 error codes worth another try on the next endpoint
_RETRIABLE_CODES = {300, 301}  # raft internal error, leader election in progress


def endpoints_from_config(config: Mapping[str, Any]) -> Tuple[List[str], Optional[str], Optional[str]]:
    """(endpoint URLs, username, password) from an `etcd:` section (spec 3.6)."""
    return _endpoints(config, "etcd")


def _reason(exc: BaseException) -> str:
    seen = 0
    cur: Optional[BaseException] = exc
    while cur is not None and seen < 6:
        if isinstance(cur, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cur, urllib3.exceptions.NewConnectionError):  # before TimeoutError: a subclass
            text = str(cur)
            return "connection refused" if "refused" in text.lower() else text
        if isinstance(cur, (urllib3.exceptions.TimeoutError, TimeoutError)):
            return "timed out"
        nxt = getattr(cur, "cause", None)
        cur = nxt if isinstance(nxt, BaseException) else (cur.__cause__ or cur.__context__)
        seen += 1
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 200 else text[:200] + "..."


def _error_code(exc: etcd.EtcdException) -> Optional[int]:
    payload = getattr(exc, "payload", None)
    if isinstance(payload, dict):
        code = payload.get("errorCode")
        return int(code) if isinstance(code, int) else None
    return None


def _watch_event(response: Any) -> Optional[WatchEvent]:
    """(the key's new value, None once deleted or expired; its modifiedIndex) from the
    answer of a watch, None when it cannot be read.  Reading it also hands the connection
    back to the pool: left unread, the next watch connects anew."""
    try:
        data = json.loads(response.data.decode("utf-8", "replace"))
        node = data["node"]
        value = node.get("value")
        return (value if isinstance(value, str) else None), int(node["modifiedIndex"])
    except Exception:  # an answer we cannot read: the caller reads the store instead
        return None


def _flatten(node: Mapping[str, Any], prefix: str, out: Dict[str, Node]) -> None:
    for child in node.get("nodes") or ():
        if child.get("dir"):
            _flatten(child, prefix, out)
            continue
        key = str(child.get("key", ""))
        if key.startswith(prefix) and "value" in child:
            out[key[len(prefix):]] = Node(value=str(child["value"]), version=int(child["modifiedIndex"]))


class EtcdStore:
    """dcs.base.Store over the etcd v2 keys API."""

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
            raise ValueError("etcd: no endpoints")
        self.configured_urls = list(urls)
        self.urls = list(urls)
        self.use_proxies = use_proxies
        self._discovered_at: Optional[float] = None
        self.base = "/" + base.strip("/")
        self._ttl = ttl
        self._retry_timeout = float(retry_timeout)
        self._auth = (username, password)
        self._tls = (cacert, cert, key)
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._current = 0
        self._clients: Dict[str, etcd.Client] = {}
        self.last_watch: Optional[WatchEvent] = None

    # ---- settings -------------------------------------------------------------
    def set_ttl(self, ttl: float) -> None:
        self._ttl = ttl

    def set_retry_timeout(self, retry_timeout: float) -> None:
        self._retry_timeout = float(retry_timeout)

    @property
    def endpoint(self) -> str:
        return self.urls[self._current]

    def _ttl_param(self) -> int:
        return max(1, int(round(self._ttl)))

    # ---- plumbing -------------------------------------------------------------
    def _client(self, url: str) -> etcd.Client:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                parts = urlsplit(url)
                cacert, cert, key = self._tls
                client = etcd.Client(
                    host=parts.hostname or "127.0.0.1",
                    port=parts.port or DEFAULT_PORT,
                    protocol=parts.scheme or "http",
                    username=self._auth[0],
                    password=self._auth[1],
                    ca_cert=cacert,
                    cert=(cert, key) if cert and key else cert,
                    allow_reconnect=False,
                    read_timeout=max(1, int(self._retry_timeout)),
                )
                # urllib3 would silently retry connects and reads; we bound time ourselves.
                client.http.connection_pool_kw["retries"] = urllib3.Retry(total=False)
                self._clients[url] = client
            return client

    def _discover(self) -> None:
        """Refresh the endpoint list from /v2/members (best effort, bounded)."""
        if self.use_proxies:
            return
        now = self._clock()
        if self._discovered_at is not None and now - self._discovered_at < 10 * self._ttl:
            return
        self._discovered_at = now
        found: List[str] = []
        for url in [self.endpoint] + [u for u in self.configured_urls if u != self.endpoint]:
            try:
                client = self._client(url)
                t = max(0.2, min(1.0, self._retry_timeout / 4))
                response = client.api_execute(str(client.version_prefix) + "/members", client._MGET,
                                              timeout=urllib3.Timeout(connect=t, read=t))
                for member in self._json(response).get("members") or ():
                    for client_url in member.get("clientURLs") or ():
                        if isinstance(client_url, str) and client_url not in found:
                            found.append(client_url.rstrip("/"))
                break
            except Exception:  # discovery is an optimisation: keep what we have
                continue
        if not found:
            return
        current = self.endpoint
        merged = found + [u for u in self.configured_urls if u not in found]
        with self._lock:
            self.urls = merged
            self._current = merged.index(current) if current in merged else 0

    def _path(self, client: etcd.Client, key: str = "") -> str:
        return str(client.key_endpoint) + self.base + ("/" + key if key else "")

    def _call(self, request: Callable[[etcd.Client, urllib3.Timeout], T]) -> T:
        """Run `request` against the endpoints in turn until it answers or
        retry_timeout is spent.  `request` interprets the expected etcd answers (key
        not found, compare failed...) itself; any other etcd error is a DCSError."""
        self._discover()

        def attempt(url: str, t: float) -> T:
            return request(self._client(url), urllib3.Timeout(connect=t, read=t))

        def classify(url: str, exc: Exception) -> str:
            if isinstance(exc, etcd.EtcdException) and not isinstance(
                exc, (etcd.EtcdConnectionFailed, etcd.EtcdLeaderElectionInProgress, etcd.EtcdClusterIdChanged)
            ) and _error_code(exc) not in _RETRIABLE_CODES:
                raise DCSError(f"etcd {url}: {_reason(exc)}") from exc
            return _reason(exc)  # connection trouble, socket/urllib3/JSON surprises: never leak them

        try:
            return call_with_retry(attempt, self, self._retry_timeout, classify, self._clock, self._sleep)
        except RetryExhausted as exc:
            self._discovered_at = None  # rediscover once something answers again
            raise DCSError(f"etcd {exc.url}: {exc.reason}") from None

    def rotate(self) -> None:
        with self._lock:
            self._current = (self._current + 1) % len(self.urls)

    @staticmethod
    def _json(response: Any) -> Dict[str, Any]:
        data = json.loads(response.data.decode("utf-8", "replace"))
        if not isinstance(data, dict):
            raise etcd.EtcdException(f"unexpected etcd answer {data!r}")
        return data

    @staticmethod
    def _index_header(response: Any) -> Optional[int]:
        raw = response.headers.get("x-etcd-index")
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    # ---- Store ------------------------------------------------------------------
    def load(self) -> Snapshot:
        def request(client: etcd.Client, timeout: urllib3.Timeout) -> Snapshot:
            try:
                response = client.api_execute(self._path(client), client._MGET,
                                              params={"recursive": "true"}, timeout=timeout)
            except etcd.EtcdKeyNotFound as exc:
                payload = exc.payload if isinstance(exc.payload, dict) else {}
                index = payload.get("index")
                return Snapshot(nodes={}, index=int(index) if isinstance(index, int) else None)
            nodes: Dict[str, Node] = {}
            _flatten(self._json(response).get("node") or {}, self.base + "/", nodes)
            return Snapshot(nodes=nodes, index=self._index_header(response))

        return self._call(request)

    def put(
        self,
        key: str,
        value: str,
        *,
        version: Optional[int] = None,
        create: bool = False,
        ephemeral: bool = False,
    ) -> Optional[int]:
        params: Dict[str, Any] = {"value": value}
        if ephemeral:
            params["ttl"] = self._ttl_param()
        if create:
            params["prevExist"] = "false"
        if version is not None:
            params["prevIndex"] = version

        def request(client: etcd.Client, timeout: urllib3.Timeout) -> Optional[int]:
            try:
                response = client.api_execute(self._path(client, key), client._MPUT, params=params, timeout=timeout)
            except (etcd.EtcdAlreadyExist, etcd.EtcdCompareFailed, etcd.EtcdKeyNotFound):
                return None
            node = self._json(response).get("node") or {}
            return int(node["modifiedIndex"])

        return self._call(request)

    def delete(self, key: str, *, version: Optional[int] = None) -> bool:
        params: Dict[str, Any] = {}
        if version is not None:
            params["prevIndex"] = version

        def request(client: etcd.Client, timeout: urllib3.Timeout) -> bool:
            try:
                client.api_execute(self._path(client, key), client._MDELETE, params=params, timeout=timeout)
            except (etcd.EtcdCompareFailed, etcd.EtcdKeyNotFound):
                return False
            return True

        return self._call(request)

    def delete_tree(self) -> None:
        def request(client: etcd.Client, timeout: urllib3.Timeout) -> None:
            try:
                client.api_execute(self._path(client), client._MDELETE,
                                   params={"recursive": "true", "dir": "true"}, timeout=timeout)
            except etcd.EtcdKeyNotFound:
                pass

        self._call(request)

    def keepalive(self) -> None:
        """etcd v2 has no leases: TTLs are refreshed by re-putting the keys."""

    def watch(self, key: str, version: Optional[int], index: Optional[int], timeout: float) -> bool:
        """Long-poll `GET key?wait=true&waitIndex=N`, N past everything already seen:
        max(index + 1, version + 1).  A change already made since then answers at once."""
        start = self._clock()
        candidates = [i + 1 for i in (index, version) if i is not None]
        params: Dict[str, Any] = {"wait": "true"}
        if candidates:
            params["waitIndex"] = max(candidates)
        url = self.endpoint
        self.last_watch = None
        if timeout <= 0:
            return False
        try:
            client = self._client(url)
            response = client.api_execute(self._path(client, key), client._MGET, params=params,
                                          timeout=urllib3.Timeout(connect=min(timeout, 2.0), read=timeout))
            self.last_watch = _watch_event(response)
            return True
        except etcd.EtcdWatchTimedOut:
            return False
        except (etcd.EtcdEventIndexCleared, etcd.EtcdWatcherCleared):
            return True  # history compacted past our index: treat as changed, caller reloads
        except Exception:
            with self._lock:
                if self._current == self.urls.index(url):
                    self._current = (self._current + 1) % len(self.urls)
        remaining = timeout - (self._clock() - start)
        if remaining > 0:
            self._sleep(remaining)
        return False

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                try:
                    client.http.clear()
                except Exception:  # closing is best effort
                    pass
            self._clients.clear()
