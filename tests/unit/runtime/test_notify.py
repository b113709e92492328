from __future__ import annotations

import os
import socket
import tempfile

from qhb_patroni.runtime.notify import sd_notify


def test_sd_notify_sends_to_the_socket() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(path)
            assert sd_notify("READY=1", {"NOTIFY_SOCKET": path})
            assert server.recv(100) == b"READY=1"


def test_sd_notify_without_systemd_is_a_no_op() -> None:
    assert not sd_notify("READY=1", {})
    assert not sd_notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/socket"})
