"""The one place that spells executable and file names (QHB and PostgreSQL).

QHB ships its tools under its own names (`qhb`, `qhb_ctl`, `qhb_basebackup`, ...)
while a PostgreSQL install uses the classic ones.  Every other manager module
asks this module for a path instead of spelling a name.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple

# role -> (QHB name, PostgreSQL name); QHB names are tried first.
BINARY_ROLES: Dict[str, Tuple[str, ...]] = {
    "server": ("qhb", "postgres"),
    "ctl": ("qhb_ctl", "pg_ctl"),
    "initdb": ("qhb_bootstrap", "initdb"),
    "basebackup": ("qhb_basebackup", "pg_basebackup"),
    "rewind": ("qhb_rewind", "pg_rewind"),
    "controldata": ("qhb_controldata", "pg_controldata"),
    "isready": ("qhb_isready", "pg_isready"),
    "waldump": ("qhb_waldump", "pg_waldump"),
}

# Patroni 3.0.3+ spells the `bin_name` keys after the PostgreSQL programs; both work.
BIN_NAME_ALIASES: Dict[str, str] = {
    "postgres": "server", "pg_ctl": "ctl", "pg_basebackup": "basebackup", "pg_rewind": "rewind",
    "pg_controldata": "controldata", "pg_isready": "isready", "pg_waldump": "waldump",
}

# Files inside the data directory (names kept from PostgreSQL by QHB).
STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"
AUTO_CONF = "postgresql.auto.conf"
PG_CONTROL = os.path.join("global", "pg_control")
PG_VERSION = "PG_VERSION"
POSTMASTER_PID = "postmaster.pid"
WAL_DIR = "pg_wal"
TABLESPACE_DIR = "pg_tblspc"  # one symlink per tablespace, named by its OID
# A file system's own directory at a mount point: not ours, and not a sign of anything.
LOST_FOUND = "lost+found"
# What a WAL directory holds (segments, .history/.partial/.backup files, the
# archiver's status and the WAL summaries of PG 17, temporary files); a pg_wal
# symlink target holding anything else is not a WAL directory.
WAL_ENTRY_PATTERN = (r"[0-9A-F]{8}(\.history|[0-9A-F]{16}(\.partial|\.[0-9A-F]{8}\.backup)?)(\.tmp)?"
                     r"|archive_status|summaries|xlogtemp\.\d+|.*\.tmp")
# The directory a server creates inside a tablespace location: PG_<major>_<catalog version>.
TABLESPACE_VERSION_DIR = r"PG_{major}_\d+"
# Entries that mark a directory as a data directory.
DATA_DIR_MARKERS = (PG_VERSION, "global", "base", WAL_DIR, "pg_xlog", "pg_xact", "pg_clog", TABLESPACE_DIR,
                    "backup_label", "postmaster.opts")
REPLSLOT_DIR = "pg_replslot"
# Cache of the dynamic configuration, same name as Patroni's.
DYNAMIC_CACHE = "patroni.dynamic.json"
DEFAULT_CONFIG_BASE_NAME = "postgresql"
DEFAULT_HBA_FILE = "pg_hba.conf"
DEFAULT_IDENT_FILE = "pg_ident.conf"
# What an initdb may have written, whatever the configured names are.
INITDB_MAIN_CONFS = ("qhb.conf", "postgresql.conf")
INITDB_HBA_FILES = ("qhb_hba.conf", "pg_hba.conf")
INITDB_IDENT_FILES = ("qhb_ident.conf", "pg_ident.conf")
RECOVERY_FILES = (STANDBY_SIGNAL, RECOVERY_SIGNAL, "recovery.conf")
# The hba file a custom bootstrap starts the restored cluster with (next to the real one).
BOOTSTRAP_HBA_SUFFIX = ".bootstrap"
# Where a failed bootstrap's data directory is moved (3.0.2: <data_dir>.failed).
FAILED_SUFFIX = ".failed"


def _candidates(bin_dir: str, names: Tuple[str, ...]) -> Optional[str]:
    for name in names:
        if bin_dir:
            path = os.path.join(bin_dir, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        else:
            found = shutil.which(name)
            if found:
                return found
    return None


def resolve_binaries(bin_dir: str, bin_name: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """Executable path per role.

    `bin_name.<role>` overrides (a bare name is looked up in bin_dir / PATH, a
    path is taken as is); otherwise the QHB name is tried before the PostgreSQL
    name.  A role that cannot be found maps to its PostgreSQL name joined to
    bin_dir, so the error names the file that is missing.
    """
    overrides: Dict[str, Any] = {}
    for key, value in (bin_name or {}).items():
        role = BIN_NAME_ALIASES.get(str(key), str(key))
        if value and (role not in overrides or str(key) == role):
            overrides[role] = value  # our role name wins over its Patroni alias
    result: Dict[str, str] = {}
    for role, names in BINARY_ROLES.items():
        override = overrides.get(role)
        if override:
            override = str(override)
            if os.sep in override:
                result[role] = override
                continue
            names = (override,)
        found = _candidates(bin_dir, names)
        result[role] = found or (os.path.join(bin_dir, names[-1]) if bin_dir else names[-1])
    return result


@dataclass(frozen=True)
class Layout:
    """Paths of the files the manager reads or writes."""

    data_dir: str
    config_dir: str
    config_base_name: str = DEFAULT_CONFIG_BASE_NAME
    hba_name: str = DEFAULT_HBA_FILE
    ident_name: str = DEFAULT_IDENT_FILE

    def _in_config_dir(self, name: str) -> str:
        return name if os.path.isabs(name) else os.path.join(self.config_dir, name)

    @property
    def main_conf(self) -> str:
        return os.path.join(self.config_dir, self.config_base_name + ".conf")

    @property
    def base_conf_name(self) -> str:
        return self.config_base_name + ".base.conf"

    @property
    def base_conf(self) -> str:
        return os.path.join(self.config_dir, self.base_conf_name)

    @property
    def hba_file(self) -> str:
        return self._in_config_dir(self.hba_name)

    @property
    def bootstrap_hba_file(self) -> str:
        return self.hba_file + BOOTSTRAP_HBA_SUFFIX

    @property
    def ident_file(self) -> str:
        return self._in_config_dir(self.ident_name)

    def data(self, name: str) -> str:
        return os.path.join(self.data_dir, name)

    @property
    def standby_signal(self) -> str:
        return self.data(STANDBY_SIGNAL)

    @property
    def recovery_signal(self) -> str:
        return self.data(RECOVERY_SIGNAL)

    @property
    def auto_conf(self) -> str:
        return self.data(AUTO_CONF)

    @property
    def pg_control(self) -> str:
        return self.data(PG_CONTROL)

    @property
    def pg_version(self) -> str:
        return self.data(PG_VERSION)

    @property
    def postmaster_pid(self) -> str:
        return self.data(POSTMASTER_PID)

    @property
    def wal_dir(self) -> str:
        return self.data(WAL_DIR)

    def initdb_file(self, candidates: Tuple[str, ...]) -> Optional[str]:
        """The first of `candidates` present in the data directory."""
        for name in candidates:
            path = self.data(name)
            if os.path.exists(path):
                return path
        return None
