"""What may be written into the server's configuration files (PURE).

The main config, the hba and the ident file are line-oriented: a parameter
name holding a newline or an `=` writes lines of its own (an `include` of any
file), and a value holding a newline ends the quoted string early so the server
refuses to start.  The config validators, the REST API and the file writer all
ask these two functions, so what is accepted is exactly what can be written."""
from __future__ import annotations

import re
from typing import Any

# The server's config-file lexer: ID = [A-Za-z_][A-Za-z0-9_]*, QUALIFIED_ID = ID.ID
# (custom options of extensions); names are case-insensitive.  ASCII only here.
_GUC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
# C0 controls except TAB (a tab inside a quoted value is harmless), and DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # what JSON's "\\udcff" decodes to: no UTF-8 for it
MAX_NAME_LENGTH = 127


def name_problem(name: Any) -> str:
    """'' when `name` can be written as a parameter name, else why not."""
    if not isinstance(name, str):
        return f"parameter name must be a string, got {type(name).__name__}"
    if len(name) > MAX_NAME_LENGTH or not _GUC_NAME.fullmatch(name):
        shown = name if len(name) <= 40 else name[:37] + "..."
        return (f"invalid parameter name {shown!r}: expected letters, digits and underscores "
                "(one dot for an extension's option), starting with a letter or underscore")
    return ""


def value_problem(value: Any) -> str:
    """'' when `value` (a scalar) can be written into a config file line, else why not."""
    text = value if isinstance(value, str) else str(value)
    match = _CONTROL.search(text)
    if match is not None:
        return f"control character {match.group(0)!r} not allowed in a value written to a config file"
    if _SURROGATE.search(text):
        return "a lone surrogate cannot be written to a config file (not valid Unicode)"
    return ""
