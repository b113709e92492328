"""Render the schema table as a Markdown reference (for docs/)."""
from __future__ import annotations

from typing import Iterable, List

from .schema import LOCAL_KEYS, Key


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_reference(keys: Iterable[Key] = LOCAL_KEYS) -> str:
    """One Markdown table row per key: path, type, required, default, scope, env, notes."""
    lines: List[str] = [
        "| Key | Type | Required | Default | Scope | Environment | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        kind = key.kind.expected if not key.choices else "one of " + ", ".join(key.choices)
        default = "" if key.default is None else f"`{key.default!r}`"
        lines.append("| " + " | ".join([
            f"`{key.path}`", _cell(kind), "yes" if key.required else "", _cell(default), key.scope.value,
            f"`{key.env}`" if key.env else "", _cell(key.doc),
        ]) + " |")
    return "\n".join(lines) + "\n"
