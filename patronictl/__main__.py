"""`python -m patronictl`."""
from patronictl.cli import main

main()
