"""A client that holds many idle keep-alive connections to one REST API (issue 12 item 9):
the e2e test and bench/rest_flood.py use it. Connections come from several loopback
source addresses (127.0.0.0/8 is local on Linux), so both the per-address and the
total caps of the server are exercised. `refresh()` behaves like the hostile client of
the issue: a GET on every connection before the server's idle timeout, and a new
connection for each one the server closed.
"""
from __future__ import annotations

import resource
import socket
from typing import Dict, List, Optional, Sequence, Tuple

REQUEST = b"GET /patroni HTTP/1.1\r\nHost: flood\r\nConnection: keep-alive\r\n\r\n"


def raise_own_nofile(wanted: int) -> None:
    """This process needs a descriptor per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class IdleFlood:
    def __init__(self, address: Tuple[str, int], sources: Sequence[str]) -> None:
        self.address = address
        self.sources = list(sources)
        self.socks: Dict[socket.socket, str] = {}  # connection -> its source address
        self.opened = 0
        self.failed = 0  # connects refused or reset at once
        self.closed_by_server = 0
        self._cursor = 0  # where the next partial refresh starts

    def _open(self, source: str) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5, source_address=(source, 0))
            sock.sendall(REQUEST)
            sock.setblocking(False)
        except OSError:
            self.failed += 1
            return
        self.socks[sock] = source
        self.opened += 1

    def open(self, count: int) -> None:
        raise_own_nofile(count + len(self.socks) + 512)
        for i in range(count):
            self._open(self.sources[i % len(self.sources)])

    def _drop_closed(self) -> List[str]:
        """Read what the server sent; forget the connections it closed (their sources)."""
        gone: List[str] = []
        for sock in list(self.socks):  # non-blocking: nothing to read raises BlockingIOError
            try:
                while sock.recv(65536):
                    pass
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                pass
            gone.append(self.socks.pop(sock))  # end of stream or reset: the server closed it
            sock.close()
            self.closed_by_server += 1
        return gone

    def held(self) -> int:
        """Connections still open after reading everything the server sent."""
        self._drop_closed()
        return len(self.socks)

    def refresh(self, limit: Optional[int] = None, reconnect: bool = True) -> None:
        """A new connection for each one the server closed (unless not `reconnect`), then
        a GET on the held connections: all of them, or the next `limit` in turn."""
        for source in self._drop_closed():
            if reconnect:
                self._open(source)
        socks = list(self.socks)
        if limit is not None and socks:
            start = self._cursor % len(socks)
            socks = (socks[start:] + socks[:start])[:limit]
            self._cursor = start + len(socks)
        for sock in socks:
            try:
                sock.sendall(REQUEST)
            except BlockingIOError:  # its last answer is still unread: it stays as it is
                continue
            except OSError:
                source = self.socks.pop(sock)
                sock.close()
                self.closed_by_server += 1
                if reconnect:
                    self._open(source)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()


def fresh_get(address: Tuple[str, int], path: str, source: str = "127.0.0.1", timeout: float = 10.0) -> int:
    """Status code of one request on a new connection (Connection: close)."""
    with socket.create_connection(address, timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: check\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    if not head.startswith(b"HTTP/"):
        raise ConnectionError(f"no answer to GET {path}: {head!r}")
    return int(head.split(b" ", 2)[1])
