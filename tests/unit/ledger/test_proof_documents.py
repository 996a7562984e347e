"""Proof documents an auditor is handed (``gsomia ledger proof``) that are malformed, mislabelled
or cannot be anchored are refused offline, and the report names what is wrong; so are exports
whose header or entry lines were altered."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gsomia.crypto.ledger_key import LedgerKey
from gsomia.errors import LedgerInvalid
from gsomia.ledger.audit import EntryProblem, verify_entries, verify_ledger, verify_proof
from gsomia.services.ledger.service import LedgerService, open_export
from gsomia.storage.store import Store

NOW = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


class Log:
    """A ledger of ``n`` entries with its key, checkpoint and proofs."""

    def __init__(self, tmp_path: Path, n: int = 7) -> None:
        self.store = Store(f"sqlite:///{tmp_path / 'g.db'}")
        self.service = LedgerService(self.store, key_file=tmp_path / "ledger.key", clock=lambda: NOW)
        with self.store.writing() as s:
            for i in range(n):
                self.service.append(s, {"type": "delivery", "report": f"r-{i}", "recipient": "KOR", "n": i})
        self.key = LedgerKey.parse(json.dumps(self.service.public_key()))
        self.checkpoint = self.service.checkpoint()

    def inclusion(self, index: int = 3) -> dict[str, Any]:
        doc = self.service.inclusion(index)
        doc["entry"] = self.service.entry(index)["entry"]
        return doc

    def store_rows(self) -> list[tuple[int, bytes, bytes | None]]:
        """Every entry as a verifier reads it: index, bytes, recorded leaf hash."""
        return [row for batch in self.service._table.scan() for row in batch]

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def log(tmp_path: Path) -> Any:
    ledger = Log(tmp_path)
    yield ledger
    ledger.close()


def problem(log: Log, doc: Any, **kwargs: Any) -> str:
    report = verify_proof(doc, key=log.key, **kwargs)
    assert not report.ok and report.problem is not None
    return report.problem.message


def test_untouched_proofs_verify(log: Log) -> None:
    assert verify_proof(log.inclusion(), key=log.key).ok
    bare = {k: v for k, v in log.inclusion().items() if k not in ("checkpoint", "entry")}
    assert verify_proof(bare, key=log.key, checkpoint=log.checkpoint).ok


B64_32 = base64.b64encode(bytes(32)).decode()
Edit = Callable[[dict[str, Any]], Any]

INCLUSION_EDITS: list[tuple[str, Edit, str]] = [
    ("not an object", lambda d: [d], "a proof must be a JSON object"),
    ("neither kind", lambda d: {k: v for k, v in d.items() if k != "index"}, "not a ledger proof"),
    ("a negative index", lambda d: {**d, "index": -1}, "'index' must be a non-negative integer"),
    ("a textual size", lambda d: {**d, "size": "7"}, "'size' must be a non-negative integer"),
    ("a short leaf hash", lambda d: {**d, "leaf_hash": "AAAA"}, "'leaf_hash' is not base64 of 32 bytes"),
    ("a path that is not a list", lambda d: {**d, "proof": B64_32}, "'proof' must be a list of base64 hashes"),
    ("a path element of the wrong size", lambda d: {**d, "proof": ["AAAA", *d["proof"][1:]]}, "inclusion proof"),
    (
        "an entry that cannot be hashed",
        lambda d: {**d, "entry": {**d["entry"], "n": 2**60}},
        "its entry: ledger entry cannot be canonicalised",
    ),
    ("a checkpoint of another size", lambda d: {**d, "size": d["size"] - 1}, "carries a checkpoint of size 7"),
]


@pytest.mark.parametrize(("edit", "fragment"), [pytest.param(e, f, id=n) for n, e, f in INCLUSION_EDITS])
def test_a_malformed_inclusion_proof_is_named(log: Log, edit: Edit, fragment: str) -> None:
    assert fragment in problem(log, edit(log.inclusion()))


def test_a_proof_without_a_checkpoint_of_its_size_cannot_be_anchored(log: Log) -> None:
    bare = {k: v for k, v in log.inclusion().items() if k != "checkpoint"}
    assert "no signed checkpoint of that size to check it against" in problem(log, bare)


def test_a_checkpoint_of_another_log_is_refused(log: Log, tmp_path: Path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    store = Store(f"sqlite:///{other_dir / 'g.db'}")
    try:
        other = LedgerService(store, key_file=tmp_path / "ledger.key", clock=lambda: NOW, origin="example.org/other")
        with store.writing() as s:
            for i in range(7):
                other.append(s, {"type": "delivery", "report": f"r-{i}", "recipient": "KOR", "n": i})
        foreign = {**log.inclusion(), "checkpoint": other.checkpoint()}
        message = problem(log, foreign, checkpoint=log.checkpoint)
        assert "the checkpoint in the inclusion proof does not verify with key gsomia.local/ledger" in message
    finally:
        store.close()


def test_a_consistency_proof_needs_the_older_checkpoint_the_auditor_kept(log: Log) -> None:
    doc = log.service.consistency(3)
    assert "pass --since with your kept checkpoint of size 3" in problem(log, doc)
    assert "'old' must be a non-negative integer" in problem(log, {**doc, "old": None})
    assert "'proof' must be a list" in problem(log, {**doc, "proof": None})


# --- exports ----------------------------------------------------------------------------------------


def exported(log: Log) -> list[bytes]:
    out = io.BytesIO()
    log.service.export(out)
    return out.getvalue().splitlines(keepends=True)


def read_export(tmp_path: Path, lines: list[bytes]) -> list[Any]:
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"".join(lines))
    reader = open_export(path)
    try:
        return [row for batch in reader.batches() for row in batch]
    finally:
        reader.close()


def _header(lines: list[bytes], **changes: Any) -> bytes:
    return json.dumps(json.loads(lines[0]) | changes).encode() + b"\n"


def test_an_entry_past_the_checkpoint_in_an_export_is_refused(log: Log, tmp_path: Path) -> None:
    # leaf hash and body agree: only the count betrays it (no signature covers entry 7)
    lines = exported(log)
    extra = json.loads(lines[-1]) | {"index": 7}
    with pytest.raises(EntryProblem, match="an entry past the 7 the header and its checkpoint count"):
        read_export(tmp_path, [*lines, json.dumps(extra).encode() + b"\n"])


def test_entries_past_the_checkpoint_are_a_problem_in_an_exact_source_and_left_out_of_a_live_one(
    log: Log,
) -> None:
    older = log.checkpoint
    with log.store.writing() as s:
        log.service.append(s, {"type": "delivery", "report": "r-7", "recipient": "KOR", "n": 7})
    rows = list(log.store_rows())
    live = verify_ledger([rows], key=log.key, checkpoint=older, source="the store")
    assert live.ok and live.entries == 7 and "1 entries after it not signed yet, so not counted" in live.checks
    exact = verify_ledger([rows], key=log.key, checkpoint=older, source="an export", exact=True)
    assert not exact.ok and exact.problem is not None
    assert "entries 7..7 are covered by no signature" in exact.problem.message


def test_a_party_verifier_refuses_a_proof_of_another_entry_and_entries_out_of_order(log: Log) -> None:
    rows = list(log.store_rows())

    def verify(batch: list[Any], inclusion: Callable[[int, int], dict[str, Any]]) -> Any:
        return verify_entries(
            [batch],
            key=log.key,
            checkpoint=log.checkpoint,
            source="a proxy",
            inclusion=inclusion,
            consistency=lambda old, new: {},
        )

    honest = verify(rows[:3], log.service.inclusion)
    assert honest.ok, honest.problem
    # entry 0 shown again as entry 4, with the proof of entry 0
    shown = [*rows[:3], (4, rows[0][1], rows[0][2])]
    wrong = verify(shown, lambda i, n: log.service.inclusion(0 if i == 4 else i, n))
    assert not wrong.ok and wrong.problem is not None and "served the proof of entry 0" in wrong.problem.message
    repeated = verify([rows[0], rows[2], rows[2]], log.service.inclusion)
    assert (
        not repeated.ok and repeated.problem is not None and "a duplicate or out of order" in repeated.problem.message
    )


def test_an_export_reads_back_entry_by_entry_and_blank_lines_are_skipped(log: Log, tmp_path: Path) -> None:
    lines = exported(log)
    rows = read_export(tmp_path, [*lines[:2], b"\n", *lines[2:]])
    assert [index for index, _body, _leaf in rows] == list(range(7))


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda lines: [b"not json\n", *lines[1:]], "not a gsomia ledger export"),
        (lambda lines: [json.dumps({"format": "other"}).encode() + b"\n", *lines[1:]], "not a gsomia ledger export"),
        (lambda lines: [b"[" * 100_000 + b"]" * 100_000 + b"\n", *lines[1:]], "not a gsomia ledger export"),
        (
            lambda lines: [
                json.dumps({k: v for k, v in json.loads(lines[0]).items() if k != "size"}).encode() + b"\n",
                *lines[1:],
            ],
            "malformed export header",
        ),
        (lambda lines: [_header(lines, size=1e400), *lines[1:]], "malformed export header"),  # an OverflowError
        (lambda lines: [_header(lines, size="7"), *lines[1:]], "malformed export header"),
        (lambda lines: [_header(lines, size=-1), *lines[1:]], "malformed export header"),
        (lambda lines: [_header(lines, size=True), *lines[1:]], "malformed export header"),
        (lambda lines: [_header(lines, size=9), *lines[1:]], "the header says 9 entries"),
        (lambda lines: [_header(lines, origin="other/log"), *lines[1:]], "of 'other/log', its checkpoint"),
    ],
)
def test_an_altered_export_header_is_refused(
    log: Log, tmp_path: Path, edit: Callable[[list[bytes]], list[bytes]], fragment: str
) -> None:
    with pytest.raises(LedgerInvalid, match=fragment):
        read_export(tmp_path, edit(exported(log)))


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b"{oops\n", "line 3 (entry 1): malformed entry line (JSONDecodeError)"),
        (b'{"index": 1, "body": "AAAA", "leaf_hash": "A A A A"}\n', "malformed entry line"),
        (b'{"index": "1", "body": "AAAA", "leaf_hash": "AAAA"}\n', "line 3: 'index' must be an integer"),
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "line 3 (entry 1): malformed entry line (RecursionError)"),
    ],
)
def test_an_altered_entry_line_is_named(log: Log, tmp_path: Path, line: bytes, fragment: str) -> None:
    lines = exported(log)
    with pytest.raises(EntryProblem, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        read_export(tmp_path, [lines[0], lines[1], line, *lines[3:]])
