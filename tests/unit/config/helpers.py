"""A small valid configuration to break in tests."""
from __future__ import annotations

import copy
from typing import Any, Dict

BASE: Dict[str, Any] = {
    "scope": "cluster",
    "name": "qhb0",
    "restapi": {"listen": "127.0.0.1:8008", "connect_address": "127.0.0.1:8008"},
    "etcd": {"hosts": ["127.0.0.1:2379"]},
    "bootstrap": {
        "dcs": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "postgresql": {"use_pg_rewind": True}},
        "initdb": [{"encoding": "UTF8"}, "data-checksums"],
        "qhb_hba": ["host replication replicator 127.0.0.1/32 md5"],
    },
    "postgresql": {
        "listen": "127.0.0.1:5432",
        "connect_address": "127.0.0.1:5432",
        "data_dir": "/tmp/qhb0",
        "authentication": {
            "superuser": {"username": "qhb", "password": "qhb"},
            "replication": {"username": "replicator", "password": "rep-pass"},
        },
        "hba_file": "qhb_hba.conf",
        "ident_file": "qhb_ident.conf",
        "database": "qhb",
        "config_base_name": "qhb",
    },
    "tags": {"nofailover": False},
}


def base() -> Dict[str, Any]:
    return copy.deepcopy(BASE)
