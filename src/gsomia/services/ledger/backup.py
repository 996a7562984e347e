"""A backup of the exchange's database that is checked before it is handed over.

The copy is made while the server runs (:mod:`gsomia.storage.backup`), then opened as a
database of its own: its ledger must re-derive (every entry hashes to its leaf, the leaves to
the root of a checkpoint signed for the copy) and its root must be the live ledger's root at
the same size — the copy is a prefix of the log the exchange serves, not some other log.
Only then is it put in place under the name asked for.

The backup holds the record, principals (token hashes), public keys, sealed content keys,
ciphertext and the ledger. It does not hold the exchange's two secrets, which live outside the
database: the key-encryption key (``exchange.kek`` or ``GSOMIA_KEK``), without which no
stored payload can be read, and the ledger key (``exchange-ledger.key``), without which new
checkpoints cannot continue the same log. They never change: back them up once, apart.

PostgreSQL has its own tools, which the operator's database already runs under: ``pg_dump
-Fc`` for a logical copy, ``pg_basebackup`` with WAL archiving for point-in-time recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from gsomia.errors import Conflict, InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import b64
from gsomia.services.ledger.service import LedgerService
from gsomia.storage import backup as sqlite_backup
from gsomia.storage.store import Store

__all__ = ["POSTGRES_ADVICE", "BackupResult", "backup_database"]

POSTGRES_ADVICE = (
    "gsomia backup copies SQLite databases; this exchange runs on PostgreSQL: use 'pg_dump -Fc' "
    "for a logical copy, or 'pg_basebackup' with WAL archiving (archive_command) for "
    "point-in-time recovery"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupResult:
    """A verified backup: where it is, how big, and the ledger it holds."""

    file: Path
    bytes: int
    pages: int
    page_size: int
    source: str
    ledger_size: int
    ledger_root: str
    ledger_origin: str
    checkpoint: str
    not_included: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON shape (the contract of ``gsomia backup --json``)."""
        return {
            "file": str(self.file),
            "bytes": self.bytes,
            "pages": self.pages,
            "page_size": self.page_size,
            "source": self.source,
            "ledger": {
                "size": self.ledger_size,
                "root": self.ledger_root,
                "origin": self.ledger_origin,
                "checkpoint": self.checkpoint,
                "verified": True,
            },
            "not_included": list(self.not_included),
        }


def backup_database(
    store: Store,
    ledger: LedgerService,
    out: Path,
    *,
    key_file: Path,
    clock: Callable[[], datetime],
    not_included: tuple[str, ...] = (),
    force: bool = False,
    progress: sqlite_backup.Progress | None = None,
) -> BackupResult:
    """Copy ``store``'s SQLite database into the new file ``out`` and check the copy.

    Args:
        store: The live database (SQLite).
        ledger: The live ledger over ``store``.
        out: The backup file to create.
        key_file: The exchange's ledger key file (signs the copy's checkpoint).
        clock: Now (the ledger key's creation time, if it has to be created).
        not_included: The secrets kept outside the database, named in the result.
        force: Replace ``out`` if it exists.
        progress: Called with ``(pages copied, pages in all)`` while copying.

    Returns:
        The backup, verified.

    Raises:
        InvalidInput: the database is not SQLite (the message names PostgreSQL's tools), it
            does not exist, or ``out`` cannot be written.
        Conflict: ``out`` exists and ``force`` is false.
        LedgerInvalid: the copy's ledger does not re-derive, or differs from the live one
            (nothing is left at ``out``).
        StorageError: on any database error.
    """
    source = sqlite_backup.sqlite_file(store.url)
    if source is None:
        raise InvalidInput(POSTGRES_ADVICE)
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder: give the backup's file name")
    if (out.exists() or out.is_symlink()) and not force:
        raise Conflict(f"{out} exists: give --force to replace it")
    copy = sqlite_backup.copy_sqlite(source, out.parent, progress=progress)
    try:
        size, root, note = _verify(copy.path, ledger, key_file=key_file, clock=clock)
        written = sqlite_backup.seal(copy.path)
        sqlite_backup.publish(copy.path, out, force=force)
    except BaseException:
        sqlite_backup.discard(copy.path)
        raise
    return BackupResult(
        file=out,
        bytes=written,
        pages=copy.pages,
        page_size=copy.page_size,
        source=store.describe(),
        ledger_size=size,
        ledger_root=root,
        ledger_origin=ledger.origin,
        checkpoint=note,
        not_included=not_included,
    )


def _verify(path: Path, live: LedgerService, *, key_file: Path, clock: Callable[[], datetime]) -> tuple[int, str, str]:
    """Open the copy, re-derive its ledger and compare its root with the live ledger's.

    Raises:
        LedgerInvalid: the copy's ledger does not verify or is not the live ledger's prefix.
        StorageError: on any database error.
    """
    copied = Store(f"sqlite:///{path}")
    try:
        ledger = LedgerService(copied, key_file=key_file, origin=live.origin, clock=clock)
        note = ledger.checkpoint()
        report = ledger.verify(checkpoint=note)
    finally:
        copied.close()
    if not report.ok or report.checkpoint is None:
        problem = report.problem.message if report.problem is not None else "no checkpoint"
        raise LedgerInvalid(f"the copy's ledger does not verify ({problem}); no backup was written")
    size = report.checkpoint.size
    root = b64(report.checkpoint.root_hash)
    # RFC 9162 §2.1.4: the live tree's root at the copy's size is the root of its first
    # `size` entries; equal roots mean the copy holds exactly the log the exchange serves.
    live_root = live.consistency(size)["old_root"]
    if live_root != root:
        raise LedgerInvalid(
            f"the copy's ledger root at size {size} differs from the live ledger's; no backup was written"
        )
    return size, root, note
