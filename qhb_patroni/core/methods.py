"""Custom bootstrap and replica creation methods (spec 6.1, 6.2): what to run, pure.

The configuration says which methods exist; this module decides which one a
bootstrap uses, which replica methods a clone tries and in what order, and the
arguments each gets.  The manager splits the command into words and runs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from .model import ClusterView, Member

BASEBACKUP = "basebackup"
INITDB = "initdb"
# Keys of a replica method that are Patroni's own (dropped from the arguments with no_params).
_REPLICA_SPECIAL = ("no_params", "no_master", "no_leader", "keep_data")
_TRUE = ("on", "true", "yes", "1", "y")


def flag(value: Any) -> bool:
    """A boolean option of a method: YAML booleans and the usual words."""
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def _arg_value(value: Any) -> str:
    """How 3.0.2 renders an option value on the command line (Python's str())."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


@dataclass(frozen=True)
class CustomBootstrap:
    """bootstrap.method = `name` with a `command` (bootstrap.<name>.*)."""

    name: str
    command: str
    no_params: bool = False
    keep_existing_recovery_conf: bool = False
    # None: the method has no recovery_conf (existing recovery settings are removed
    # unless keep_existing_recovery_conf); otherwise the parameters to write.
    recovery_conf: Optional[Tuple[Tuple[str, str], ...]] = None

    def args(self, scope: str, data_dir: str) -> List[str]:
        """What follows the command's own words."""
        return [] if self.no_params else [f"--scope={scope}", f"--datadir={data_dir}"]

    @property
    def promotes(self) -> bool:
        """The recovery ends with a promotion (or keeps a tool's own settings): 3.0.2
        starts such a server with hot_standby off."""
        if self.keep_existing_recovery_conf:
            return True
        return dict(self.recovery_conf or ()).get("recovery_target_action") == "promote"


def custom_bootstrap(bootstrap: Mapping[str, Any]) -> Tuple[Optional[CustomBootstrap], List[str]]:
    """(the custom method or None for initdb, warnings naming the keys).

    A method without a command falls back to initdb, as in 3.0.2, but not silently."""
    method = bootstrap.get("method")
    if method is None or str(method) in ("", INITDB):
        return None, []
    name = str(method)
    section = bootstrap.get(name)
    if not isinstance(section, Mapping) or not section.get("command"):
        return None, [f"bootstrap.method is {name!r} but bootstrap.{name}.command is not set: using initdb"]
    warnings: List[str] = []
    recovery: Optional[Tuple[Tuple[str, str], ...]] = None
    raw = section.get("recovery_conf")
    if raw is not None:
        if isinstance(raw, Mapping):
            recovery = tuple(sorted((str(k), _arg_value(v)) for k, v in raw.items() if v is not None))
        else:
            warnings.append(f"bootstrap.{name}.recovery_conf is not a mapping: ignored")
    known = {"command", "no_params", "keep_existing_recovery_conf", "recovery_conf"}
    for key in sorted(set(map(str, section)) - known):
        warnings.append(f"bootstrap.{name}.{key} is not a custom bootstrap option: ignored")
    return CustomBootstrap(
        name=name,
        command=str(section["command"]),
        no_params=flag(section.get("no_params")),
        keep_existing_recovery_conf=flag(section.get("keep_existing_recovery_conf")),
        recovery_conf=recovery,
    ), warnings


@dataclass(frozen=True)
class ReplicaMethod:
    """One entry of postgresql.create_replica_methods with its postgresql.<name> section."""

    name: str
    command: str = ""  # "" for basebackup (the built-in base backup tool)
    no_params: bool = False
    keep_data: bool = False
    no_leader: bool = False
    options: Tuple[Tuple[str, str], ...] = ()  # every other key, in config order

    @property
    def builtin(self) -> bool:
        return self.name == BASEBACKUP

    def args(self, scope: str, data_dir: str, connstring: str) -> List[str]:
        """Arguments after the command's own words: the options as --key=value, then
        (unless no_params) --scope, --role, --datadir and --connstring."""
        if self.no_params:
            return [f"--{k}={v}" for k, v in self.options if k not in _REPLICA_SPECIAL]
        fixed = [("scope", scope), ("role", "replica"), ("datadir", data_dir), ("connstring", connstring)]
        names = {k for k, _ in fixed}
        return [f"--{k}={v}" for k, v in self.options if k not in names] + [f"--{k}={v}" for k, v in fixed]


def _method_names(pg: Mapping[str, Any]) -> List[str]:
    raw = pg.get("create_replica_methods")
    if raw is None:
        raw = pg.get("create_replica_method")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not raw:
        return [BASEBACKUP]
    return [str(m) for m in raw if m is not None and str(m)]


def replica_methods(pg: Mapping[str, Any]) -> Tuple[Tuple[ReplicaMethod, ...], List[str]]:
    """(the configured methods in order, warnings).  Empty list -> [basebackup]."""
    methods: List[ReplicaMethod] = []
    warnings: List[str] = []
    for name in _method_names(pg) or [BASEBACKUP]:
        if name == BASEBACKUP:
            methods.append(ReplicaMethod(BASEBACKUP))
            continue
        section = pg.get(name)
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            warnings.append(f"postgresql.{name} is not a mapping: method {name!r} skipped")
            continue
        options = tuple((str(k), _arg_value(v)) for k, v in section.items() if str(k) not in ("command", "cmd"))
        command = section.get("command") or section.get("cmd") or name
        methods.append(ReplicaMethod(
            name=name,
            command=str(command),
            no_params=flag(section.get("no_params")),
            keep_data=flag(section.get("keep_data")),
            no_leader=flag(section.get("no_leader")) or flag(section.get("no_master")),
            options=options,
        ))
    return tuple(methods), warnings


def methods_to_try(methods: Sequence[ReplicaMethod], have_source: bool) -> Tuple[ReplicaMethod, ...]:
    """In order; without a source only the methods that work without a leader
    (basebackup never does)."""
    if have_source:
        return tuple(methods)
    return tuple(m for m in methods if m.no_leader and not m.builtin)


def can_clone_without_leader(methods: Sequence[ReplicaMethod]) -> bool:
    return bool(methods_to_try(methods, have_source=False))


def clone_member(cluster: ClusterView, me: str, leader: Optional[Member]) -> Optional[Member]:
    """Where a base backup comes from (new replica, reinitialize): the first running
    member tagged clonefrom (by name; never me or the leader), else the leader."""
    lead_name = leader.name if leader is not None else None
    for m in sorted(cluster.members, key=lambda m: m.name):
        if m.name in (me, lead_name) or not m.clonefrom or not m.is_running or not m.conn_url:
            continue
        return m
    return leader
