"""`pip install .` into a fresh virtual environment gives working `patroni`,
`qhb-patroni` and `patronictl` commands; the code stays valid Python 3.9."""
from __future__ import annotations

import ast
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest

from qhb_patroni import PATRONI_COMPAT_VERSION, __version__
from tests.fixtures.pgbin import QHB_TO_PG

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"


def _python_files() -> List[Path]:
    files: List[Path] = []
    for top in ("qhb_patroni", "patronictl", "scripts", "tests", "bench"):
        files += sorted((ROOT / top).rglob("*.py"))
    return files + [ROOT / "setup.py"]


def test_sources_parse_as_python_3_9() -> None:
    assert len(_python_files()) > 50
    for path in _python_files():
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def test_setup_declares_the_console_scripts() -> None:
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    for line in ("patroni = qhb_patroni.cli:main", "qhb-patroni = qhb_patroni.cli:main",
                 "patronictl = patronictl.cli:main", 'python_requires=">=3.9"'):
        assert line in text


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the package installed from a copy of the tree."""
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    base = tmp_path_factory.mktemp("pkg")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build"))
    env_dir = base / "venv"
    subprocess.run([python, "-m", "venv", str(env_dir)], check=True, timeout=300)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", HOME=str(base))
    result = subprocess.run([str(env_dir / "bin" / "pip"), "install", "-q", str(src)], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return env_dir


def _run(venv: Path, *args: str, env: Dict[str, str] = {}) -> subprocess.CompletedProcess:  # noqa: B006
    full_env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv.parent), **env}
    return subprocess.run([str(venv / "bin" / args[0]), *args[1:]], env=full_env, cwd=str(venv.parent),
                          capture_output=True, text=True, timeout=120)


def test_installed_commands(venv: Path) -> None:
    expected = f"patroni {PATRONI_COMPAT_VERSION} (qhb-patroni {__version__})"
    for command in ("patroni", "qhb-patroni"):
        result = _run(venv, command, "--version")
        assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr
    result = _run(venv, "patronictl", "--help")
    assert result.returncode == 0, result.stderr
    for command in ("list", "edit-config", "show-config", "history", "version"):
        assert f"  {command} " in result.stdout
    # The installed package is used, not the source tree.
    result = _run(venv, "python", "-c", "import qhb_patroni, patronictl; print(qhb_patroni.__file__)")
    assert "site-packages" in result.stdout


def test_installed_validate_config_on_the_examples(venv: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in QHB_TO_PG:  # QHB names; --validate-config only checks they are executables
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    examples = sorted(glob.glob(str(ROOT / "examples" / "*.yml")) +
                      glob.glob(str(ROOT / "examples" / "local" / "*.yml")))
    assert len(examples) == 5
    env = {"PATRONI_POSTGRESQL_BIN_DIR": str(bin_dir), "PATRONI_POSTGRESQL_DATA_DIR": str(tmp_path / "data")}
    for path in examples:
        result = _run(venv, "patroni", "--validate-config", path, env=env)
        assert (result.returncode, result.stderr) == (0, ""), path
    result = _run(venv, "patroni", "--generate-config")
    assert result.returncode == 0 and result.stdout.startswith("# qhb-patroni configuration for node ")
    # Without the override the guide's bin_dir does not exist here: one line, exit 1.
    if os.path.isdir("/usr/local/qhb/bin"):
        return
    result = _run(venv, "patroni", "--validate-config", str(ROOT / "examples" / "qhb0.yml"),
                  env={"PATRONI_POSTGRESQL_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{ROOT / 'examples' / 'qhb0.yml'}: postgresql.bin_dir: directory /usr/local/qhb/bin does not exist"]
