"""Callbacks run `<cmd> <action> <role> <scope>`, one at a time per slot."""
from __future__ import annotations

from pathlib import Path

from qhb_patroni.manager.callbacks import Callbacks


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "cb.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_callback_arguments(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = _script(tmp_path, f'echo "$@" >> {out}\n')
    callbacks = Callbacks({"on_start": f"{cmd} extra", "on_stop": "", "bogus": cmd}, "batman")
    assert callbacks.fire("on_start", "master") is not None
    assert callbacks.fire("on_stop", "master") is None  # not configured
    assert callbacks.fire("bogus", "master") is None  # not a callback name
    callbacks.wait()
    assert out.read_text() == "extra on_start master batman\n"


def test_new_callback_kills_previous(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = _script(tmp_path, f'[ "$1" = on_start ] && sleep 30\necho "$1" >> {out}\n')
    callbacks = Callbacks({"on_start": cmd, "on_role_change": cmd}, "s")
    callbacks.fire("on_start", "replica")
    callbacks.fire("on_role_change", "master")  # kills the sleeping on_start
    callbacks.wait(timeout=20)
    assert out.read_text() == "on_role_change\n"


def test_missing_command_is_not_fatal(tmp_path: Path) -> None:
    callbacks = Callbacks({"on_reload": str(tmp_path / "nope")}, "s")
    assert callbacks.fire("on_reload", "master") is None
