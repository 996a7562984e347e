"""The ledger export file: a JSON header line, then one JSON line per entry, in index order.

``gsomia ledger export`` writes it (:meth:`~gsomia.services.ledger.LedgerService.export`);
:class:`ExportReader` reads it back for :func:`~gsomia.ledger.audit.verify_ledger`,
which trusts nothing in it but what the exchange's key signed.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from gsomia.codec import b64decode_or_none
from gsomia.errors import InvalidInput, LedgerInvalid
from gsomia.ledger.audit import Batch, EntryProblem
from gsomia.ledger.checkpoint import NoteVerifier, parse_note

__all__ = ["EXPORT_FORMAT", "ExportHeader", "ExportReader"]

EXPORT_FORMAT = "gsomia-ledger-export/v1"
"""First line of an export: a JSON header; then one JSON line per entry, in index order."""


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """The first line of an export."""

    origin: str
    size: int
    key: NoteVerifier
    checkpoint: str


class ExportReader:
    """Reads an export written by ``gsomia ledger export``: a header line, then entries.

    Each entry line is ``{"index": N, "leaf_hash": base64, "body": base64 of the RFC 8785
    bytes}``. Lines are decoded lazily, in batches, so a large export is verified in bounded
    memory.
    """

    def __init__(self, stream: IO[bytes], *, name: str, parse_key: Callable[[str], NoteVerifier]) -> None:
        """Read the header from ``stream``; ``parse_key`` reads the key it names (the JSON of
        ``GET /api/v1/ledger/key``), so this module never handles a key itself.

        Raises:
            LedgerInvalid: the header is missing or malformed.
        """
        self._stream = stream
        self.name = name
        first = stream.readline()
        try:
            doc = json.loads(first)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the stack
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
            raise LedgerInvalid(f"{name}: not a gsomia ledger export (its first line must be a {EXPORT_FORMAT} header)")
        self.header = _header(doc, name, parse_key)

    def close(self) -> None:
        """Close the file."""
        self._stream.close()

    def batches(self, size: int = 20_000) -> Iterator[Batch]:
        """The entries, ``size`` at a time.

        Raises:
            EntryProblem: a line cannot be decoded (naming the line and the entry).
        """
        batch: list[tuple[int, bytes, bytes | None]] = []
        expected = 0
        loads = json.loads
        for line_no, line in enumerate(self._stream, start=2):
            if not line.strip():
                continue
            try:
                doc = loads(line)
                index = doc["index"]
                body = _canonical_b64(doc["body"])
                leaf = _canonical_b64(doc["leaf_hash"])
            except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as e:
                raise EntryProblem(
                    f"{self.name} line {line_no} (entry {expected}): malformed entry line ({type(e).__name__}); "
                    "the export was altered or truncated",
                    index=expected,
                ) from None
            if type(index) is not int:
                raise EntryProblem(f"{self.name} line {line_no}: 'index' must be an integer", index=expected)
            if expected >= self.header.size:
                raise EntryProblem(
                    f"{self.name} line {line_no}: an entry past the {self.header.size} the header and its "
                    "checkpoint count: the export was altered",
                    index=expected,
                )
            batch.append((index, body, leaf))
            expected += 1
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch


def _header(doc: dict[str, object], name: str, parse_key: Callable[[str], NoteVerifier]) -> ExportHeader:
    """The export's header, which must agree with the checkpoint it carries (whose signature is
    checked with the entries).

    Raises:
        LedgerInvalid: a member is missing or of another type, or it contradicts the checkpoint.
    """
    size, origin, checkpoint = doc.get("size"), doc.get("origin"), doc.get("checkpoint")
    if type(size) is not int or size < 0 or not isinstance(origin, str) or not isinstance(checkpoint, str):
        raise LedgerInvalid(
            f"{name}: malformed export header (size must be an integer ≥ 0, origin and checkpoint text)"
        )
    try:
        header = ExportHeader(
            origin=origin, size=size, key=parse_key(json.dumps(doc.get("key"))), checkpoint=checkpoint
        )
        signed = parse_note(checkpoint)[0]
    except (TypeError, ValueError, InvalidInput, LedgerInvalid) as e:
        raise LedgerInvalid(f"{name}: malformed export header ({e})") from None
    if (signed.size, signed.origin) != (size, origin):
        raise LedgerInvalid(
            f"{name}: the header says {size} entries of {origin!r}, its checkpoint {signed.size} of "
            f"{signed.origin!r}: the export was altered"
        )
    return header


def _canonical_b64(text: object) -> bytes:
    """Strict base64: one spelling per value, so no edit of the text goes unnoticed."""
    raw = b64decode_or_none(text)
    if raw is None:
        raise ValueError("not canonical base64")
    return raw
