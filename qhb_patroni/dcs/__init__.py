"""DCS layer: narrow store protocol (base), key codec (keys), cluster operations
(writer), backends (memory, etcd v2, etcd3, consul) and the factory choosing one from config."""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Mapping

from qhb_patroni.dcs import keys
from qhb_patroni.dcs.base import DCSError, Node, Snapshot, Store
from qhb_patroni.dcs.writer import ClusterDCS

__all__ = ["BACKENDS", "ClusterDCS", "DCSError", "Node", "Snapshot", "Store", "from_config", "keys"]

DEFAULT_TTL = 30.0
DEFAULT_RETRY_TIMEOUT = 10.0

# (section, base path, ttl, retry_timeout, scope, member name, monotonic clock) -> Store
BackendFactory = Callable[[Mapping[str, Any], str, float, float, str, str, Callable[[], float]], Store]


def _etcd_family(section: Mapping[str, Any], base: str, ttl: float, retry_timeout: float, v3: bool,
                 clock: Callable[[], float]) -> Store:
    """etcd's v2 keys API or v3 JSON gateway: one section layout, one set of options."""
    from qhb_patroni.dcs.endpoints import endpoints_from_config

    if v3:
        from qhb_patroni.dcs.etcd3 import Etcd3Store as store_class
    else:
        from qhb_patroni.dcs.etcd import EtcdStore as store_class  # type: ignore[assignment]
    urls, username, password = endpoints_from_config(section, "etcd3" if v3 else "etcd")
    return store_class(
        urls,
        base,
        ttl=ttl,
        retry_timeout=retry_timeout,
        username=username,
        password=password,
        cacert=section.get("cacert"),
        cert=section.get("cert"),
        key=section.get("key"),
        use_proxies=bool(section.get("use_proxies")) or bool(section.get("proxy")),
        clock=clock,
    )


def _etcd(section: Mapping[str, Any], base: str, ttl: float, retry_timeout: float, scope: str, name: str,
          clock: Callable[[], float]) -> Store:
    return _etcd_family(section, base, ttl, retry_timeout, False, clock)


def _etcd3(section: Mapping[str, Any], base: str, ttl: float, retry_timeout: float, scope: str, name: str,
           clock: Callable[[], float]) -> Store:
    return _etcd_family(section, base, ttl, retry_timeout, True, clock)


def _consul(section: Mapping[str, Any], base: str, ttl: float, retry_timeout: float, scope: str, name: str,
            clock: Callable[[], float]) -> Store:
    from qhb_patroni.dcs.consul import ConsulSettings, ConsulStore, ServiceRegistration

    return ConsulStore(ConsulSettings(section), base, session_name=f"{scope}-{name}", ttl=ttl,
                       retry_timeout=retry_timeout, service=ServiceRegistration(scope, name, section), clock=clock)


# Config section name -> backend.  Checked in this (alphabetical, like Patroni) order.
BACKENDS: Dict[str, BackendFactory] = {
    "consul": _consul,
    "etcd": _etcd,
    "etcd3": _etcd3,
}


def _seconds(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number of seconds, got {value!r}") from None


def from_config(config: Mapping[str, Any], name: str, clock: Callable[[], float] = time.monotonic) -> ClusterDCS:
    """ClusterDCS for `config` (the whole local config: scope, namespace, ttl,
    retry_timeout and one DCS section) and member `name`; `clock` (monotonic seconds)
    bounds its retries."""
    scope = config.get("scope")
    if not scope:
        raise ValueError("scope is required to locate the cluster in the DCS")
    for section_name, factory in BACKENDS.items():
        section = config.get(section_name)
        if isinstance(section, Mapping):
            ttl = _seconds(config, "ttl", DEFAULT_TTL)
            retry_timeout = _seconds(config, "retry_timeout", DEFAULT_RETRY_TIMEOUT)
            base = keys.base_path(config.get("namespace"), str(scope))
            store = factory(section, base, ttl, retry_timeout, str(scope), name, clock)
            return ClusterDCS(store, name, ttl=ttl, retry_timeout=retry_timeout, base=base)
    raise ValueError(
        "no DCS configured: expected one of the sections {}".format(", ".join(repr(k) for k in BACKENDS))
    )
