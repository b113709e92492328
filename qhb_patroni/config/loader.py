"""Loading the local configuration: YAML file or directory, PATRONI_* environment.

    load_config(path) -> dict       validated local configuration
    read_config(path) -> Loaded     the same before validation, with the origin
                                    of every value (for one-line error messages)
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from .env import CONFIGURATION_VARIABLE, environment_config
from .errors import ConfigError, KeyPath, Problem
from .merge import deep_merge
from .validator import normalized, validate_local

EMPTY_MESSAGE = "Config is empty."
ENVIRONMENT_LABEL = "environment"


@dataclass
class Loaded:
    """A local configuration and where its values came from."""

    config: Dict[str, Any]
    source: str  # file, directory, PATRONI_CONFIGURATION or environment
    origins: Dict[KeyPath, str] = field(default_factory=dict)

    def origin(self, path: KeyPath) -> str:
        """The source of the value at `path` (longest recorded prefix)."""
        for end in range(len(path), 0, -1):
            label = self.origins.get(tuple(path[:end]))
            if label is not None:
                return label
        if path:  # a section created only by deeper values (e.g. env PATRONI_CONSUL_HOST)
            for recorded, label in self.origins.items():
                if recorded[:len(path)] == tuple(path):
                    return label
        return self.source

    def problems(self) -> List[Problem]:
        return validate_local(self.config, self.origin)


def parse_yaml(text: str, label: str) -> Any:
    """YAML text -> data; a syntax error becomes `<label>: line N: <problem>`."""
    try:
        return yaml.load(text, Loader=yaml.SafeLoader)  # pure-Python loader: stable messages
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "invalid YAML"
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{label}: {where}{what}") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _mapping(data: Any, label: str) -> Dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else type(data).__name__
        raise ConfigError(f"{label}: expected a mapping at the top level, got {kind}")
    return data


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {(exc.strerror or str(exc)).lower()}") from None


def _leaf_origins(data: Mapping[str, Any], label: str, prefix: KeyPath = ()) -> Dict[KeyPath, str]:
    out: Dict[KeyPath, str] = {}
    for name, value in data.items():
        path = prefix + (str(name),)
        out[path] = label
        if isinstance(value, Mapping):
            out.update(_leaf_origins(value, label, path))
    return out


def config_files(directory: str) -> List[str]:
    """The *.yml / *.yaml files of a configuration directory, in merge order."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigError(f"{directory}: {(exc.strerror or str(exc)).lower()}") from None
    return [os.path.join(directory, n) for n in names
            if n.endswith((".yml", ".yaml")) and os.path.isfile(os.path.join(directory, n))]


def _load_path(path: str) -> Tuple[Dict[str, Any], Dict[KeyPath, str]]:
    if not os.path.isdir(path):
        config = _mapping(parse_yaml(_read_text(path), path), path)
        return config, _leaf_origins(config, path)
    config = {}
    origins: Dict[KeyPath, str] = {}
    for name in config_files(path):
        part = _mapping(parse_yaml(_read_text(name), name), name)
        config = deep_merge(config, part, drop_none=True)
        origins.update(_leaf_origins(part, name))
    return config, origins


def read_config(path: Optional[str], environ: Optional[Mapping[str, str]] = None) -> Loaded:
    """The local configuration, not validated. Raises ConfigError for a
    missing/unreadable file, a YAML syntax error or an empty configuration."""
    try:
        return _read_config(path, environ)
    except RecursionError:  # YAML aliases can make a mapping contain itself
        raise ConfigError(f"{path or CONFIGURATION_VARIABLE}: nested too deeply or contains itself") from None


def _read_config(path: Optional[str], environ: Optional[Mapping[str, str]]) -> Loaded:
    env: Mapping[str, str] = os.environ if environ is None else environ
    if path:
        config, origins = _load_path(path)
        env_config, env_origins = environment_config(env, config)
        loaded = Loaded(deep_merge(config, env_config), path, origins)
        loaded.origins.update(env_origins)
    elif env.get(CONFIGURATION_VARIABLE):
        # The whole configuration as YAML; no other variable is used then.
        text = env[CONFIGURATION_VARIABLE]
        loaded = Loaded(_mapping(parse_yaml(text, CONFIGURATION_VARIABLE), CONFIGURATION_VARIABLE),
                        CONFIGURATION_VARIABLE)
    else:
        config, origins = environment_config(env)
        loaded = Loaded(config, ENVIRONMENT_LABEL, origins)
    if not loaded.config:
        raise ConfigError(EMPTY_MESSAGE)
    return loaded


def load_config(path: Optional[str], environ: Optional[Mapping[str, str]] = None,
                validate: bool = True) -> Dict[str, Any]:
    """The local configuration (file or directory + PATRONI_* overrides, or the
    environment alone when `path` is empty). With `validate`, the first problem
    found raises ConfigError (all problems are in its `problems`); lenient ones
    (values Patroni 3.0.2 starts with) do not. Booleans spelled 'yes', 'off', 1...
    come back as real booleans."""
    loaded = read_config(path, environ)
    if validate:
        problems = [p for p in loaded.problems() if not p.lenient]
        if problems:
            raise ConfigError(problems)
    return normalized(loaded.config)
