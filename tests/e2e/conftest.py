"""End-to-end fixtures: one real etcd (v2 API enabled) per test module."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.fixtures.etcd import EtcdProcess
from tests.fixtures.ports import free_port


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdProcess]:
    proc = EtcdProcess(str(tmp_path_factory.mktemp("etcd")), free_port(), free_port())
    proc.start()
    yield proc
    proc.stop()
