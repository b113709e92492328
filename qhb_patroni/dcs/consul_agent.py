"""The Consul agent side of the backend: connection settings from a `consul:` section
(spec 3.6) and the service registration (`register_service`), driven by this member's
key writes.  Split from dcs/consul.py (the KV store and sessions)."""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

import consul
import requests

log = logging.getLogger("qhb_patroni.dcs.consul")  # the backend's one logger

DEFAULT_PORT = 8500


def ttl_text(seconds: float) -> str:
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


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


def reason(exc: BaseException) -> str:
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

    def definition(self, data: Mapping[str, Any], session_ttl_s: float) -> Optional[Dict[str, Any]]:
        """What to register for member `data`, None when it cannot be (no URLs)."""
        conn, api = urlsplit(str(data.get("conn_url") or "")), urlsplit(str(data.get("api_url") or ""))
        if not conn.hostname or not api.hostname:
            return None
        role = str(data.get("role") or "").replace("_", "-")
        tags = self.tags + [role]
        if role in ("master", "primary"):
            tags.append("primary" if role == "master" else "master")
        check: Dict[str, Any] = {"http": f"{api.scheme}://{api.netloc}/{role}", "interval": self.interval,
                                 "DeregisterCriticalServiceAfter": ttl_text(10 * session_ttl_s)}
        if self.tls_server_name:
            check["TLSServerName"] = self.tls_server_name
        return {"name": service_name(self.scope), "service_id": self.service_id, "address": conn.hostname,
                "port": conn.port or 5432, "tags": tags, "check": check}

    def update(self, client: Any, value: str, session_ttl_s: float) -> None:
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
            self.last_error = f"consul service {self.service_id}: {reason(exc)}"
            log.warning("%s", self.last_error)
            self.registered = None
