"""Backends under contract: each knows how to make clients on one fresh cluster,
let time pass (fake clock or real), and break/restore connectivity.

To add a backend: write a `Backend` subclass and register a
factory in `conftest.py`'s BACKEND_FACTORIES.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from typing import Callable, List, Optional

from qhb_patroni.dcs import consul as consul_backend
from qhb_patroni.dcs import keys
from qhb_patroni.dcs.base import Store
from qhb_patroni.dcs.etcd import EtcdStore
from qhb_patroni.dcs.etcd3 import Etcd3Store
from qhb_patroni.dcs.memory import ManualClock, MemoryServer
from qhb_patroni.dcs.writer import ClusterDCS
from tests.fixtures.consul import ConsulProcess
from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.ports import free_port


class Backend:
    name = "?"
    realtime = True  # False: time only moves through let_time_pass (fake clock)

    def __init__(self) -> None:
        self.scope = "c-" + uuid.uuid4().hex[:10]
        self.base = keys.base_path("/service/", self.scope)
        self._clients: List[ClusterDCS] = []

    def client(self, member: str, ttl: float = 30.0, retry_timeout: float = 5.0) -> ClusterDCS:
        dcs = self._make(member, ttl, retry_timeout)
        self._clients.append(dcs)
        return dcs

    def _make(self, member: str, ttl: float, retry_timeout: float) -> ClusterDCS:
        raise NotImplementedError

    def unreachable_client(self, member: str, retry_timeout: float) -> ClusterDCS:
        """A client whose server cannot be reached at all."""
        raise NotImplementedError

    def endpoint_text(self) -> str:
        """What a DCSError about this backend's server names."""
        raise NotImplementedError

    def lease_seconds(self, ttl: float) -> float:
        """How long an ephemeral key outlives its last renewal with this `ttl`
        (Consul: the session TTL is ttl/2 but at least 10 s, kept up to twice)."""
        return ttl

    def let_time_pass(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait_until(self, predicate: Callable[[], bool], within: float, step: float = 0.2) -> bool:
        """Real time: poll `predicate` for up to `within` s.  Fake clock: advance in steps."""
        deadline = time.monotonic() + within
        waited = 0.0
        while True:
            if predicate():
                return True
            if (time.monotonic() if self.realtime else waited) >= (deadline if self.realtime else within):
                return False
            self.let_time_pass(step)
            waited += step

    def prepare_restart(self) -> None:
        """Called before stop_server/start_server (etcd: switch to a private server)."""

    def stop_server(self) -> None:
        raise NotImplementedError

    def start_server(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for dcs in self._clients:
            dcs.close()


class MemoryBackend(Backend):
    name = "memory"

    def __init__(self, realtime: bool = False) -> None:
        super().__init__()
        self.realtime = realtime
        self.clock = None if realtime else ManualClock()
        self.server = MemoryServer(clock=self.clock, name="mem-" + self.scope)

    def _make(self, member: str, ttl: float, retry_timeout: float) -> ClusterDCS:
        store = self.server.client(f"{member}-{uuid.uuid4().hex[:6]}", base=self.base)
        return ClusterDCS(store, member, ttl=ttl, retry_timeout=retry_timeout, base=self.base)

    def unreachable_client(self, member: str, retry_timeout: float) -> ClusterDCS:
        client_id = "cut-" + member
        self.server.partition(client_id)
        store = self.server.client(client_id, base=self.base)
        return ClusterDCS(store, member, retry_timeout=retry_timeout, base=self.base)

    def endpoint_text(self) -> str:
        return self.server.name

    def let_time_pass(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            time.sleep(seconds)

    def stop_server(self) -> None:
        self.server.set_down(True)

    def start_server(self) -> None:
        self.server.set_down(False)


class EtcdBackend(Backend):
    name = "etcd"

    def __init__(self, server: EtcdProcess) -> None:
        super().__init__()
        self.server = server
        self._private: Optional[EtcdProcess] = None
        self._private_dir: Optional[str] = None

    def _store(self, urls: List[str], ttl: float, retry_timeout: float) -> Store:
        return EtcdStore(urls, self.base, ttl=ttl, retry_timeout=retry_timeout)

    def _make(self, member: str, ttl: float, retry_timeout: float) -> ClusterDCS:
        store = self._store([self.server.url], ttl, retry_timeout)
        return ClusterDCS(store, member, ttl=ttl, retry_timeout=retry_timeout, base=self.base)

    def unreachable_client(self, member: str, retry_timeout: float) -> ClusterDCS:
        self._dead_url = f"http://127.0.0.1:{free_port()}"
        store = self._store([self._dead_url], 30.0, retry_timeout)
        return ClusterDCS(store, member, retry_timeout=retry_timeout, base=self.base)

    def endpoint_text(self) -> str:
        return getattr(self, "_dead_url", self.server.url)

    def prepare_restart(self) -> None:
        """Restart tests get their own etcd so a failure cannot break other tests."""
        self._private_dir = tempfile.mkdtemp(prefix="qhb-etcd-restart-")
        self._private = EtcdProcess(self._private_dir, free_port(), free_port())
        self._private.start()
        self.server = self._private

    def stop_server(self) -> None:
        assert self._private is not None, "call prepare_restart() first"
        self._private.stop()

    def start_server(self) -> None:
        assert self._private is not None, "call prepare_restart() first"
        self._private.start()

    def close(self) -> None:
        super().close()
        if self._private is not None:
            self._private.stop()
        if self._private_dir and os.path.isdir(self._private_dir):
            shutil.rmtree(self._private_dir, ignore_errors=True)


class Etcd3Backend(EtcdBackend):
    """The same etcd server, spoken to through the v3 JSON gateway."""

    name = "etcd3"

    def _store(self, urls: List[str], ttl: float, retry_timeout: float) -> Store:
        return Etcd3Store(urls, self.base, ttl=ttl, retry_timeout=retry_timeout)


class ConsulBackend(Backend):
    name = "consul"

    def __init__(self, server: ConsulProcess) -> None:
        super().__init__()
        self.server = server
        self._private: Optional[ConsulProcess] = None
        self._private_dir: Optional[str] = None

    def _store(self, url: str, member: str, ttl: float, retry_timeout: float) -> Store:
        settings = consul_backend.ConsulSettings({"url": url})
        return consul_backend.ConsulStore(settings, self.base, session_name=f"{self.scope}-{member}",
                                          ttl=ttl, retry_timeout=retry_timeout)

    def _make(self, member: str, ttl: float, retry_timeout: float) -> ClusterDCS:
        store = self._store(self.server.url, member, ttl, retry_timeout)
        return ClusterDCS(store, member, ttl=ttl, retry_timeout=retry_timeout, base=self.base)

    def unreachable_client(self, member: str, retry_timeout: float) -> ClusterDCS:
        self._dead_url = f"http://127.0.0.1:{free_port()}"
        store = self._store(self._dead_url, member, 30.0, retry_timeout)
        return ClusterDCS(store, member, retry_timeout=retry_timeout, base=self.base)

    def endpoint_text(self) -> str:
        return getattr(self, "_dead_url", self.server.url)

    def lease_seconds(self, ttl: float) -> float:
        return consul_backend.leader_expiry(ttl)

    def prepare_restart(self) -> None:
        """A private persistent agent (-dev keeps nothing across a restart)."""
        self._private_dir = tempfile.mkdtemp(prefix="qhb-consul-restart-")
        self._private = ConsulProcess(self._private_dir, persistent=True)
        self._private.start()
        self.server = self._private

    def stop_server(self) -> None:
        assert self._private is not None, "call prepare_restart() first"
        self._private.stop()

    def start_server(self) -> None:
        assert self._private is not None, "call prepare_restart() first"
        self._private.start()

    def close(self) -> None:
        super().close()
        if self._private is not None:
            self._private.stop()
        if self._private_dir and os.path.isdir(self._private_dir):
            shutil.rmtree(self._private_dir, ignore_errors=True)
