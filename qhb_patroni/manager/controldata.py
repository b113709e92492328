"""Run `<controldata> <data_dir>` (LANG=C) and read its labelled output; read the
cluster state straight from the control file while a server stops."""
from __future__ import annotations

import os
import struct
import subprocess
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from .conffiles import parse_lsn


def parse_controldata(text: str) -> Dict[str, str]:
    """'Label:   value' lines -> {label: value}; a leading 'Current ' is dropped."""
    result: Dict[str, str] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if not sep:
            continue
        label = label.strip()
        if label.startswith("Current "):
            label = label[len("Current ") :]
        result[label] = value.strip()
    return result


@dataclass(frozen=True)
class ControlData:
    values: Mapping[str, str]

    def get(self, label: str) -> Optional[str]:
        return self.values.get(label)

    @property
    def state(self) -> Optional[str]:
        return self.values.get("Database cluster state")

    @property
    def sysid(self) -> Optional[str]:
        return self.values.get("Database system identifier")

    def _lsn(self, label: str) -> Optional[int]:
        value = self.values.get(label)
        try:
            return parse_lsn(value) if value else None
        except ValueError:
            return None

    def _int(self, label: str) -> Optional[int]:
        value = self.values.get(label)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def checkpoint_lsn(self) -> Optional[int]:
        return self._lsn("Latest checkpoint location")

    @property
    def checkpoint_timeline(self) -> Optional[int]:
        return self._int("Latest checkpoint's TimeLineID")

    @property
    def min_recovery_lsn(self) -> Optional[int]:
        return self._lsn("Minimum recovery ending location")

    @property
    def min_recovery_timeline(self) -> Optional[int]:
        return self._int("Min recovery ending loc's timeline")

    @property
    def clean_shutdown(self) -> bool:
        return self.state in ("shut down", "shut down in recovery")

    @property
    def rewind_capable(self) -> bool:
        """wal_log_hints on or data checksums enabled."""
        checksums = self.values.get("Data page checksum version", "0")
        return self.values.get("wal_log_hints setting") == "on" or checksums not in ("0", "")

    def local_position(self) -> Optional[Tuple[int, int]]:
        """(timeline, lsn) of a stopped cluster: min recovery point for a stopped
        replica, the latest checkpoint otherwise."""
        if self.state == "shut down in recovery" or self.state == "in archive recovery":
            lsn, tli = self.min_recovery_lsn, self.min_recovery_timeline
            if lsn and tli:
                return tli, lsn
        if self.checkpoint_lsn is not None and self.checkpoint_timeline is not None:
            return self.checkpoint_timeline, self.checkpoint_lsn
        return None


def read_controldata(binary: str, data_dir: str, timeout: float = 10) -> Optional[ControlData]:
    """None when the tool fails (no pg_control, unreadable...)."""
    env = dict(os.environ, LANG="C", LC_ALL="C")
    try:
        proc = subprocess.run(
            [binary, data_dir], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return ControlData(parse_controldata(proc.stdout))


# pg_control starts with system_identifier (uint64), pg_control_version (uint32),
# catalog_version_no (uint32) and state (a C enum), in the machine's byte order; these
# have not moved since PostgreSQL 9.0 (control version 903; 1300 in 13 to 16).
_HEAD = struct.Struct("=QIIi")
_KNOWN_VERSIONS = range(900, 2000)
_SHUT_DOWN_STATES = (1, 2)  # DB_SHUTDOWNED, DB_SHUTDOWNED_IN_RECOVERY


def shut_down_on_disk(pg_control: str) -> Optional[bool]:
    """Whether the control file says the cluster is shut down, read directly (cheap enough
    to poll while a server stops): its shutdown checkpoint is written, so every backend
    has exited and no write can be acknowledged any more, even while the WAL senders
    still wait for their standbys.  None when the file cannot be read or does not look
    like a control file of a known version."""
    try:
        with open(pg_control, "rb") as f:
            head = f.read(_HEAD.size)
    except OSError:
        return None
    if len(head) < _HEAD.size:
        return None
    _, version, _, state = _HEAD.unpack(head)
    if version not in _KNOWN_VERSIONS:
        return None
    return state in _SHUT_DOWN_STATES


# After state: pg_time_t time (int64, aligned: 4 bytes of padding before it) and
# XLogRecPtr checkPoint (uint64), at offset 32 since PostgreSQL 9.0 as well.
_HEAD_CHECKPOINT = struct.Struct("=QIIi4xqQ")
_DB_SHUTDOWNED = 1


def shutdown_checkpoint_on_disk(pg_control: str) -> Optional[int]:
    """The latest checkpoint location of a cluster whose control file says "shut down"
    (not in recovery): a stopped primary's last position, its shutdown checkpoint, read
    directly (a process less than the controldata tool on a switchover's path).  None
    otherwise, or when the file cannot be read or is not of a known version (the caller
    asks the tool then)."""
    try:
        with open(pg_control, "rb") as f:
            head = f.read(_HEAD_CHECKPOINT.size)
    except OSError:
        return None
    if len(head) < _HEAD_CHECKPOINT.size:
        return None
    _, version, _, state, _, checkpoint = _HEAD_CHECKPOINT.unpack(head)
    if version not in _KNOWN_VERSIONS or state != _DB_SHUTDOWNED or checkpoint <= 0:
        return None
    return int(checkpoint)
