"""Validation of a whole dynamic configuration (/config, bootstrap.dcs) before it
is written or used.

`dynamic_problems` = the schema checks of `validator.validate_dynamic` (types,
ranges, the timing rule - not repeated here) plus what the schema cannot say:
every number finite, nesting within what the DCS key codec reads back, and
parameter names / values that can be written into the config files
(`filevalues`), and what the merge itself refuses.  Used by PATCH and PUT
/config, `patronictl edit-config` and the daemon when it reads /config
(`DynamicTracker`: the last valid one stays in use)."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .dynamic import effective_config
from .errors import ConfigError, Problem
from .filevalues import file_value_problems, shape_problems
from .validator import validate_dynamic

log = logging.getLogger(__name__)

DYNAMIC_SOURCE = "dynamic configuration"


def dynamic_problems(data: Any, source: str = DYNAMIC_SOURCE) -> List[Problem]:
    """Everything wrong with a dynamic configuration, [] when it can be used."""
    if not isinstance(data, Mapping):
        return [Problem(source, (), f"expected a mapping, got {type(data).__name__}")]
    problems = shape_problems(data, source)
    if problems:  # the schema checks assume finite, reasonably shaped values
        return problems
    # lenient problems (what 3.0.2 accepts, such as the timing rule) do not make it unusable
    problems = [p for p in validate_dynamic(dict(data), source) if not p.lenient]
    problems += file_value_problems(data, source)
    if not problems:
        try:  # what the schema lets through (null for an integer key) the merge may still refuse
            effective_config({}, data)
        except ConfigError as exc:
            problems = [Problem(source, p.path, p.message) for p in exc.problems]
    return problems


def require_valid_dynamic(data: Any, source: str = DYNAMIC_SOURCE) -> None:
    """Raise ConfigError (first problem in str(), all in .problems) unless usable."""
    problems = dynamic_problems(data, source)
    if problems:
        raise ConfigError(problems)


def summary(error: ConfigError, limit: int = 5) -> str:
    """All problems on one line (at most `limit`), for an HTTP answer or a log line."""
    lines = list(error.lines)
    text = "; ".join(lines[:limit])
    return text + (f" (and {len(lines) - limit} more)" if len(lines) > limit else "")


class DynamicTracker:
    """The dynamic layer as /config changes: each new version is validated once;
    an invalid one leaves the last valid configuration in place."""

    def __init__(self) -> None:
        self.valid: Optional[Dict[str, Any]] = None  # the last valid /config
        self._seen = False
        self._version: Optional[int] = None

    def offer(self, local: Mapping[str, Any], data: Mapping[str, Any],
              version: Optional[int]) -> Tuple[Optional[Dict[str, Any]], Optional[ConfigError]]:
        """(new effective configuration or None, error or None).  Both None when this
        version was seen before: the caller logs an error once per version."""
        if self._seen and version == self._version:
            return None, None
        self._seen, self._version = True, version
        candidate = dict(data)
        try:
            require_valid_dynamic(candidate)
            effective = effective_config(local, candidate)
        except ConfigError as exc:
            return None, exc
        for problem in validate_dynamic(candidate):
            if problem.lenient:  # used as 3.0.2 uses it, but said once per version
                log.warning("dynamic configuration: %s", problem.message)
        self.valid = candidate
        return effective, None
