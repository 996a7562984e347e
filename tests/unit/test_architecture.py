"""The layers of docs/design.md §4 and the code habits of STYLE.md, enforced by the tests."""

from __future__ import annotations

import ast
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


def test_ruff_format_is_clean() -> None:
    p = subprocess.run(
        [tool("ruff"), "format", "--check", "src", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
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


LONGEST_FUNCTION = 80
"""Lines a function may span (decorators excluded, docstring included) before it must be split
along its seams."""

LONG_FUNCTIONS_ALLOWED = ("src/gsomia/storage/migrations/", "src/gsomia/ledger/merkle.py")
"""Migrations are a schema's history, written once and never edited; merkle.py follows the
algorithms of RFC 9162 §2.1 step by step, where splitting would hide the correspondence."""

NOT_YET_SPLIT = {("src/gsomia/services/exchange/relays.py", "open_consent"): 93}
"""Functions still to split, each held to the length it has today (it may only shrink)."""


def long_functions(root: Path, base: Path = ROOT) -> dict[tuple[str, str], int]:
    """Every function or method in the files under ``root`` longer than :data:`LONGEST_FUNCTION`
    lines, outside :data:`LONG_FUNCTIONS_ALLOWED`: ``(path from base, name) → lines``."""
    found = {}
    for file in sorted(root.rglob("*.py")):
        path = file.relative_to(base).as_posix()
        if path.startswith(LONG_FUNCTIONS_ALLOWED):
            continue
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST_FUNCTION:
                    found[path, node.name] = lines
    return found


def test_no_function_is_longer_than_80_lines() -> None:
    found = long_functions(ROOT / "src" / "gsomia")
    too_long = {f: n for f, n in found.items() if n > NOT_YET_SPLIT.get(f, LONGEST_FUNCTION)}
    assert not too_long, f"split these along their seams (at most {LONGEST_FUNCTION} lines each): {too_long}"


def test_the_length_check_finds_a_long_function_but_not_an_allowed_one(tmp_path: Path) -> None:
    def function(name: str, lines: int) -> str:
        return f"def {name}() -> None:\n" + "".join(f"    x{i} = {i}\n" for i in range(lines - 1))

    package = tmp_path / "src" / "gsomia"
    (package / "ledger").mkdir(parents=True)
    (package / "domain.py").write_text(
        function("fits", 80) + "\n\nclass C:\n    " + function("method", 81).replace("\n", "\n    ")
    )
    (package / "ledger" / "merkle.py").write_text(function("rfc_algorithm", 90))
    assert long_functions(package, tmp_path) == {("src/gsomia/domain.py", "method"): 81}
