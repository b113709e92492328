"""Strict JSON for values read from the DCS (PURE: no I/O).

Anyone who can write to the DCS can put anything in a key.  Python's json
module reads `NaN`, `Infinity` and `1e400` (as float infinity), recurses once
per nesting level (RecursionError on deep input) and refuses integers longer
than 4300 digits - each of which, left to travel, raises somewhere far from the
decoder (int(inf) is an OverflowError).  `loads` turns all of them into one
`InvalidValue` with a short reason, so a decoder can read the value as absent.
"""
from __future__ import annotations

import json
import math
from typing import Any, List, Optional, Tuple

# Patroni's values are at most four levels deep (/config: postgresql.parameters.x,
# slots.name.type); 32 leaves room for anything legitimate.
MAX_DEPTH = 32
MAX_LSN = 2**64 - 1  # an XLogRecPtr
MAX_TIMELINE = 2**32 - 1  # a TimeLineID


class InvalidValue(ValueError):
    """A DCS value that cannot be used; str() is the reason."""


class NotJSON(InvalidValue):
    """Not JSON at all (some keys have a legacy plain-text form)."""


def _constant(name: str) -> Any:
    raise InvalidValue(f"non-finite number {name}")


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidValue(f"number {text[:40]} out of range")
    return number


def depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: List[Tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        if level + 1 > MAX_DEPTH:
            return level + 1
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(text: str) -> Any:
    """json.loads with finite numbers only and at most MAX_DEPTH levels."""
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except InvalidValue:
        raise
    except RecursionError:
        raise InvalidValue(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, an over-long integer
        raise NotJSON(f"not valid JSON ({str(exc)[:80]})") from None
    if depth(value) > MAX_DEPTH:
        raise InvalidValue(f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def bounded_int(value: Any, low: int, high: int) -> Optional[int]:
    """An int (or an integral finite float, or a decimal string) within [low, high]; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            return None
        try:
            number = int(text)
        except ValueError:
            return None
    else:
        return None
    return number if low <= number <= high else None
