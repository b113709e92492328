"""Shared pytest wiring: fixtures live in tests/fixtures/ and are registered here."""
pytest_plugins = [
    "tests.fixtures.ports",
    "tests.fixtures.etcd",
    "tests.fixtures.consul",
    "tests.fixtures.pgbin",
    "tests.fixtures.api",
]
