"""Configuration problems and the one-line error the daemon prints."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple, Union

PathPart = Union[str, int]
KeyPath = Tuple[PathPart, ...]


def render_path(path: KeyPath) -> str:
    """('bootstrap', 'initdb', 0) -> 'bootstrap.initdb[0]'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a configuration.

    `source` names where the offending value came from (a file, a directory,
    an environment variable, `PATRONI_CONFIGURATION`, `dynamic configuration`).
    `path` is empty when the problem is about the configuration as a whole.
    `lenient`: Patroni 3.0.2 starts with this value, so the daemon starts too
    (with a warning); only --validate-config counts it as an error."""

    source: str
    path: KeyPath
    message: str
    lenient: bool = False

    def line(self) -> str:
        parts = [self.source] if self.source else []
        if self.path:
            parts.append(render_path(self.path))
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(ValueError):
    """A configuration that cannot be used (a ValueError). str() is ONE line (the first
    problem); `problems` holds all of them (for --validate-config)."""

    def __init__(self, problems: Union[str, Sequence[Problem]]) -> None:
        if isinstance(problems, str):
            self.problems: Tuple[Problem, ...] = (Problem("", (), problems),)
        else:
            self.problems = tuple(problems)
        first = self.problems[0].line() if self.problems else "invalid configuration"
        super().__init__(first)

    @property
    def lines(self) -> Tuple[str, ...]:
        return tuple(p.line() for p in self.problems)
