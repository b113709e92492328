"""House rules for the core: pure imports, every reason has a sentence, the role table is consistent."""
from __future__ import annotations

import ast
import pathlib

import pytest

import qhb_patroni.core as core_pkg
from qhb_patroni.core import reasons as R
from qhb_patroni.core import roles
from qhb_patroni.core.observation import Reason
from qhb_patroni.core.slots import member_slots, slot_name_for
from qhb_patroni.messages import MESSAGES, render

from .builders import cluster, member

ALLOWED_STDLIB = {
    "__future__", "dataclasses", "typing", "enum", "datetime", "math", "itertools", "functools",
    "collections", "re", "urllib.parse", "string", "operator", "abc", "fractions", "decimal",
}
CORE_DIR = pathlib.Path(core_pkg.__file__).parent


def _imports(path: pathlib.Path) -> list:  # type: ignore[type-arg]
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("path", sorted(CORE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_core_imports_only_stdlib_data_modules_and_core(path: pathlib.Path) -> None:
    for module, level in _imports(path):
        if level > 0:
            assert level == 1, f"{path.name}: relative import leaves core: {'.' * level}{module}"
            continue
        if module.startswith("qhb_patroni.core"):
            continue
        assert module in ALLOWED_STDLIB, f"{path.name} imports {module!r}, not allowed in the pure core"


def test_import_walker_catches_a_forbidden_import(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom ..dcs import base\n")
    assert ("time", 0) in _imports(bad) and ("dcs", 2) in _imports(bad)


def test_every_reason_code_has_a_sentence() -> None:
    codes = {v for k, v in vars(R).items() if k.isupper() and isinstance(v, str)}
    assert codes, "no reason codes found"
    assert codes == set(MESSAGES), codes.symmetric_difference(MESSAGES)


def test_every_transition_is_well_formed() -> None:
    seen = set()
    for row in roles.TRANSITIONS:
        assert row.role in roles.ROLES or row.role == roles.ANY, row
        assert row.to in roles.ROLES or row.to == roles.SAME, row
        assert row.reason in MESSAGES, row
        assert (row.role, row.event) not in seen, f"duplicate row {row}"
        seen.add((row.role, row.event))


def test_unknown_transition_is_refused() -> None:
    with pytest.raises(KeyError):
        roles.transition(roles.STOPPED, roles.LOCK_HELD)
    assert roles.transition(roles.REPLICA, roles.DCS_UNREACHABLE).reason == R.DCS_NOT_ACCESSIBLE
    assert roles.transition(roles.PRIMARY, roles.DCS_UNREACHABLE).to == roles.REPLICA


def test_render_fills_arguments_and_tolerates_missing_ones() -> None:
    assert render(Reason(R.NO_ACTION_SECONDARY, {"me": "a", "leader": "b"})) == (
        "no action. I am (a), a secondary, and following a leader (b)"
    )
    assert render(Reason(R.REWIND_RUNNING, {})) == "running pg_rewind from ?"
    assert render(Reason("no_such_code")) == "no_such_code"


@pytest.mark.parametrize(
    "name,slot",
    [
        ("node-1", "node_1"),
        ("Node.A", "node_a"),
        ("ab c", "abu0032c"),
        ("ж", "u1078"),
        ("x" * 80, "x" * 63),
    ],
)
def test_slot_names(name: str, slot: str) -> None:
    assert slot_name_for(name) == slot


def test_member_slots_skip_cascading_members() -> None:
    ms = [member("n0", role="master"), member("n1"), member("n2", tags={"replicatefrom": "n1"}),
          member("n3", tags={"replicatefrom": "gone"})]
    assert member_slots(cluster(leader="n0", members=ms), "n0") == ("n1", "n3")


def test_generated_diagram_in_docs_is_fresh() -> None:
    import importlib.util

    root = CORE_DIR.parent.parent
    spec = importlib.util.spec_from_file_location("gen_state_diagram", root / "scripts" / "gen_state_diagram.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    doc = (root / "docs" / "failover-decisions.md").read_text()
    assert gen.render(doc) == doc, "run scripts/gen_state_diagram.py"
    assert "stateDiagram-v2" in doc and "primary --> replica: dcs_unreachable" in doc
