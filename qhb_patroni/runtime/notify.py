"""systemd readiness notification (Type=notify) without a libsystemd dependency."""
from __future__ import annotations

import os
import socket
from typing import Mapping, Optional


def sd_notify(message: str, environ: Optional[Mapping[str, str]] = None) -> bool:
    """Send `message` (e.g. "READY=1") to $NOTIFY_SOCKET; False when not under systemd."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
        return True
    except OSError:
        return False
