"""The log section: level, format, dateformat, dir, file_num, file_size, loggers,
traceback_level; no password or token ever reaches a log line."""
from __future__ import annotations

import io
import logging
import os
from typing import Any, Dict, Iterator

import pytest

from qhb_patroni.log import RedactingFormatter, level_number, redact, setup_logging


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    setup_logging({})  # undo logger levels set by the test
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def _stream_setup(section: Dict[str, Any]) -> io.StringIO:
    handler = setup_logging(section)
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    return stream


SECRETS = [
    ("connecting with password=s3cret host=db1", "connecting with password=****** host=db1"),
    ("config {'password': 'rep-pass', 'username': 'replicator'}",
     "config {'password': '******', 'username': 'replicator'}"),
    ('{"superuser": {"password": "qhb"}}', '{"superuser": {"password": "******"}}'),
    ("keyfile_password: hunter2", "keyfile_password: ******"),
    ("dsn postgres://replicator:rep-pass@10.0.0.1:5432/qhb", "dsn postgres://replicator:******@10.0.0.1:5432/qhb"),
    ("etcd http://root:toor@127.0.0.1:2379 unreachable", "etcd http://root:******@127.0.0.1:2379 unreachable"),
    ("Authorization: Basic cGF0cm9uaTpzZWNyZXQ=", "Authorization: Basic ******"),
    ("X-Consul-Token: 8f1e-aa", "X-Consul-Token: ******"),
    ("consul token=abc123&dc=dc1", "consul token=******&dc=dc1"),
    ("PGPASSWORD=pw psql", "PGPASSWORD=****** psql"),
    ("no secret here: user replicator on 127.0.0.1:5432", "no secret here: user replicator on 127.0.0.1:5432"),
]


@pytest.mark.parametrize("line,expected", SECRETS)
def test_redact(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_no_secret_in_log_lines_or_tracebacks() -> None:
    stream = _stream_setup({"format": "%(levelname)s %(message)s"})
    log = logging.getLogger("qhb_patroni.test")
    log.info("superuser %s", {"username": "qhb", "password": "topsecret"})
    try:
        raise RuntimeError("could not connect: host=db password=topsecret")
    except RuntimeError:
        log.exception("bootstrap failed for postgres://qhb:topsecret@db/qhb")
    text = stream.getvalue()
    assert "topsecret" not in text
    assert "Traceback" in text and "RuntimeError: could not connect: host=db password=******" in text
    assert text.splitlines()[0] == "INFO superuser {'username': 'qhb', 'password': '******'}"


def test_level_format_and_dateformat() -> None:
    stream = _stream_setup({"level": "warning", "format": "%(asctime)s|%(levelname)s|%(message)s",
                            "dateformat": "%Y"})
    log = logging.getLogger("qhb_patroni.test")
    log.info("hidden")
    log.warning("shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    year, level, message = lines[0].split("|")
    assert len(year) == 4 and year.isdigit() and (level, message) == ("WARNING", "shown")


def test_default_format_is_patronis() -> None:
    stream = _stream_setup({})
    logging.getLogger("qhb_patroni").info("no action. I am (qhb0), the leader with the lock")
    line = stream.getvalue().rstrip("\n")
    # 2023-03-24 10:00:00,123 INFO: no action. ...
    assert line[23:] == " INFO: no action. I am (qhb0), the leader with the lock"
    assert line[4] == "-" and line[19] == ","


def test_traceback_level() -> None:
    def emit(section: Dict[str, Any]) -> str:
        stream = _stream_setup(section)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("qhb_patroni.test").error("cycle failed", exc_info=True)
        return stream.getvalue()

    shown = emit({"level": "INFO"})  # traceback_level ERROR by default: INFO <= ERROR
    assert "Traceback (most recent call last)" in shown
    hidden = emit({"level": "INFO", "traceback_level": "DEBUG"})
    assert "Traceback" not in hidden
    assert hidden.strip().endswith("ERROR: cycle failed (ValueError: boom)")
    debug = emit({"level": "DEBUG", "traceback_level": "DEBUG"})
    assert "Traceback (most recent call last)" in debug


def test_loggers_section_and_reset_on_reload() -> None:
    stream = _stream_setup({"loggers": {"qhb_patroni.dcs": "ERROR", "urllib3": "DEBUG"}})
    logging.getLogger("qhb_patroni.dcs").warning("quiet")
    logging.getLogger("qhb_patroni.api").warning("loud")
    assert stream.getvalue().splitlines()[-1].endswith("WARNING: loud")
    assert "quiet" not in stream.getvalue()
    assert logging.getLogger("urllib3").level == logging.DEBUG
    setup_logging({})  # the next configuration forgets the old per-logger levels
    assert logging.getLogger("qhb_patroni.dcs").level == logging.NOTSET
    assert logging.getLogger("urllib3").level == logging.WARNING


def test_log_dir_rotates(tmp_path: Any) -> None:
    log_dir = os.path.join(str(tmp_path), "logs")
    setup_logging({"dir": log_dir, "file_size": 200, "file_num": 2, "format": "%(message)s"})
    log = logging.getLogger("qhb_patroni.test")
    for i in range(40):
        log.info("line %02d password=p%02d", i, i)
    names = sorted(os.listdir(log_dir))
    assert names == ["patroni.log", "patroni.log.1", "patroni.log.2"]
    text = "".join(open(os.path.join(log_dir, n), encoding="utf-8").read() for n in names)
    assert "line 39 password=******" in text and "=p39" not in text
    for n in names:
        assert os.path.getsize(os.path.join(log_dir, n)) <= 200


def test_level_number() -> None:
    assert level_number("info", 0) == logging.INFO
    assert level_number("WARN", 0) == logging.WARNING
    assert level_number(None, 7) == 7
    assert level_number("nonsense", 7) == 7
    assert level_number(15, 0) == 15


def test_formatter_leaves_the_record_intact() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "msg %s", ("a",), None)
    try:
        raise KeyError("k")
    except KeyError:
        import sys
        record.exc_info = sys.exc_info()
    text = RedactingFormatter("%(message)s", None, logging.INFO, logging.DEBUG).format(record)
    assert text == "msg a (KeyError: 'k')"
    assert (record.msg, record.args) == ("msg %s", ("a",)) and record.exc_info is not None
