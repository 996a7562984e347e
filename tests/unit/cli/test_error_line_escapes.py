"""An error line quotes what others chose (a file name in a shared folder, a row of an altered
database, an exchange's answer) with its control and format characters escaped: an escape
sequence cannot clear the screen, move the cursor over the verdict or turn its words around."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.cli_support import Gsomia


def test_an_error_line_shows_escape_sequences_instead_of_running_them(gsomia: Gsomia, tmp_path: Path) -> None:
    planted = tmp_path / "kept\x1b[2J\x1b[1A\u202e.txt"
    run = gsomia("ledger", "verify", "--since", str(planted))
    assert run.code == 4
    assert "\x1b" not in run.err and "\u202e" not in run.err
    assert run.err == f"error: cannot read the kept checkpoint file {tmp_path}/kept\\x1b[2J\\x1b[1A\\u202e.txt: " + (
        "No such file or directory\n"
    )
