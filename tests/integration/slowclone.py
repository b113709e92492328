"""A base backup tool that is slow once, on demand: for tests that cancel a clone.

`install_slow_basebackup(bin_dir)` replaces `qhb_basebackup` in a QHB-named bin
directory by a script.  While the returned marker file exists, the next call
removes it, writes its pid (the script execs the real tool, so that is the tool's
pid) and copies at the lowest rate pg_basebackup allows (32 kB/s: minutes for a
fresh cluster); every other call runs at full speed.  A `--help` or `--version` call
(the manager asks whether the tool lists --no-sync) neither uses nor consumes it.  `restore_basebackup` puts the
plain link back."""
from __future__ import annotations

import os
from dataclasses import dataclass

from tests.fixtures.pgbin import PG_BIN_DIR

SCRIPT = """#!/bin/sh
case "$1" in --help|--version|-V) exec '{tool}' "$@";; esac
if [ -e '{marker}' ]; then
    rm -f '{marker}'
    echo $$ > '{pidfile}.tmp' && mv '{pidfile}.tmp' '{pidfile}'
    exec '{tool}' --max-rate=32k "$@"
fi
exec '{tool}' "$@"
"""


@dataclass(frozen=True)
class SlowClone:
    marker: str  # create it to make the next clone slow
    pidfile: str  # the slow tool's pid, once it started

    def arm(self) -> None:
        for path in (self.pidfile,):
            if os.path.exists(path):
                os.unlink(path)
        with open(self.marker, "w", encoding="utf-8"):
            pass

    def pid(self) -> int:
        """The slow tool's pid (0 while it has not started)."""
        try:
            with open(self.pidfile, encoding="utf-8") as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0


def install_slow_basebackup(bin_dir: str, work_dir: str) -> SlowClone:
    slow = SlowClone(os.path.join(work_dir, "slow-clone.marker"), os.path.join(work_dir, "slow-clone.pid"))
    path = os.path.join(bin_dir, "qhb_basebackup")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(SCRIPT.format(marker=slow.marker, pidfile=slow.pidfile,
                              tool=os.path.join(PG_BIN_DIR, "pg_basebackup")))
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return slow


def restore_basebackup(bin_dir: str) -> None:
    path = os.path.join(bin_dir, "qhb_basebackup")
    tmp = path + ".tmp"
    os.symlink(os.path.join(PG_BIN_DIR, "pg_basebackup"), tmp)
    os.replace(tmp, path)
