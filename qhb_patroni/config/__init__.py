"""Configuration: schema, loading (YAML + PATRONI_* environment), validation,
dynamic configuration merge."""
from __future__ import annotations

from .errors import ConfigError, Problem
from .loader import Loaded, load_config, read_config
from .validator import validate_dynamic, validate_local

__all__ = ["ConfigError", "Loaded", "Problem", "load_config", "read_config", "validate_dynamic", "validate_local"]
