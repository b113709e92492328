#!/usr/bin/env python3
"""Render the core's role transition table (qhb_patroni/core/roles.py) into
docs/failover-decisions.md: a mermaid state diagram, Graphviz source and the
table itself, with the Patroni log sentence of every transition.

    python scripts/gen_state_diagram.py          # rewrite the generated section
    python scripts/gen_state_diagram.py --check  # exit 1 if the doc is stale
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from typing import List

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qhb_patroni.core import roles  # noqa: E402
from qhb_patroni.messages import MESSAGES  # noqa: E402

DOC = ROOT / "docs" / "failover-decisions.md"
BEGIN = "<!-- BEGIN GENERATED: scripts/gen_state_diagram.py -->"
END = "<!-- END GENERATED -->"


def _node(role: str) -> str:
    return "any" if role == roles.ANY else role


def mermaid() -> str:
    lines = ["```mermaid", "stateDiagram-v2"]
    for t in roles.TRANSITIONS:
        to = t.role if t.to == roles.SAME else t.to
        if t.role == roles.ANY and t.to == roles.SAME:
            continue  # "stays where it is" rows are listed in the table only
        lines.append(f"    {_node(t.role)} --> {_node(to)}: {t.event}")
    lines.append("```")
    return "\n".join(lines)


def graphviz() -> str:
    lines = ["```dot", "digraph roles {", "    rankdir=LR;", "    node [shape=box, style=rounded];"]
    for t in roles.TRANSITIONS:
        if t.role == roles.ANY and t.to == roles.SAME:
            continue
        to = t.role if t.to == roles.SAME else t.to
        lines.append(f'    "{_node(t.role)}" -> "{_node(to)}" [label="{t.event}"];')
    lines.extend(["}", "```"])
    return "\n".join(lines)


def table() -> str:
    rows: List[str] = ["| from | event | to | cycle message |", "|---|---|---|---|"]
    for t in roles.TRANSITIONS:
        sentence = MESSAGES[t.reason].replace("|", "\\|")
        rows.append(f"| {_node(t.role)} | `{t.event}` | {'(same)' if t.to == roles.SAME else t.to} | {sentence} |")
    return "\n".join(rows)


def generated() -> str:
    return "\n\n".join(
        [
            BEGIN,
            "### Diagram (mermaid)",
            mermaid(),
            "### Transition table",
            table(),
            "<details><summary>Graphviz source</summary>\n\n" + graphviz() + "\n\n</details>",
            END,
        ]
    )


def render(existing: str) -> str:
    if BEGIN in existing and END in existing:
        head, rest = existing.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return head + generated() + tail
    return existing.rstrip() + "\n\n" + generated() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the document is out of date")
    args = parser.parse_args()
    existing = DOC.read_text() if DOC.exists() else "# Failover decisions\n"
    wanted = render(existing)
    if args.check:
        if wanted != existing:
            print(f"{DOC} is out of date: run scripts/gen_state_diagram.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
