"""Strict JSON for values read from the DCS (PURE: no I/O).

Anyone who can write to the DCS can put anything in a key.  Python's json
module reads `NaN`, `Infinity` and `1e400` (as float infinity), recurses once
per nesting level (RecursionError on deep input), refuses integers longer than
4300 digits and decodes "\\udcff" into a str no UTF-8 encoder takes - each of
which, left to travel, raises somewhere far from the decoder (int(inf) is an
OverflowError).  `loads` turns all of them into one `InvalidValue` with a short
reason, so a decoder can read the value as absent.
"""
from __future__ import annotations

import json
import math
import re
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str) -> Optional[str]:
    # JSON may spell a lone UTF-16 surrogate ("\udcff"): a str that no UTF-8 encoder
    # (the REST API, patronictl, the config writer) can encode.
    return "a lone surrogate in a string" if _SURROGATE.search(text) else None


def depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (a scalar is 0), without recursion."""
    return _inspect(value)[0]


def _inspect(value: Any) -> Tuple[int, Optional[str]]:
    """(nesting depth, a reason the value cannot be used or None), without recursion;
    the walk stops once deeper than MAX_DEPTH."""
    deepest = 0
    stack: List[Tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            for key in node:
                problem = text_problem(key)
                if problem:
                    return deepest, problem
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            if isinstance(node, str):
                problem = text_problem(node)
                if problem:
                    return deepest, problem
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        if level + 1 > MAX_DEPTH:
            return level + 1, None
        stack.extend((child, level + 1) for child in children)
    return deepest, None


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
    deepest, problem = _inspect(value)
    if deepest > MAX_DEPTH:
        raise InvalidValue(f"JSON nested deeper than {MAX_DEPTH} levels")
    if problem:
        raise InvalidValue(problem)
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
