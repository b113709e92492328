"""`store_factory`: one contract suite, parametrised over every DCS backend."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, List

import pytest

from tests.contract.backends import Backend, EtcdBackend, MemoryBackend

BackendFactory = Callable[..., Backend]


def _memory(request: pytest.FixtureRequest) -> BackendFactory:
    return lambda realtime=False: MemoryBackend(realtime=realtime)


def _etcd(request: pytest.FixtureRequest) -> BackendFactory:
    server = request.getfixturevalue("etcd_server")
    return lambda realtime=False: EtcdBackend(server)


# backend name -> maker; add "etcd3" / "consul" here when they exist.
BACKEND_FACTORIES: Dict[str, Callable[[pytest.FixtureRequest], BackendFactory]] = {
    "memory": _memory,
    "etcd": _etcd,
}


# marks per backend, so `-m "not etcd"` deselects the real-server runs
BACKEND_MARKS = {"etcd": [pytest.mark.etcd]}


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
