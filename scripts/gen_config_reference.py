#!/usr/bin/env python3
"""Render the configuration schema (qhb_patroni/config/schema.py) into
docs/configuration-reference.md.

    python scripts/gen_config_reference.py          # rewrite the file
    python scripts/gen_config_reference.py --check  # exit 1 if the file is stale
"""
from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qhb_patroni.config.reference import full_reference  # noqa: E402

DOC = ROOT / "docs" / "configuration-reference.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is not up to date")
    args = parser.parse_args()
    text = full_reference()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is stale: run python scripts/gen_config_reference.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
