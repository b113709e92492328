"""TLS for the REST API listener and access control for "unsafe" endpoints (spec 1.1, 1.2).

`AccessPolicy.check()` is pure: (client ip, Authorization header, client presented a
certificate, member hosts from the DCS view) -> None when allowed, else the refusal.
Hostnames in `restapi.allowlist` are resolved when the policy is built (at start and on
every reload). An allowlist whose entries all fail to resolve refuses everyone: it is
never taken for "no allowlist".
"""
from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import urlsplit

from ..core.model import ClusterView

log = logging.getLogger(__name__)

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

VERIFY_CLIENT = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def ssl_context(restapi: Mapping[str, Any]) -> Optional[ssl.SSLContext]:
    """Server-side TLS context when `restapi.certfile` is set, else None."""
    certfile = restapi.get("certfile")
    if not certfile:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    password = restapi.get("keyfile_password")
    ctx.load_cert_chain(str(certfile), restapi.get("keyfile") or None, str(password) if password else None)
    verify = str(restapi.get("verify_client") or "none").lower()
    if verify not in VERIFY_CLIENT:
        raise ValueError(f"restapi.verify_client must be none, optional or required, got {verify!r}")
    cafile = restapi.get("cafile")
    if cafile:
        ctx.load_verify_locations(str(cafile))
    ctx.verify_mode = VERIFY_CLIENT[verify]
    ciphers = restapi.get("ciphers")
    if ciphers:
        ctx.set_ciphers(str(ciphers))
    return ctx


def _resolve(entry: str) -> List[Network]:
    """An allowlist entry (IP, CIDR or hostname) -> networks; unresolvable names -> []."""
    text = entry.strip()
    try:
        return [ipaddress.ip_network(text, strict=False)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(text, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return [ipaddress.ip_network(str(info[4][0]).split("%")[0]) for info in infos]


def _ip(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        addr = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def member_hosts(cluster: Optional[ClusterView]) -> List[str]:
    """Hosts of every member's api_url (for `allowlist_include_members`)."""
    hosts: List[str] = []
    for m in cluster.members if cluster is not None else ():
        try:
            host = urlsplit(m.api_url or "").hostname
        except ValueError:
            host = None
        if host:
            hosts.append(host)
    return hosts


@dataclass(frozen=True)
class Refusal:
    code: int
    body: str
    headers: Tuple[Tuple[str, str], ...] = ()


def allowlist_entries(value: Any) -> List[str]:
    """`restapi.allowlist` as a list of entries (a string is comma-separated)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(entry).strip() for entry in value if str(entry).strip()]
    return [str(value)]


def resolve_allowlist(entries: List[str], resolve: Callable[[str], List[Network]] = _resolve) -> List[Network]:
    """The networks of the allowlist entries; each entry that resolves to nothing is
    logged, and an ERROR names restapi.allowlist when none resolves (everyone is refused)."""
    networks: List[Network] = []
    for entry in entries:
        found = resolve(entry)
        if not found:
            log.warning("restapi.allowlist: %r does not resolve to any address", entry)
        networks.extend(found)
    if entries and not networks:
        log.error("restapi.allowlist: none of %s resolves to an address; the unsafe endpoints "
                  "refuse every client until it does (it is resolved again on reload)", ", ".join(entries))
    return networks


@dataclass(frozen=True)
class AccessPolicy:
    allowlist: Tuple[Network, ...] = ()
    include_members: bool = False
    auth: Optional[str] = None  # "user:password"
    tls_client_check: bool = False  # TLS with verify_client optional/required
    resolve: Any = field(default=_resolve, compare=False, repr=False)  # entry -> networks (injectable)
    allowlist_set: bool = False  # restapi.allowlist has entries, even if none resolved

    @classmethod
    def from_config(cls, restapi: Mapping[str, Any],
                    resolve: Callable[[str], List[Network]] = _resolve) -> AccessPolicy:
        entries = allowlist_entries(restapi.get("allowlist"))
        networks = resolve_allowlist(entries, resolve)
        auth = restapi.get("auth")
        authentication = restapi.get("authentication")
        if not auth and isinstance(authentication, Mapping) and authentication.get("username"):
            auth = f"{authentication['username']}:{authentication.get('password', '')}"
        verify = str(restapi.get("verify_client") or "none").lower()
        return cls(
            allowlist=tuple(networks),
            include_members=bool(restapi.get("allowlist_include_members")),
            auth=str(auth) if auth else None,
            tls_client_check=bool(restapi.get("certfile")) and verify in ("optional", "required"),
            resolve=resolve,
            allowlist_set=bool(entries),
        )

    def _allowed_networks(self, hosts: Iterable[str]) -> List[Network]:
        networks = list(self.allowlist)
        if self.include_members:
            for host in hosts:
                networks.extend(self.resolve(host))
        return networks

    def check(
        self,
        client_ip: str,
        authorization: Optional[str],
        has_client_cert: bool,
        cluster: Optional[ClusterView] = None,
    ) -> Optional[Refusal]:
        """None when the request may proceed, else how to refuse it (checks in 3.0.2's order)."""
        if self.allowlist or self.allowlist_set or self.include_members:
            addr = _ip(client_ip)
            networks = self._allowed_networks(member_hosts(cluster))
            if addr is None or not any(addr in net for net in networks):
                return Refusal(403, "Access is denied")
        if self.tls_client_check and not has_client_cert:
            return Refusal(403, "client certificate required")
        if self.auth:
            challenge = (("WWW-Authenticate", 'Basic realm="Patroni"'),)
            if not authorization:
                return Refusal(401, "no auth header received", challenge)
            expected = "Basic " + base64.b64encode(self.auth.encode("utf-8")).decode("ascii")
            if not hmac.compare_digest(authorization.encode("utf-8"), expected.encode("utf-8")):
                return Refusal(401, "not authenticated", challenge)
        return None


def open_endpoints_warning(policy: AccessPolicy, unsafe: Iterable[Tuple[str, str]], listen: str) -> Optional[str]:
    """The WARNING to log when the unsafe endpoints take requests without a password
    (restapi.authentication absent, the 3.0.2 default), naming them; None when they
    need one."""
    if policy.auth or not unsafe:
        return None
    endpoints = ", ".join(f"{method} /{segment}" for method, segment in sorted(unsafe, key=lambda r: (r[1], r[0])))
    if policy.allowlist or policy.allowlist_set or policy.include_members:
        who = "from the addresses of restapi.allowlist"
        if policy.include_members:
            who += " and the cluster members"
    elif policy.tls_client_check:
        who = "from any client with a certificate signed by restapi.cafile"
    else:
        who = f"from any client that can reach {listen}"
    return (f"restapi.authentication is not set: the unsafe endpoints ({endpoints}) accept requests "
            f"without a password {who}; set restapi.authentication (see docs/security.md)")
