"""Starting the server (Postmaster.spawn, wait_ready).

A postmaster killed together with its daemon stays a zombie until init reaps it, and
its pid file still names it; the server would take that pid for a running postmaster and
refuse to start ("lock file postmaster.pid already exists").  Postmaster.spawn waits
until the zombie is gone (bounded like its wait for orphaned backends).

A real child process that has exited and is not reaped yet stands in for the zombie,
/bin/true for the server.

A starting standby that must stream to become consistent is sent SIGHUP every
WAKE_EVERY seconds while `wake_for` lasts (it ends the server's 5 s wait after a failed
attempt); a shell script that writes its pid file and counts SIGHUPs stands in for it.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

from qhb_patroni.manager.process import WAKE_EVERY, Postmaster, is_alive, is_zombie

FAKE_SERVER = """#!/bin/sh
# -D DATA --config-file=...: write the pid file, count SIGHUPs, never get ready
echo $$ > "$2/postmaster.pid"
n=0
trap 'n=$((n+1)); echo $n > "$2/hups"' HUP
while :; do sleep 0.02; done
"""


def zombie() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["true"])
    while not is_zombie(proc.pid):  # exited; not reaped because nobody waited for it
        time.sleep(0.01)
    return proc


def test_is_zombie_tells_an_exited_unreaped_process_from_a_live_or_gone_one() -> None:
    proc = zombie()
    assert is_zombie(proc.pid) and not is_alive(proc.pid)
    proc.wait()
    assert not is_zombie(proc.pid)
    live = subprocess.Popen(["sleep", "30"])
    try:
        assert not is_zombie(live.pid) and not is_zombie(None) and not is_zombie(0)
    finally:
        live.kill()
        live.wait()


def test_spawn_waits_until_the_pid_files_zombie_is_reaped(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    pidfile = data / "postmaster.pid"
    proc = zombie()
    pidfile.write_text(f"{proc.pid}\n{data}\n")
    reaped = threading.Event()

    def reap_later() -> None:
        time.sleep(0.3)
        proc.wait()
        reaped.set()

    reaper = threading.Thread(target=reap_later)
    reaper.start()
    pm = Postmaster("/bin/true", str(data), str(pidfile))
    pm.spawn(os.devnull, [], None)
    started_after_reap = reaped.is_set()
    reaper.join()
    assert started_after_reap


def hups_while_starting(tmp_path: Path, wake_for: float) -> int:
    data = tmp_path / "data"
    data.mkdir()
    server = tmp_path / "fake-server"
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    pm = Postmaster(str(server), str(data), str(data / "postmaster.pid"))
    pm.spawn(os.devnull, [], None)
    try:
        assert pm.wait_ready(["false"], timeout=3 * WAKE_EVERY + 0.2, wake_for=wake_for) is None
        time.sleep(0.1)  # the script handles a signal between its sleeps
    finally:
        assert pm._child is not None
        pm._child.kill()
        pm._child.wait()
    hups = data / "hups"
    return int(hups.read_text()) if hups.exists() else 0


def test_a_starting_standby_is_woken_while_wake_for_lasts(tmp_path: Path) -> None:
    assert hups_while_starting(tmp_path, wake_for=10.0) >= 1


def test_without_wake_for_the_starting_server_gets_no_signal(tmp_path: Path) -> None:
    assert hups_while_starting(tmp_path, wake_for=0.0) == 0
