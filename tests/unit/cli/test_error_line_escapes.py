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


def test_an_error_line_keeps_the_joiners_that_spell_a_name(gsomia: Gsomia, tmp_path: Path) -> None:
    # Persian and the Indian scripts spell words with the zero-width (non-)joiner: shown as
    # written, while a direction override beside them is still escaped
    named = tmp_path / "گزارش\u200cها-\u0915\u094d\u200d\u0937\u202e.txt"
    run = gsomia("ledger", "verify", "--since", str(named))
    assert run.code == 4
    assert "گزارش\u200cها-\u0915\u094d\u200d\u0937\\u202e.txt" in run.err
    assert "\u202e" not in run.err


def test_an_error_line_keeps_the_ideographic_space_of_a_japanese_name(gsomia: Gsomia, tmp_path: Path) -> None:
    # U+3000 is a space of Japanese text, not a line break: the name is shown as it is spelt,
    # while a line break in it is still folded into one space
    named = tmp_path / "極秘\u3000報告\n書.txt"
    run = gsomia("ledger", "verify", "--since", str(named))
    assert run.code == 4
    assert "極秘\u3000報告 書.txt" in run.err
    assert run.err.count("\n") == 1
