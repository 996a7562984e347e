"""The command line in this process: ``gsomia.cli.main`` with its output captured, on a SQLite
database holding the bundled scenario, with the data directory in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.cli import main
from tests.unit.cli.cli_support import Gsomia, Run


@pytest.fixture(scope="module")
def scenario_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database with the bundled scenario loaded (shared by a module's read-only commands)."""
    path = tmp_path_factory.mktemp("cli") / "gsomia.db"
    app = build(Settings(db=f"sqlite:///{path}", data_dir=path.parent))
    try:
        app.scenarios.load("japan-korea-2019")
    finally:
        app.close()
    return f"sqlite:///{path}"


@pytest.fixture
def gsomia(
    scenario_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Gsomia:
    """``gsomia(*args)`` runs the command line on ``scenario_db`` (``--db`` overrides it)."""
    monkeypatch.setenv("GSOMIA_DB", scenario_db)
    monkeypatch.setenv("GSOMIA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "250")  # tables as wide as their content
    for name in (
        "GSOMIA_URL",
        "GSOMIA_TOKEN",
        "GSOMIA_TOKEN_FILE",
        "GSOMIA_EXERCISE_CLOCK",
        "GSOMIA_EXERCISE_WHATIF",
        "GSOMIA_KEK",
    ):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> Run:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run
