"""Effective configuration = defaults <- dynamic (/config or bootstrap.dcs) <- local.

Rules (Patroni 3.0.2, spec 3.1 item 4):
* timing and other default-table keys come only from the dynamic layer; all of
  them but the three booleans are int()-coerced, and one failure rejects the
  whole dynamic configuration (the caller keeps the previous one);
* postgresql: dynamic sub-keys except the local-only ones, then local sub-keys
  override one by one (use_slots stays global); parameters are merged with
  the cmdline-GUC rule of qhb_patroni.config.gucs;
* standby_cluster: known sub-keys only, from the dynamic layer;
* watchdog and every other local top-level key come from the local layer.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Mapping, Optional, Tuple

from ..core.fencing import DRIVERS as WATCHDOG_DRIVERS
from ..core.fencing import watchdog_mode
from ..core.methods import can_clone_without_leader, replica_methods
from ..core.observation import Settings
from ..core.standby import standby_cluster
from .checks import as_int, parse_bool, show
from .errors import ConfigError, Problem
from .gucs import accepted_parameters, default_parameters
from .schema import (
    AUTH_PARAMETERS,
    DYNAMIC_AS_IS_KEYS,
    DYNAMIC_INT_KEYS,
    LEGACY_DYNAMIC_ALIASES,
    POSTGRESQL_LOCAL_ONLY,
    STANDBY_CLUSTER_KEYS,
    dynamic_default,
)

DYNAMIC_SOURCE = "dynamic configuration"
_COPIED_TO_POSTGRESQL = ("name", "scope", "retry_timeout", "synchronous_mode", "synchronous_mode_strict",
                         "synchronous_node_count", "maximum_lag_on_syncnode", "citus")


def defaults() -> Dict[str, Any]:
    """The built-in defaults every effective configuration starts from."""
    config: Dict[str, Any] = {name: dynamic_default(name) for name in DYNAMIC_INT_KEYS + DYNAMIC_AS_IS_KEYS}
    config["standby_cluster"] = {name: "" for name in STANDBY_CLUSTER_KEYS}
    config["postgresql"] = {"bin_dir": "", "use_slots": True, "parameters": default_parameters()}
    config["watchdog"] = {"mode": "automatic"}
    return config


def _reject(path: Tuple[str, ...], message: str) -> ConfigError:
    return ConfigError([Problem(DYNAMIC_SOURCE, path, message)])


def _apply_dynamic(config: Dict[str, Any], dynamic: Mapping[str, Any]) -> None:
    for name, value in dynamic.items():
        if name == "postgresql":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise _reject((name,), f"expected a mapping, got {show(value)}")
            for sub, sub_value in value.items():
                if sub == "parameters":
                    if sub_value is not None and not isinstance(sub_value, Mapping):
                        raise _reject((name, sub), f"expected a mapping, got {show(sub_value)}")
                    config["postgresql"]["parameters"].update(accepted_parameters(sub_value, local=False))
                elif sub not in POSTGRESQL_LOCAL_ONLY:
                    config["postgresql"][sub] = copy.deepcopy(sub_value)
        elif name == "standby_cluster":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise _reject((name,), f"expected a mapping, got {show(value)}")
            for sub, sub_value in value.items():
                if sub in STANDBY_CLUSTER_KEYS:
                    config["standby_cluster"][sub] = copy.deepcopy(sub_value)
        elif name in DYNAMIC_AS_IS_KEYS:
            config[name] = value
        elif name in DYNAMIC_INT_KEYS or (name in LEGACY_DYNAMIC_ALIASES
                                          and LEGACY_DYNAMIC_ALIASES[name] not in dynamic):
            number = as_int(value)
            if number is None:
                raise _reject((name,), f"expected an integer, got {show(value)}")
            config[LEGACY_DYNAMIC_ALIASES.get(name, name)] = number


def _valid_citus(value: Any) -> bool:
    return (isinstance(value, Mapping) and isinstance(value.get("group"), int)
            and not isinstance(value.get("group"), bool) and isinstance(value.get("database"), str))


def _apply_local(config: Dict[str, Any], local: Mapping[str, Any]) -> None:
    for name, value in local.items():
        if name == "citus":
            if _valid_citus(value):
                config[name] = copy.deepcopy(value)
        elif name == "postgresql":
            for sub, sub_value in (value or {}).items():
                if sub == "parameters":
                    if isinstance(sub_value, Mapping):
                        config["postgresql"]["parameters"].update(accepted_parameters(sub_value, local=True))
                elif sub != "use_slots":  # replication slots are switched on/off globally
                    config["postgresql"][sub] = copy.deepcopy(sub_value)
        elif name not in config or name == "watchdog":
            config[name] = copy.deepcopy(value) if value is not None else {}


def _derive(config: Dict[str, Any]) -> None:
    restapi = config.get("restapi")
    if isinstance(restapi, dict) and isinstance(restapi.get("authentication"), Mapping):
        auth = restapi["authentication"]
        restapi["auth"] = f"{auth.get('username', '')}:{auth.get('password', '')}"
    pg = config["postgresql"]
    if "authentication" not in pg:  # legacy layout: postgresql.superuser / replication / pg_rewind
        pg["use_pg_rewind"] = "pg_rewind" in pg
        pg["authentication"] = {u: pg[u] for u in ("replication", "superuser") if u in pg}
    if isinstance(pg["authentication"], dict):
        if "superuser" not in pg["authentication"] and "pg_rewind" in pg:
            pg["authentication"]["superuser"] = pg["pg_rewind"]
        for user, entry in list(pg["authentication"].items()):
            if isinstance(entry, Mapping):
                pg["authentication"][user] = {k: v for k, v in entry.items() if k in AUTH_PARAMETERS}
    if "name" not in config and "name" in pg:
        config["name"] = pg["name"]
    if "citus" in config:
        bootstrap = config.setdefault("bootstrap", {})
        if isinstance(bootstrap, dict):
            dcs = bootstrap.setdefault("dcs", {})
            if isinstance(dcs, dict):
                dcs.setdefault("synchronous_mode", True)
    pg.update({name: copy.deepcopy(config[name]) for name in _COPIED_TO_POSTGRESQL if name in config})


def effective_config(local: Mapping[str, Any], dynamic: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """defaults <- dynamic <- local. Raises ConfigError (source 'dynamic
    configuration') when the dynamic layer is unusable."""
    config = defaults()
    if dynamic is not None and not isinstance(dynamic, Mapping):
        raise _reject((), f"expected a mapping, got {show(dynamic)}")
    _apply_dynamic(config, dynamic or {})
    _apply_local(config, local)
    _derive(config)
    return config


def apply_dynamic(local: Mapping[str, Any], dynamic: Optional[Mapping[str, Any]],
                  previous: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional[ConfigError]]:
    """The new effective configuration, or `previous` and the reason when the
    new dynamic configuration is rejected (the caller logs it)."""
    try:
        return effective_config(local, dynamic), None
    except ConfigError as exc:
        return previous, exc


def initial_dynamic(local: Mapping[str, Any]) -> Dict[str, Any]:
    """The dynamic layer before /config exists: bootstrap.dcs of the local file."""
    bootstrap = local.get("bootstrap")
    dcs = bootstrap.get("dcs") if isinstance(bootstrap, Mapping) else None
    return copy.deepcopy(dict(dcs)) if isinstance(dcs, Mapping) else {}


def _flag(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        parsed = parse_bool(value)
        return default if parsed is None else bool(parsed)
    return bool(value)


def _number(value: Any, default: float) -> float:
    number = as_int(value)
    return float(default if number is None else number)


def settings_from(effective: Mapping[str, Any]) -> Settings:
    """The decision-relevant subset of an effective configuration."""
    pg = effective.get("postgresql") or {}
    tags = effective.get("tags") or {}
    bootstrap = effective.get("bootstrap")
    return Settings(
        name=str(effective.get("name", "")),
        scope=str(effective.get("scope", "")),
        ttl=_number(effective.get("ttl"), 30),
        loop_wait=_number(effective.get("loop_wait"), 10),
        retry_timeout=_number(effective.get("retry_timeout"), 10),
        maximum_lag_on_failover=int(_number(effective.get("maximum_lag_on_failover"), 1048576)),
        use_pg_rewind=_flag(pg.get("use_pg_rewind")),
        use_slots=_flag(pg.get("use_slots"), True),
        remove_data_directory_on_rewind_failure=_flag(pg.get("remove_data_directory_on_rewind_failure")),
        remove_data_directory_on_diverged_timelines=_flag(pg.get("remove_data_directory_on_diverged_timelines")),
        nofailover=_flag(tags.get("nofailover")) if isinstance(tags, Mapping) else False,
        has_bootstrap=isinstance(bootstrap, Mapping),
        bootstrap_dcs=initial_dynamic(effective),
        primary_start_timeout=_number(effective.get("primary_start_timeout"), 300),
        check_timeline=bool(_number(effective.get("check_timeline"), 0)),
        max_timelines_history=max(0, int(_number(effective.get("max_timelines_history"), 0))),
        synchronous_mode=_flag(effective.get("synchronous_mode")),
        synchronous_mode_strict=_flag(effective.get("synchronous_mode_strict")),
        synchronous_node_count=max(1, int(_number(effective.get("synchronous_node_count"), 1))),
        maximum_lag_on_syncnode=int(_number(effective.get("maximum_lag_on_syncnode"), -1)),
        clone_without_leader=can_clone_without_leader(replica_methods(pg)[0]) if isinstance(pg, Mapping) else False,
        standby=standby_cluster(effective.get("standby_cluster"))[0],
        failsafe_mode=_flag(effective.get("failsafe_mode")),
        **_watchdog_settings(effective.get("watchdog")),
    )


def _watchdog_settings(section: Any) -> Dict[str, Any]:
    """watchdog.mode / safety_margin for the core (an unknown mode or driver is off:
    runtime/watchdog.py warns about it once)."""
    section = section if isinstance(section, Mapping) else {}
    mode = watchdog_mode(section.get("mode", "automatic")) or "off"
    if str(section.get("driver") or "default") not in WATCHDOG_DRIVERS:
        mode = "off"
    margin = section.get("safety_margin", 5)
    return {"watchdog_mode": mode,
            "watchdog_safety_margin": int(margin) if isinstance(margin, (int, float)) else 5}
