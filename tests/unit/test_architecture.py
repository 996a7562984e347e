"""The layers of DESIGN §4 and the code habits of STYLE.md, enforced by the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    other = shutil.which(name)
    assert other, f"{name} is not installed: run 'make install-dev'"
    return other


def test_import_contracts_hold() -> None:
    p = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 broken" in p.stdout


def test_ruff_is_clean() -> None:
    p = subprocess.run(
        [tool("ruff"), "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    p = subprocess.run([tool("mypy")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
