"""Logging set-up from the `log` section (spec 3.5).

Keys: level, traceback_level, format, dateformat, dir, file_num, file_size,
loggers (max_queue_size is accepted: our records are written synchronously).
setup_logging() may be called again (SIGHUP): it replaces the handler.

No secret reaches a log line: every formatted line, tracebacks included, goes
through redact()."""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, Mapping, Optional

DEFAULT_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
LOG_FILE = "patroni.log"  # same name as Patroni, in log.dir
MASK = "******"

# key=value, key: value, 'key': 'value', "key": "value" for secret-looking keys.
_SECRET_PAIR = re.compile(
    r"""(?ix)
    ( (?:password|passwd|pwd|token|secret|keyfile_password|sslpassword)['"]?\s*[:=]\s* )
    ( '[^']*' | "[^"]*" | [^\s'",;}&)]+ )"""
)
# scheme://user:password@host
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@\s/]+)@")
# Authorization: Basic xxx / Bearer xxx ; X-Consul-Token: xxx
_AUTH_HEADER = re.compile(r"(?i)\b(authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+)([A-Za-z0-9+/=._~-]+)")
_TOKEN_HEADER = re.compile(r"(?i)\b(x-consul-token['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)")


def _mask_pair(m: re.Match[str]) -> str:
    value = m.group(2)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return m.group(1) + quote + MASK + quote


def redact(text: str) -> str:
    """`text` with passwords and tokens replaced by ******."""
    text = _SECRET_PAIR.sub(_mask_pair, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}:{MASK}@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    return _TOKEN_HEADER.sub(lambda m: m.group(1) + MASK, text)


class RedactingFormatter(logging.Formatter):
    """Redacts secrets; shows tracebacks only when the configured level is at or
    below `traceback_level` (so `traceback_level: DEBUG` hides them unless
    `level: DEBUG`)."""

    def __init__(self, fmt: str, datefmt: Optional[str], level: int = logging.INFO,
                 traceback_level: int = logging.ERROR) -> None:
        super().__init__(fmt, datefmt=datefmt)
        self.show_tracebacks = level <= traceback_level
        self.logger_levels: Dict[str, int] = {}  # set by setup_logging, undone by the next one

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and not self.show_tracebacks:
            # Keep the exception's one-line summary, drop the stack.
            exc = record.exc_info[1]
            summary = f"{type(exc).__name__}: {exc}" if exc is not None else ""
            saved = (record.exc_info, record.exc_text, record.msg, record.args)
            record.exc_info, record.exc_text = None, None
            record.msg, record.args = f"{record.getMessage()} ({summary})" if summary else record.getMessage(), None
            try:
                return redact(super().format(record))
            finally:
                record.exc_info, record.exc_text, record.msg, record.args = saved
        return redact(super().format(record))


def level_number(value: Any, default: int) -> int:
    """'info' / 'WARN' / 'FATAL' / 20 -> logging level number."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = logging.getLevelName(str(value).strip().upper())
    return number if isinstance(number, int) else default


def setup_logging(section: Optional[Mapping[str, Any]]) -> logging.Handler:
    """Install the handler described by `section` on the root logger,
    replacing the previous one. Returns the new handler."""
    section = section or {}
    level = level_number(section.get("level"), logging.INFO)
    traceback_level = level_number(section.get("traceback_level"), logging.ERROR)
    fmt = str(section.get("format") or DEFAULT_FORMAT)
    datefmt = section.get("dateformat")
    handler: logging.Handler
    log_dir = section.get("dir")
    if log_dir:
        # imported only for a log file (it brings pickle and the socket handlers: ~0.35 MB)
        from logging.handlers import RotatingFileHandler

        os.makedirs(str(log_dir), exist_ok=True)
        handler = RotatingFileHandler(
            os.path.join(str(log_dir), LOG_FILE),
            maxBytes=int(section.get("file_size") or 25000000),
            backupCount=int(4 if section.get("file_num") is None else section["file_num"]),
        )
    else:
        handler = logging.StreamHandler()
    formatter = RedactingFormatter(fmt, str(datefmt) if datefmt else None, level, traceback_level)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old.formatter, RedactingFormatter):
            for name in old.formatter.logger_levels:
                logging.getLogger(name).setLevel(logging.NOTSET)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter below WARNING is noise for a DBA; log.loggers can lower it.
    loggers: Dict[str, Any] = {"urllib3": "WARNING", "etcd.client": "WARNING"}
    configured = section.get("loggers")
    if isinstance(configured, Mapping):
        loggers.update({str(k): v for k, v in configured.items()})
    for name, lvl in loggers.items():
        number = level_number(lvl, logging.WARNING)
        logging.getLogger(name).setLevel(number)
        formatter.logger_levels[name] = number
    return handler
