"""The small files ``gsomia ledger verify`` reads (a kept checkpoint, a key, a proof) are read
within a bound: a device such as ``/dev/zero`` given by mistake, or a file far too large to be
one, is one error line (exit 4), never a read until memory runs out."""

from __future__ import annotations

from pathlib import Path

from gsomia.cli.common import TEXT_FILE_LIMIT
from tests.unit.cli.cli_support import Gsomia


def test_a_huge_file_or_a_device_given_as_a_kept_checkpoint_is_refused(gsomia: Gsomia, tmp_path: Path) -> None:
    huge = tmp_path / "kept.txt"
    with huge.open("wb") as f:
        f.truncate(TEXT_FILE_LIMIT + 1)  # sparse: no disk used
    run = gsomia("ledger", "verify", "--since", str(huge))
    assert run.code == 4, run.err
    assert run.err == (
        f"error: the kept checkpoint file {huge} is larger than {TEXT_FILE_LIMIT} bytes: "
        "give the file that holds the kept checkpoint\n"
    )
    run = gsomia("ledger", "verify", "--since", "/dev/zero")
    assert run.code == 4, run.err
    assert "/dev/zero is not a regular file" in run.err
