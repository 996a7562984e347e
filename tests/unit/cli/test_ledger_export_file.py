"""``gsomia ledger export --out FILE`` writes a new file of its own: never through a file or a
link left beside FILE, and readable by its owner only (it holds every party's metadata)."""

from __future__ import annotations

from pathlib import Path

from tests.unit.cli.cli_support import Gsomia


def test_the_export_goes_to_a_new_private_file_never_through_a_planted_link(gsomia: Gsomia, tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("the operator's own file\n")
    (folder / ".ledger.jsonl.tmp").symlink_to(victim)  # left where an old release wrote its temporary file
    out = folder / "ledger.jsonl"
    run = gsomia("ledger", "export", "--out", str(out))
    assert run.code == 0, run.err
    assert victim.read_text() == "the operator's own file\n"
    assert out.read_text().startswith('{"format":"gsomia-ledger-export/v1"')
    assert (out.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == [".ledger.jsonl.tmp", "ledger.jsonl"]
