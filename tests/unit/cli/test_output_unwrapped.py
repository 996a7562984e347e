"""A command whose output is a pipe prints each message on one line, whatever the width
``COLUMNS`` gives: a script or ``grep`` reading it finds the line whole (README, the tour)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _gsomia(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "60", "GSOMIA_DATA_DIR": str(tmp_path / "data")}
    env.pop("GSOMIA_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "gsomia", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_messages_and_errors_stay_on_one_line_in_a_pipe(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'a-database-with-a-rather-long-name-for-a-narrow-pipe.db'}"
    loaded = _gsomia(tmp_path, "--db", db, "scenario", "load", "japan-korea-2019")
    assert loaded.returncode == 0, loaded.stderr
    line = f"japan-korea-2019: created (30 events, 44 reports, 9 provisions) in {db}"
    assert line in loaded.stdout.splitlines()
    refused = _gsomia(tmp_path, "--db", db, "route", "JPN", "XOR", "--topic", "dprk.missile.launch", "--level", "極秘")
    assert refused.returncode == 5
    first = refused.stderr.splitlines()[0]
    assert first.startswith("error: unknown party 'XOR': did you mean KOR? (known: AUS,")
    assert first.endswith("US (USA))")
