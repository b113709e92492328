"""Until tests/conftest.py lists tests.fixtures.api and tests.fixtures.etcd in pytest_plugins."""
from tests.fixtures.etcd import etcd_scope, etcd_server  # noqa: F401
