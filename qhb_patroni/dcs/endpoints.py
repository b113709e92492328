"""Endpoint URLs and credentials from an etcd section, shared by the v2 and v3
backends.  No python-etcd import here: the etcd3 path must work without it."""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 2379
log = logging.getLogger(__name__)

Resolve = Callable[[str], List[Tuple[str, int]]]  # SRV name -> [(host, port)]
FetchMembers = Callable[[str], List[str]]  # peer URL -> client URLs of the etcd members

# SRV record kinds in the order etcd documents them (and 3.0.2 tries them): client
# records first, then server (peer) records whose /members lists the client URLs.
SRV_KINDS = ("-client-ssl", "-client", "-ssl", "", "-server-ssl", "-server")


def _resolve_srv(name: str) -> List[Tuple[str, int]]:
    try:
        import dns.resolver
    except ImportError:  # pragma: no cover - dnspython comes with python-etcd
        raise ValueError("etcd SRV discovery needs the dnspython package") from None
    try:
        answers = dns.resolver.resolve(name, "SRV")
    except Exception as exc:  # NXDOMAIN, no answer, timeout: try the next kind
        log.debug("SRV %s: %s", name, exc)
        return []
    return [(str(a.target).rstrip("."), int(a.port)) for a in answers]


def _fetch_members(url: str) -> List[str]:
    import urllib3

    http = urllib3.PoolManager(cert_reqs="CERT_NONE", assert_hostname=False, retries=False)
    resp = http.request("GET", url, timeout=urllib3.Timeout(total=5.0))
    if resp.status != 200:
        return []
    members = json.loads(resp.data.decode("utf-8"))
    if isinstance(members, dict):
        members = members.get("members", [])
    return [str(u) for m in members if isinstance(m, dict) for u in m.get("clientURLs", [])]


def srv_endpoints(srv: str, suffix: Optional[str] = None, resolve: Resolve = _resolve_srv,
                  fetch_members: FetchMembers = _fetch_members) -> List[str]:
    """Client URLs found through DNS SRV records of domain `srv` (`_etcd-client-ssl._tcp.<srv>`
    and the other kinds, `-<suffix>` appended); the first kind with an answer wins."""
    for kind in SRV_KINDS:
        name = f"_etcd{kind}-{suffix}" if suffix else f"_etcd{kind}"
        protocol = "https" if "-ssl" in kind else "http"
        urls: List[str] = []
        for host, port in resolve(f"{name}._tcp.{srv}"):
            url = f"{protocol}://{host}:{port}"
            if "-server" not in kind:
                urls.append(url)
                continue
            try:
                urls.extend(fetch_members(url + "/members"))
                break
            except Exception as exc:
                log.warning("GET %s/members: %s", url, exc)
        if urls:
            return sorted(set(urls))
    return []


def endpoints_from_config(
    config: Mapping[str, Any], section: str, resolve: Resolve = _resolve_srv,
    fetch_members: FetchMembers = _fetch_members,
) -> Tuple[List[str], Optional[str], Optional[str]]:
    """(endpoint URLs, username, password) from an `etcd:` or `etcd3:` section (spec 3.6).

    `url`/`proxy` win over `hosts`, which win over `host`; credentials may come
    from the keys or from a `user:pass@` part of an address."""
    protocol = str(config.get("protocol") or "http")
    username = config.get("username") or config.get("user")
    password = config.get("password")
    urls: List[str] = []

    def add(text: str) -> None:
        nonlocal username, password
        text = text.strip()
        parts = urlsplit(text if "://" in text else f"{protocol}://{text}")
        if not parts.hostname:
            raise ValueError(f"invalid {section} host {text!r}")
        if parts.username and not username:
            username, password = unquote(parts.username), unquote(parts.password or "")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = parts.port or int(config.get("port") or DEFAULT_PORT)
        urls.append(f"{parts.scheme or protocol}://{host}:{port}")

    for key in ("url", "proxy"):
        if config.get(key):
            add(str(config[key]))
    if not urls and config.get("srv"):  # 3.0.2: SRV first, then hosts / host as a fallback
        for url in srv_endpoints(str(config["srv"]), config.get("srv_suffix"), resolve, fetch_members):
            add(url)
        if not urls and not config.get("hosts") and not config.get("host"):
            raise ValueError(f"{section}.srv: no etcd found through the DNS SRV records of {config['srv']!r}")
    if not urls:
        hosts = config.get("hosts")
        if isinstance(hosts, str):
            hosts = [h for h in hosts.split(",") if h.strip()]
        for entry in hosts or []:
            add(str(entry))
    if not urls and config.get("host"):
        add(str(config["host"]))
    if not urls:
        raise ValueError(f"{section}: one of host, hosts, url, proxy or srv is required")
    return urls, (str(username) if username else None), (str(password) if password else None)
