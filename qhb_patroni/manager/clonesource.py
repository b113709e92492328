"""Is there something to clone from?  Asked before a reinitialize wipes the data
directory: a member without a connection URL, or a server that does not accept
connections, would leave this node with no data and no copy."""
from __future__ import annotations

from typing import Optional

from .connection import host_port_from_url
from .process import clean_env, run_watched
from .server import LocalServer
from .settings import ManagerError

ISREADY_TIMEOUT = 5  # seconds the source gets to answer


def check_clone_source(server: LocalServer, source_url: Optional[str]) -> None:
    """Raise ManagerError unless `source_url` names a server that accepts connections now."""
    if not source_url:
        raise ManagerError("no member to clone from (the leader publishes no connection URL)")
    host, port = host_port_from_url(source_url)
    s = server.settings
    cmd = [server.bin["isready"], "-h", host, "-p", str(port), "-d", s.database,
           "-U", s.replication.username, "-t", str(ISREADY_TIMEOUT)]
    rc, _out, _err = run_watched(cmd, ISREADY_TIMEOUT + 10, clean_env())
    if rc != 0:
        state = {1: "rejects connections", 2: "does not answer"}.get(rc, f"cannot be checked (exit code {rc})")
        raise ManagerError(f"the clone source {host}:{port} {state}")
