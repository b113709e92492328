"""The REST API's connections: an asyncio event loop in one background thread, one
`asyncio.Protocol` per connection, deadlines checked by one periodic sweep.

Safe requests are answered inline on the loop (their handlers only read the published
StatusView). Unsafe ones (registered with `unsafe=True`: they call the DCS and may wait
for seconds) run on a few worker threads while their connection stops reading, so they
never delay a health check. Connections may be persistent (keep-alive, pipelining), and
each state of a connection has a deadline: the first request or an idle kept-alive
connection (closed silently), an unfinished request (408), a client that does not read
its answers (cut off). The connection caps and which connection gives way at a cap
are limits.py's (`Admission`): an idle connection is closed to make room for a new one.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import logging
import socket
import ssl
import threading
from typing import Any, Callable, List, Mapping, Optional, Protocol, Set, Tuple

from ..runtime.status import WAIT_FOR_SAMPLE
from .limits import Admission, ConnectionLimits, Slot
from .wire import Renderer, Request, RequestError, RequestParser, Response, error_response, keeps_connection
from .workers import WorkerPool


class ListenerSettings(Protocol):
    """What the listener reads from its server (api.server.RestApiServer), each time it
    needs it: a reload changes them while the listener runs."""

    @property
    def request_timeout(self) -> float: ...

    @property
    def idle_timeout(self) -> float: ...

    @property
    def connection_limits(self) -> ConnectionLimits: ...

    @property
    def unsafe_workers(self) -> int: ...

    @property
    def ssl_context(self) -> Optional[ssl.SSLContext]: ...

    @property
    def response_headers(self) -> Mapping[str, str]: ...

    @property
    def unsafe(self) -> Set[Tuple[str, str]]:
        """(method, first path segment) of the endpoints that run on a worker thread."""

logger = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0  # seconds a kept-alive connection may wait for its next request
MAX_CONNECTIONS = 1024
UNSAFE_WORKERS = 4
_FLUSH_EVERY = 32  # pipelined responses written together
_INF = float("inf")
# What happens to a connection at its deadline.
_SILENT, _TIMEOUT_PAGE, _ABORT = 0, 1, 2
LIMIT_LOG_INTERVAL = 60.0  # seconds between two summaries of connections closed at a cap


class _Connection(asyncio.Protocol):
    """One client connection: requests in order, one at a time, each answered before
    the next is read (pipelined bytes wait in the parser)."""

    def __init__(self, listener: Listener, slot: Slot) -> None:
        self.listener = listener
        self.slot = slot  # its place in the connection caps
        self.transport: Optional[asyncio.Transport] = None
        self.parser = RequestParser()
        self.busy = False  # an unsafe request is on a worker thread
        self.write_paused = False  # the client does not read its responses fast enough
        self.closing = False
        self.eof = False
        self.tls = False
        self.served = 0
        self.in_request = False  # bytes of an unfinished request are buffered
        self.request_deadline = _INF
        self.deadline = _INF
        self.expiry = _SILENT
        self.held: Optional[Tuple[Request, bool]] = None  # waiting for a fresh server sample
        self.held_timer: Optional[asyncio.TimerHandle] = None
        self.holds = 0  # which hold a sample's call back is for

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.listener.connections.add(self)
        self.listener.sweep_soon()
        self.slot.evict = transport.abort  # idle and in the way of a new connection
        if self.slot.released:  # given way during the TLS handshake
            transport.abort()
        peer = transport.get_extra_info("peername")
        client = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
        tls = transport.get_extra_info("ssl_object")
        self.tls = tls is not None
        self.parser = RequestParser(client, bool(tls is not None and tls.getpeercert()))
        # Nothing within request_timeout on a new connection: closed without an answer.
        self._set_deadline(self.listener.api.request_timeout, _SILENT)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.closing = True
        self.deadline = _INF
        self.listener.connections.discard(self)
        self.listener.admission.release(self.slot)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.listener.admission.busy(self.slot)
        self.parser.feed(data)
        if not self.busy and not self.write_paused:
            self._process()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.busy and not self.write_paused and not self.closing:
            self._process()
        return not self.tls  # keep our side open until the answer is written (TLS cannot)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self.busy and not self.closing and self.transport is not None:
            self.transport.resume_reading()
            self._process()

    # request handling
    def _set_deadline(self, seconds: float, expiry: int) -> None:
        self.deadline = self.listener.loop.time() + seconds
        self.expiry = expiry

    def _process(self) -> None:
        """Answer every complete buffered request that can be answered inline."""
        transport, listener = self.transport, self.listener
        assert transport is not None
        out: List[bytes] = []
        while True:
            try:
                item = self.parser.next()
            except RequestError as e:
                transport.write(b"".join(out))
                self._fail(e)
                return
            if item is None:
                break
            req, keep = item
            self.in_request = False
            self.served += 1
            if listener.wait_for_sample(functools.partial(self._sample_published, self.holds + 1)):
                transport.write(b"".join(out))
                self._hold(req, keep)
                return
            if listener.is_unsafe(req):
                transport.write(b"".join(out))
                self.busy = True
                self.deadline = _INF
                transport.pause_reading()
                listener.pool_submit(functools.partial(self._unsafe, req, keep))
                return
            resp = listener.answer(req)
            keep = keep and keeps_connection(resp)
            out.append(listener.render(resp, keep))
            if not keep:
                transport.write(b"".join(out))
                self._close()
                return
            if len(out) >= _FLUSH_EVERY:
                transport.write(b"".join(out))
                out = []
                if self.write_paused:
                    break
        if out:
            transport.write(b"".join(out))
        if self.write_paused:  # a client that does not read gets request_timeout to start again
            self._set_deadline(listener.api.request_timeout, _ABORT)
        elif self.eof:
            if self.parser.pending:
                self._fail(self.parser.incomplete())
            else:
                self._close()
        elif self.parser.pending:
            if not self.in_request:  # the deadline of a request runs from its first byte
                self.in_request = True
                self.request_deadline = listener.loop.time() + listener.api.request_timeout
            self.deadline, self.expiry = self.request_deadline, _TIMEOUT_PAGE
        else:
            if self.served:
                self._set_deadline(listener.idle_timeout, _SILENT)
            listener.admission.idle(self.slot)  # waiting for a request: may give way

    def _hold(self, req: Request, keep: bool) -> None:
        """The server sample is older than a second and a new one is on its way: answer
        once it is published, or after WAIT_FOR_SAMPLE with what there is."""
        assert self.transport is not None
        self.busy = True
        self.deadline = _INF
        self.transport.pause_reading()
        self.holds += 1
        self.held = (req, keep)
        self.held_timer = self.listener.loop.call_later(WAIT_FOR_SAMPLE, self._release, self.holds)

    def _sample_published(self, hold: int) -> None:
        """From the sampling thread."""
        try:
            self.listener.loop.call_soon_threadsafe(self._release, hold)
        except RuntimeError:  # the listener stopped meanwhile
            pass

    def _release(self, hold: int) -> None:
        if hold != self.holds or self.held is None:
            return  # answered already (the sample came, or the time was up)
        (req, keep), self.held = self.held, None
        if self.held_timer is not None:
            self.held_timer.cancel()
            self.held_timer = None
        if self.closing or self.transport is None:
            self.busy = False
            return
        if self.listener.is_unsafe(req):
            self.listener.pool_submit(functools.partial(self._unsafe, req, keep))
        else:
            self._unsafe_done(self.listener.answer(req), keep)

    def _unsafe(self, req: Request, keep: bool) -> None:
        """On a worker thread: answer, then hand the response back to the loop."""
        resp = self.listener.answer(req)
        try:
            self.listener.loop.call_soon_threadsafe(self._unsafe_done, resp, keep)
        except RuntimeError:  # the listener stopped meanwhile
            pass

    def _unsafe_done(self, resp: Response, keep: bool) -> None:
        self.busy = False
        if self.closing or self.transport is None:
            return
        keep = keep and keeps_connection(resp)
        self.transport.write(self.listener.render(resp, keep))
        if not keep:
            self._close()
            return
        if not self.write_paused:
            self.transport.resume_reading()
            self._process()
        else:
            self._set_deadline(self.listener.api.request_timeout, _ABORT)

    def _fail(self, error: RequestError) -> None:
        if error.code is not None and self.transport is not None:
            self.transport.write(self.listener.render(error_response(error.code, error.message or None), False))
        self._close()

    def _close(self) -> None:
        """Close after the buffered response is sent; a client that does not read it is cut off."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self.listener.admission.busy(self.slot)
            self.transport.close()
            self._set_deadline(self.listener.api.request_timeout, _ABORT)

    def expire(self) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.expiry == _ABORT or transport.is_closing():
            self.deadline = _INF
            transport.abort()
        elif self.expiry == _TIMEOUT_PAGE:
            self._fail(RequestError(408))
        else:
            self._close()


class Listener:
    """The event loop thread of one started server: listening socket, connections, sweep."""

    def __init__(self, api: ListenerSettings, sock: socket.socket, respond: Callable[[Request], Response],
                 wait_for_sample: Callable[[Callable[[], None]], bool] = lambda notify: False) -> None:
        """`wait_for_sample(notify)`: True when a request should wait for the next server
        sample, `notify()` being called (from any thread) once it is published."""
        self.api = api
        self.respond = respond
        self.wait_for_sample = wait_for_sample
        self.sock = sock
        self.idle_timeout = api.idle_timeout
        self.admission = Admission(api.connection_limits)
        self._limit_log = (0.0, 0, 0)  # (when, evicted, refused) last logged
        self.loop = asyncio.new_event_loop()
        self.connections: Set[_Connection] = set()
        self.pending: Set[asyncio.Task[Any]] = set()  # accepted, TLS handshake not finished
        self.renderer = Renderer(api.response_headers)
        self.pool = WorkerPool(api.unsafe_workers)
        self.tick = min(1.0, max(0.05, min(api.request_timeout, api.idle_timeout) / 4))
        self._sweep_at: Optional[asyncio.TimerHandle] = None
        self.thread = threading.Thread(target=self._run, name="restapi", daemon=True)

    def _run(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.add_reader(self.sock.fileno(), self._accept)
            loop.run_forever()
        finally:
            self._close_everything()

    # accepting
    def _accept(self) -> None:
        self.sweep_soon()
        self.admission.limits = self.api.connection_limits  # follows reloads
        for _ in range(128):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a moment; the listener lives on.
                    logger.warning("API: cannot accept connections: %s", e)
                    self.loop.remove_reader(self.sock.fileno())
                    self.loop.call_later(0.5, self._resume_accepting)
                    return
                continue  # e.g. ECONNABORTED: that client is gone
            slot = self.admission.admit(str(addr[0]) if isinstance(addr, tuple) else "", conn.close)
            if slot is None:  # at a cap with nothing idle to close
                conn.close()
                continue
            conn.setblocking(False)
            _set_keepalive(conn)
            task = self.loop.create_task(self._connect(conn, self.api.ssl_context, slot))
            slot.evict = functools.partial(_evict_pending, task, conn)  # until the connection is made
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    def _resume_accepting(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    async def _connect(self, conn: socket.socket, tls: Optional[ssl.SSLContext], slot: Slot) -> None:
        try:
            await self.loop.connect_accepted_socket(
                lambda: _Connection(self, slot), conn, ssl=tls,
                ssl_handshake_timeout=self.api.request_timeout if tls is not None else None,
            )  # fmt: skip
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ValueError) as e:
            logger.debug("API: connection dropped before its first request: %r", e)
            conn.close()
            self.admission.release(slot)
        except asyncio.CancelledError:
            conn.close()
            self.admission.release(slot)
            raise

    def open_count(self) -> int:
        """Read from any thread: a momentary figure (sets are only changed on the loop)."""
        return len(self.connections) + len(self.pending)

    # per request, on the loop
    def is_unsafe(self, req: Request) -> bool:
        return (req.method, req.path.lstrip("/").split("/", 1)[0]) in self.api.unsafe

    def pool_submit(self, job: Callable[[], None]) -> None:
        self.pool.submit(job)

    def answer(self, req: Request) -> Response:
        try:
            resp = self.respond(req)
        except Exception:  # a handler bug must still answer, and never kill the listener
            logger.exception("API: error while handling %s %s", req.method, req.path)
            resp = error_response(500)
        logger.debug("API: %s %s %d", req.method, req.path, resp.code)
        return resp

    def render(self, resp: Response, keep_alive: bool) -> bytes:
        self.renderer.set_extra_headers(self.api.response_headers)
        return self.renderer.render(resp, keep_alive)

    # deadlines
    def sweep_soon(self) -> None:
        """The sweep runs while there is something to sweep: an idle API does not wake."""
        if self._sweep_at is None:
            self._sweep_at = self.loop.call_later(self.tick, self._sweep)

    def _sweep(self) -> None:
        self._sweep_at = None
        now = self.loop.time()
        for conn in [c for c in self.connections if c.deadline <= now]:
            try:
                conn.expire()
            except Exception:
                logger.exception("API: error while closing a connection")
        self._log_limits(now)
        adm = self.admission
        if self.connections or self.pending or (adm.evicted, adm.refused) != self._limit_log[1:]:
            self.sweep_soon()

    def _log_limits(self, now: float) -> None:
        """At most one WARNING a minute about connections closed at the caps."""
        when, evicted, refused = self._limit_log
        adm = self.admission
        if now - when < LIMIT_LOG_INTERVAL or (adm.evicted, adm.refused) == (evicted, refused):
            return
        self._limit_log = (now, adm.evicted, adm.refused)
        logger.warning(
            "API: connection limits reached (max_connections %d, max_connections_per_address %d): "
            "%d idle connections closed to make room, %d new connections refused since the last report",
            adm.limits.max_connections, adm.limits.per_address, adm.evicted - evicted, adm.refused - refused)

    # stopping
    def stop(self) -> None:
        """From any thread other than the loop's: close everything, join the thread."""
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # loop already closed
            pass
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        self.pool.stop(timeout=2)

    def _close_everything(self) -> None:
        loop = self.loop
        try:
            loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError):
            pass
        self.sock.close()
        for task in list(self.pending):
            task.cancel()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        # Let the cancellations and the connection_lost callbacks (which close the sockets) run.
        for _ in range(20):
            if not self.pending and not self.connections:
                break
            loop.run_until_complete(asyncio.sleep(0))
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _evict_pending(task: asyncio.Task[Any], conn: socket.socket) -> None:
    """Close a connection still in its TLS handshake (a task cancelled before its first
    step never runs its own cleanup, so the socket is closed here)."""
    task.cancel()
    conn.close()


def _set_keepalive(conn: socket.socket) -> None:
    """TCP keepalive as 3.0.2 sets it on accepted sockets (idle 3 s, 2 s apart, 3 probes)."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if hasattr(socket, "TCP_KEEPIDLE"):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 3)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    except OSError:
        pass


def listening_socket(host: str, port: int, family: int, backlog: Optional[int] = None) -> socket.socket:
    """Bound and listening (errors raise here), non-blocking; the backlog is
    restapi.request_queue_size when given, else the system's maximum."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN if backlog is None else backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
