"""Until tests/conftest.py lists tests.fixtures.api in pytest_plugins."""
from tests.fixtures.api import api_server  # noqa: F401
