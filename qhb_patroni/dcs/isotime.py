"""Timestamps as Patroni writes them into the DCS (PURE): parsing, and whether a
parsed one can be used at all."""
from __future__ import annotations

import datetime as _dt
import re
from typing import Optional

_FRACTION = re.compile(r"(\.\d+)")


def parse_iso(value: str) -> Optional[_dt.datetime]:
    """Parse an ISO-8601 timestamp as Patroni writes it (`datetime.isoformat()`),
    tolerating `Z`, a space separator and 1-9 fraction digits. None if unparsable."""
    text = value.strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    match = _FRACTION.search(text)
    if match:
        digits = match.group(1)[1:]
        text = text[: match.start()] + "." + (digits + "000000")[:6] + text[match.end():]
    # "+0100" -> "+01:00" (fromisoformat on 3.9 wants the colon)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def representable(when: _dt.datetime) -> bool:
    """An aware timestamp that converts to UTC and to epoch seconds (year 1 with a
    positive offset or year 9999 with a negative one does not)."""
    try:
        when.astimezone(_dt.timezone.utc)
        when.timestamp()
    except (OverflowError, ValueError, OSError):
        return False
    return when.tzinfo is not None
