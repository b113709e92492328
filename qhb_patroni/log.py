"""Logging set-up from the `log` section (level, format, dateformat, dir, file_num, file_size, loggers)."""
from __future__ import annotations

import logging
import logging.handlers
import os
import re
from typing import Any, Mapping, Optional

DEFAULT_FORMAT = "%(asctime)s %(levelname)s: %(message)s"

# Never let a secret reach a log line: key=value / "password": "..." shapes.
_SECRET = re.compile(r"""(?i)(password|passwd|token|secret)(['"]?\s*[:=]\s*['"]?)([^\s'",}]+)""")


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _SECRET.sub(lambda m: m.group(1) + m.group(2) + "******", super().format(record))


def setup_logging(section: Optional[Mapping[str, Any]]) -> None:
    section = section or {}
    level = str(section.get("level", "INFO")).upper()
    fmt = str(section.get("format", DEFAULT_FORMAT))
    datefmt = section.get("dateformat")
    handler: logging.Handler
    log_dir = section.get("dir")
    if log_dir:
        os.makedirs(str(log_dir), exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            os.path.join(str(log_dir), "patroni.log"),
            maxBytes=int(section.get("file_size", 25000000)),
            backupCount=int(section.get("file_num", 4)),
        )
    else:
        handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(fmt, datefmt=str(datefmt) if datefmt else None))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
    for name, lvl in (section.get("loggers") or {}).items():
        logging.getLogger(str(name)).setLevel(str(lvl).upper())
    # Library chatter below WARNING is noise for a DBA.
    for noisy in ("urllib3", "etcd.client"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
