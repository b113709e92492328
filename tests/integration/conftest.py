"""Until the lead adds tests.fixtures.pgbin to pytest_plugins, import its fixture here."""
from tests.fixtures.pgbin import qhb_bin_dir  # noqa: F401
