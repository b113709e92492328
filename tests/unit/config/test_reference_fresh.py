"""docs/configuration-reference.md is generated from the schema and up to date."""
from __future__ import annotations

import importlib.util
import pathlib

from qhb_patroni.config.reference import full_reference
from qhb_patroni.config.schema import DYNAMIC_KEYS, LOCAL_KEYS

ROOT = pathlib.Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "configuration-reference.md"


def test_reference_in_docs_is_fresh() -> None:
    assert DOC.read_text(encoding="utf-8") == full_reference(), "run python scripts/gen_config_reference.py"


def test_every_key_and_env_variable_is_documented() -> None:
    text = full_reference()
    for key in LOCAL_KEYS:
        if key.path.startswith("bootstrap.dcs."):
            continue  # documented once, in the dynamic table
        assert f"| `{key.path}` |" in text, key.path
        if key.env:
            assert f"`{key.env}`" in text, key.env
    for key in DYNAMIC_KEYS:
        assert f"| `{key.path}` |" in text, key.path
    assert "| `postgresql.data_dir` | a string | yes |  | local | `PATRONI_POSTGRESQL_DATA_DIR` |" in text
    assert "| `loop_wait` | an integer, at least 1 | `10` | dynamic |" in text


def test_generator_script_check_mode() -> None:
    spec = importlib.util.spec_from_file_location("gen_config_reference", ROOT / "scripts" / "gen_config_reference.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.DOC == DOC
