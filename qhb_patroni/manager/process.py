"""The postmaster as an OS process: start, wait for ready, stop, reload, promote."""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..core.local import CRASH_RECOVERY_RAN_ERROR
from ..runtime.tasks import cancel_event, cancel_requested
from .settings import ManagerError

STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
_POLL = 0.1
WAKE_EVERY = 0.5  # seconds between SIGHUPs to a starting standby (Postmaster.wait_ready)
_FIRST_POLL = 0.005  # state changes (stop, ready) are looked at soon, then less and less often
# The postmaster's status line in its pid file (line 8): "ready" (primary) or "standby"
# (read-only) once it accepts connections; "starting" / "stopping" before.
_PM_STATUS_LINE = 7
_PM_ACCEPTING = ("ready", "standby")


def poll_intervals(first: float = _FIRST_POLL, cap: float = _POLL, fast_for: float = 2.0) -> Iterator[float]:
    """Sleeps between polls of a cheap check: `first` for `fast_for` seconds (a stop or
    a start usually ends within them), `cap` after."""
    until = time.monotonic() + fast_for
    while True:
        yield first if time.monotonic() < until else cap


def pm_status(pidfile: str) -> str:
    """The status word of the postmaster's pid file ('' when absent or unknown)."""
    try:
        with open(pidfile) as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    return lines[_PM_STATUS_LINE].strip() if len(lines) > _PM_STATUS_LINE else ""
_CANCEL_POLL = 0.2  # how often a task's child process is checked for cancellation


class TaskCancelled(ManagerError):
    """The background task this code runs in was cancelled (its child process was killed)."""


def check_cancelled(what: str) -> None:
    """Raise TaskCancelled when the background task running this code was cancelled."""
    if cancel_requested():
        raise TaskCancelled(f"{what} cancelled")


def clean_env() -> Dict[str, str]:
    """Our environment without PATRONI_* / KUBERNETES_* variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "KUBERNETES_"))}


def read_pidfile(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            first = f.readline().strip()
    except OSError:
        return None
    try:
        pid = int(first)
    except ValueError:
        return None
    return pid if pid > 0 else None


def _proc_state(pid: int) -> Optional[str]:
    """The state letter of /proc/PID/stat (R, S, Z, ...); None when unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in ("Z", "X")


def is_zombie(pid: Optional[int]) -> bool:
    """The process has exited and waits to be reaped by its parent."""
    return pid is not None and pid > 0 and _proc_state(pid) == "Z"


def postmaster_pid(pidfile: str, data_dir: str) -> Optional[int]:
    """PID of the postmaster running on data_dir according to its pid file, if alive.

    The postmaster's working directory is its data directory, which protects
    against a stale pid file whose pid was reused by another process.
    """
    pid = read_pidfile(pidfile)
    if pid is None or not is_alive(pid):
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return pid
    return pid if os.path.realpath(cwd) == os.path.realpath(data_dir) else None


class Postmaster:
    """Spawns and signals one postmaster; the handle is kept only to reap it."""

    def __init__(self, server: str, data_dir: str, pidfile: str) -> None:
        self.server = server
        self.data_dir = data_dir
        self.pidfile = pidfile
        self._child: Optional[subprocess.Popen[bytes]] = None

    def pid(self) -> Optional[int]:
        self._reap()
        return postmaster_pid(self.pidfile, self.data_dir)

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None

    def spawn(self, config_file: str, options: Sequence[str], log_file: Optional[str]) -> int:
        """Start the server in its own session, so it outlives a killed daemon."""
        # Backends of a postmaster killed with SIGKILL exit on their own shortly;
        # starting while they hold shared memory would fail.
        check_cancelled(f"start of {os.path.basename(self.server)}")
        # So would a pid file naming an exited postmaster init has not reaped yet (a zombie
        # whose parent, the daemon, was killed too): the server takes it for a live one.
        deadline = time.monotonic() + 10
        while (processes_in(self.data_dir) or is_zombie(read_pidfile(self.pidfile))) \
                and time.monotonic() < deadline:
            time.sleep(_POLL)
        cmd = [self.server, "-D", self.data_dir, f"--config-file={config_file}", *options]
        out: Any = subprocess.DEVNULL
        handle: Optional[IO[bytes]] = None
        if log_file:
            handle = open(log_file, "ab")
            out = handle
        try:
            self._child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=clean_env(),
                cwd=self.data_dir,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ManagerError(f"cannot start {self.server}: {exc}") from exc
        finally:
            if handle is not None:
                handle.close()
        return self._child.pid

    def child_exited(self) -> bool:
        """The process we spawned has exited (False when we did not spawn one)."""
        return self._child is not None and self._child.poll() is not None

    def wait_ready(self, isready: List[str], timeout: float, wake_for: float = 0.0) -> Optional[bool]:
        """True ready, False died, None still starting after `timeout` seconds.
        The pid file's status line is watched often (a file read); the isready tool
        confirms once it says the server accepts connections, and every 0.2 s anyway.
        `wake_for`: seconds during which a starting standby gets SIGHUP every WAKE_EVERY s:
        one that must stream to become consistent (after a rewind) waits 5 s
        (wal_retrieve_retry_interval) after a failed attempt (the new primary had no slot
        for it yet); SIGHUP ends that wait.  Sent once the pid file names it (handlers set)."""
        started = time.monotonic()
        deadline = started + timeout
        sleeps = poll_intervals(first=0.01, cap=0.05)
        asked_at = 0.0
        woke_at = started
        while True:
            if self._child is not None and self._child.poll() is not None:
                self._child = None
                return False
            now = time.monotonic()
            if now - started < wake_for and now - woke_at >= WAKE_EVERY:
                woke_at = now
                self._wake_child()
            if pm_status(self.pidfile) not in _PM_ACCEPTING and time.monotonic() - asked_at < 0.2:
                if time.monotonic() >= deadline:
                    return None
                check_cancelled("waiting for the server to start")
                time.sleep(next(sleeps))
                continue
            asked_at = time.monotonic()
            try:
                rc = subprocess.run(
                    isready, capture_output=True, timeout=5, env=clean_env(), check=False
                ).returncode
            except (OSError, subprocess.TimeoutExpired):
                rc = 2
            if rc == 0:
                return True
            if self._child is None and self.pid() is None and rc == 2:
                return False
            if time.monotonic() >= deadline:
                return None
            check_cancelled("waiting for the server to start")  # it keeps starting; the caller decides
            time.sleep(next(sleeps))

    def _wake_child(self) -> None:
        child = self._child
        if child is None or read_pidfile(self.pidfile) != child.pid:
            return
        try:
            os.kill(child.pid, signal.SIGHUP)
        except ProcessLookupError:
            pass

    def signal(self, sig: int) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        return True

    def fence(self) -> bool:
        """Stop acknowledging writes now, without waiting (the lease guard): a fast
        shutdown request, on which the backends abort their transactions and exit
        while the WAL senders still deliver every record already written.  A postmaster
        that is itself stopped (SIGSTOP, a debugger) cannot pass that on, so it is
        killed with all its children.  True when there was a server to fence."""
        pid = self.pid()
        if pid is None:
            return False
        if _is_stopped(pid):
            victims, sig = [pid, *child_pids(pid)], signal.SIGKILL
        else:
            victims, sig = [pid], STOP_SIGNALS["fast"]
        for victim in victims:
            try:
                os.kill(victim, sig)
            except ProcessLookupError:
                pass
        return True

    def _wait_gone(self, pid: int, timeout: float, watch: Optional[Callable[[bool], None]] = None) -> bool:
        deadline = time.monotonic() + timeout
        sleeps = poll_intervals()
        while True:
            self._reap()
            if not is_alive(pid):
                if watch is not None:
                    watch(True)
                return True
            if watch is not None:
                watch(False)
            if time.monotonic() >= deadline:
                return False
            time.sleep(next(sleeps))

    def stop(self, mode: str, timeout: float, watch: Optional[Callable[[bool], None]] = None) -> bool:
        """Signal per mode, wait; escalate to immediate and then SIGKILL of the
        postmaster and its children. True when it was running and is now gone
        (also when it exited by itself between being found and being signalled:
        a postmaster finishing a shutdown somebody else asked for).
        `watch(gone)` is called at every look while it waits (see LocalServer.stop)."""
        if mode not in STOP_SIGNALS:
            raise ManagerError(f"unknown stop mode {mode!r}")
        pid = self.pid()
        if pid is None:
            return False
        children = child_pids(pid)
        try:
            os.kill(pid, STOP_SIGNALS[mode])
        except ProcessLookupError:
            self._reap()
            if watch is not None:
                watch(True)
            return True
        if self._wait_gone(pid, timeout, watch):
            return True
        if mode != "immediate":
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                if watch is not None:
                    watch(True)
                return True
            if self._wait_gone(pid, 5, watch):
                return True
        children = sorted(set(children) | set(child_pids(pid)))
        for victim in [pid, *children]:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_gone(pid, 5, watch)
        return True

    def run_single_user(self, config_file: str, timeout: float) -> None:
        """Single-user crash recovery (cluster not shut down cleanly)."""
        cmd = [self.server, "--single", "-D", self.data_dir, f"--config-file={config_file}",
               "-c", "archive_mode=off", "template1"]
        try:
            rc, _, err = run_watched(cmd, timeout, clean_env())
        except TaskCancelled:
            raise
        except ManagerError as exc:
            raise ManagerError(f"{CRASH_RECOVERY_RAN_ERROR}: {exc}") from exc
        if rc != 0:
            tail = err.decode(errors="replace").strip().splitlines()[-1:]
            raise ManagerError(f"{CRASH_RECOVERY_RAN_ERROR}: {' '.join(tail)}")


def processes_in(directory: str) -> List[int]:
    """PIDs whose working directory is `directory` (server processes left over
    after the postmaster was killed keep the data directory as cwd)."""
    target = os.path.realpath(directory)
    result: List[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return result
    for entry in entries:
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                if os.path.realpath(os.readlink(f"/proc/{entry}/cwd")) == target and is_alive(int(entry)):
                    result.append(int(entry))
            except OSError:
                continue
    return result


def _is_stopped(pid: int) -> bool:
    """The process is stopped or traced (state T / t in /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


# Titles of the server's own processes that may outlive the client backends during a
# shutdown (the part after "<program>: " and an optional "<cluster_name>: ").  Anything
# else - client backends, background workers, autovacuum - counts as a possible writer.
_STAYING = ("checkpointer", "background writer", "walwriter", "archiver", "logger", "stats collector",
            "io worker", "startup", "walreceiver")


def _title(pid: int) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def writers_left(pid: int) -> Optional[bool]:
    """Whether the postmaster `pid` still has a child that could acknowledge a write: any
    child but WAL senders and the processes named in _STAYING (from their process titles).
    None when a child's title is unreadable or not in the server's "<program>: ..." form."""
    for child in child_pids(pid):
        title = _title(child)
        if title is None:
            if is_alive(child):
                return None
            continue
        parts = title.split(": ")
        if len(parts) < 2:
            return None
        words = parts[-1].strip()
        if any(words == name or words.startswith(name + " ") for name in ("walsender", *_STAYING)):
            continue
        return True
    return False


def child_pids(pid: int) -> List[int]:
    """Direct children of `pid` (from /proc)."""
    result: List[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return result
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                result.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return result


def run_watched(cmd: Sequence[str], timeout: float, env: Optional[Dict[str, str]] = None) -> Tuple[int, bytes, bytes]:
    """Run a child to its end: (exit code, stdout, stderr).

    The child runs in its own process group.  Inside a background task it is watched:
    when the task is cancelled, or on timeout, the whole group (a wrapper script and
    what it started, pg_basebackup's WAL streamer...) is terminated, then killed, and
    TaskCancelled / ManagerError is raised."""
    name = os.path.basename(cmd[0])
    check_cancelled(name)
    cancel = cancel_event()
    try:
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env or clean_env(), start_new_session=True, close_fds=True,
        )
    except OSError as exc:
        raise ManagerError(f"cannot run {cmd[0]}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            out, err = proc.communicate(timeout=max(0.0, min(remaining, _CANCEL_POLL)) if cancel else remaining)
            return proc.returncode, out, err
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                stop_process_group(proc)
                raise TaskCancelled(f"{name} cancelled") from None
            if time.monotonic() >= deadline:
                stop_process_group(proc)
                raise ManagerError(f"{name} timed out after {timeout:.0f}s") from None


def run_tool(cmd: Sequence[str], timeout: float, env: Optional[Dict[str, str]] = None) -> str:
    """Run a helper binary (see run_watched); raise ManagerError with its last stderr line on failure."""
    rc, out, err = run_watched(cmd, timeout, env)
    if rc != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        reason = lines[-1] if lines else f"exit code {rc}"
        raise ManagerError(f"{os.path.basename(cmd[0])} failed: {reason}")
    return out.decode(errors="replace")


def stop_process_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the child's process group, SIGKILL to what is left after `grace`
    seconds (stragglers too: the group outlives its leader while members remain).
    Returns once no member of the group is alive any more (at most ~10 s more): the
    pipes reach EOF while a killed member is still exiting, so EOF alone proves nothing."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            try:  # the leader is gone; its children may not be
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        break
    deadline = time.monotonic() + 10.0
    while group_members_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def group_members_alive(pgid: int) -> bool:
    """Some process of group `pgid` exists and is not a zombie (Linux /proc)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return False
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def command_words(key: str, command: str) -> List[str]:
    """A configured command split as the shell would (no shell runs it); a ManagerError
    naming the configuration key when it cannot be parsed or is empty."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ManagerError(f"{key}: cannot parse {command!r}: {exc}") from exc
    if not words:
        raise ManagerError(f"{key} is empty")
    return words
