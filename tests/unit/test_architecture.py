"""The layers of docs/design.md §4 and the code habits of STYLE.md, enforced by the tests."""

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


CLOCK_READS = [
    "from datetime import UTC, datetime\n\n\ndef f() -> datetime:\n    return datetime.now(UTC)\n",
    "import time\n\n\ndef f() -> float:\n    return time.time()\n",
    "from datetime import date\n\n\ndef f() -> date:\n    return date.today()\n",
    "import os\n\n\ndef f() -> str | None:\n    return os.environ.get('X')\n",
]


@pytest.mark.parametrize("package", ["domain", "ledger"])
@pytest.mark.parametrize("code", CLOCK_READS, ids=["datetime.now", "time.time", "date.today", "os.environ"])
def test_a_clock_or_environment_read_in_the_pure_core_is_a_lint_error(package: str, code: str) -> None:
    def lint(path: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("ruff"), "check", "--stdin-filename", path, "-"],
            cwd=ROOT,
            input=code,
            capture_output=True,
            text=True,
            check=False,
        )

    inside = lint(f"src/gsomia/{package}/probe.py")
    assert inside.returncode == 1 and "TID251" in inside.stdout, inside.stdout
    # the ban is the pure core's own: where I/O belongs the same read is allowed
    assert "TID251" not in lint("src/gsomia/services/probe.py").stdout
