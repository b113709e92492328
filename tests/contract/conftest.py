"""`store_factory`: one contract suite, parametrised over every DCS backend."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List

import pytest

from tests.contract.backends import Backend, ConsulBackend, Etcd3Backend, EtcdBackend, MemoryBackend

BackendFactory = Callable[..., Backend]


def _memory(request: pytest.FixtureRequest) -> BackendFactory:
    return lambda realtime=False: MemoryBackend(realtime=realtime)


def _etcd(request: pytest.FixtureRequest) -> BackendFactory:
    server = request.getfixturevalue("etcd_server")
    return lambda realtime=False: EtcdBackend(server)


def _etcd3(request: pytest.FixtureRequest) -> BackendFactory:
    server = request.getfixturevalue("etcd_server")
    return lambda realtime=False: Etcd3Backend(server)


def _consul(request: pytest.FixtureRequest) -> BackendFactory:
    server = request.getfixturevalue("consul_server")
    return lambda realtime=False: ConsulBackend(server)


# backend name -> maker
BACKEND_FACTORIES: Dict[str, Callable[[pytest.FixtureRequest], BackendFactory]] = {
    "memory": _memory,
    "etcd": _etcd,
    "etcd3": _etcd3,
    "consul": _consul,
}


# marks per backend, so `-m "not etcd"` deselects the real-server runs
BACKEND_MARKS = {"etcd": [pytest.mark.etcd], "etcd3": [pytest.mark.etcd], "consul": [pytest.mark.consul]}


@pytest.fixture(params=[pytest.param(name, marks=BACKEND_MARKS.get(name, []), id=name) for name in BACKEND_FACTORIES])
def store_factory(request: pytest.FixtureRequest) -> Iterator[BackendFactory]:
    """Call it to get a Backend on a fresh cluster scope: `backend = store_factory()`;
    `store_factory(realtime=True)` when the test needs blocking watches with real time."""
    make = BACKEND_FACTORIES[request.param](request)
    made: List[Backend] = []

    def factory(realtime: bool = False) -> Backend:
        backend = make(realtime=realtime)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()
