"""Endpoint URLs and credentials from an etcd section, shared by the v2 and v3
backends.  No python-etcd import here: the etcd3 path must work without it."""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple
from urllib.parse import unquote, urlsplit

DEFAULT_PORT = 2379


def endpoints_from_config(
    config: Mapping[str, Any], section: str
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
    if not urls:
        hosts = config.get("hosts")
        if isinstance(hosts, str):
            hosts = [h for h in hosts.split(",") if h.strip()]
        for entry in hosts or []:
            add(str(entry))
    if not urls and config.get("host"):
        add(str(config["host"]))
    if not urls:
        if config.get("srv"):
            raise ValueError(f"{section}.srv (DNS SRV discovery) is not supported yet; give {section}.hosts")
        raise ValueError(f"{section}: one of host, hosts, url or proxy is required")
    return urls, (str(username) if username else None), (str(password) if password else None)
