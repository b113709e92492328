"""README keeps exactly the two set-up commands; every relative link in README.md
and docs/ points at a file (and heading) that exists."""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Set

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(path: Path) -> Set[str]:
    """GitHub-style heading anchors of a Markdown file."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            out.add(title.replace(" ", "-"))
    return out


def test_readme_has_exactly_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(blocks) == 1 and text.count("```") == 2
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_docs_cover_the_required_topics() -> None:
    names = {p.name for p in DOCS}
    assert {"installation.md", "configuration.md", "configuration-reference.md", "rest-api.md", "patronictl.md",
            "qhb.md", "failover-decisions.md", "operations.md", "troubleshooting.md"} <= names
    ops = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    for heading in ("## Planned switchover", "## Maintenance mode (pause)", "## Reinitialising a replica",
                    "## Adding a node", "## Replacing a node", "## Upgrading from the vendor's qhb-patroni 3.0.2"):
        assert heading in ops
    qhb = (ROOT / "docs" / "qhb.md").read_text(encoding="utf-8")
    assert "unix_socket_directories: '.'" in qhb and "qhb_rewind" in qhb


def test_relative_links_resolve() -> None:
    broken: List[str] = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (doc.parent / path_part).resolve() if path_part else doc
            if not dest.exists():
                broken.append(f"{doc.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []
