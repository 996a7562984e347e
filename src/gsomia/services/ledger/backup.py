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

import os
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

__all__ = [
    "POSTGRES_ADVICE",
    "POSTGRES_RESTORE_ADVICE",
    "BackupResult",
    "RestoreResult",
    "backup_database",
    "restore_database",
]

POSTGRES_ADVICE = (
    "gsomia backup copies SQLite databases; this exchange runs on PostgreSQL: use 'pg_dump -Fc' "
    "for a logical copy, or 'pg_basebackup' with WAL archiving (archive_command) for "
    "point-in-time recovery"
)

POSTGRES_RESTORE_ADVICE = (
    "gsomia restore puts back SQLite databases; this exchange runs on PostgreSQL: restore a "
    "'pg_dump -Fc' copy with 'pg_restore' into an empty database, or recover a 'pg_basebackup' "
    "with its archived WAL"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreResult:
    """A backup put back in place: where from, where to, and the ledger it holds (verified)."""

    backup: Path
    database: Path
    replaced: bool
    ledger_size: int
    ledger_root: str

    def as_dict(self) -> dict[str, Any]:
        """JSON shape (the contract of ``gsomia restore --json``)."""
        return {
            "backup": str(self.backup),
            "database": str(self.database),
            "replaced": self.replaced,
            "ledger": {"size": self.ledger_size, "root": self.ledger_root, "verified": True},
        }


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
    _refuse_live_files(source, out)
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


def _refuse_live_files(source: Path, out: Path) -> None:
    """Refuse a backup named as the database it copies, or as one of SQLite's files beside it.

    Replacing the database file (``--force``) would leave a running server writing into the
    file it still holds open, never seen again, and SQLite would then apply the live
    ``-wal`` to the copy; replacing the ``-wal`` or ``-shm`` would throw away commits not
    yet checkpointed into the database file.

    Raises:
        InvalidInput: ``out`` is the database or one of its ``-wal``, ``-shm`` or ``-journal`` files.
    """
    live = [source, *(source.with_name(source.name + suffix) for suffix in sqlite_backup.SIDE_FILES)]
    target = out.resolve()
    for name in live:
        same = name.resolve() == target
        if not same and out.exists() and name.exists():
            try:
                same = os.path.samefile(name, out)
            except OSError:
                same = False
        if same:
            raise InvalidInput(
                f"{out} is the database being backed up ({name}): give the backup another file name, "
                "outside the database's own files"
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


def restore_database(
    url: str,
    backup: Path,
    *,
    key_file: Path,
    origin: str | None,
    clock: Callable[[], datetime],
    force: bool = False,
) -> RestoreResult:
    """Put the backup file ``backup`` in place as the SQLite database of ``url``: all or nothing.

    The backup is copied beside the database and checked there — a whole SQLite file, of a
    schema this release knows (an older one is migrated), whose ledger re-derives, entry by
    entry, to the checkpoint it keeps, signed by ``key_file``'s key — and only then renamed
    over the database, once no process has the database open and what its write-ahead log held
    is in the file; the database's ``-wal`` and ``-shm`` go with it (SQLite would replay them
    into the restored file). A failure at any step leaves the database as it was.

    Raises:
        InvalidInput: PostgreSQL (the message names its tools), no backup file, a backup that is
            not a whole SQLite database, the backup named as the database itself, or a process
            using the database.
        Conflict: a database is there and ``force`` is false.
        LedgerInvalid: the backup's ledger does not verify under the key file.
        StorageError: the backup's schema is newer than this release's, or a database error.
    """
    target = sqlite_backup.sqlite_file(url)
    if target is None:
        raise InvalidInput(POSTGRES_RESTORE_ADVICE)
    if not backup.is_file():
        raise InvalidInput(f"there is no backup file at {backup}")
    if target.exists() and os.path.samefile(target, backup):
        raise InvalidInput(f"{backup} is the database itself: give a backup file")
    replaced = target.exists()
    if replaced and not force:
        raise Conflict(f"{target} holds a database: give --force to replace it with {backup}")
    sqlite_backup.check_integrity(backup)  # a cut or damaged file is named as such, before anything is copied
    copy = sqlite_backup.copy_sqlite(backup, target.parent, read_only=True)
    try:
        size, root = _verify_restored(copy.path, key_file=key_file, origin=origin, clock=clock)
        sqlite_backup.seal(copy.path)
        sqlite_backup.quiesce(target)
        sqlite_backup.publish(copy.path, target, force=True)
        sqlite_backup.remove_side_files(target)
    except BaseException:
        sqlite_backup.discard(copy.path)
        raise
    return RestoreResult(backup=backup, database=target, replaced=replaced, ledger_size=size, ledger_root=root)


def _verify_restored(
    path: Path, *, key_file: Path, origin: str | None, clock: Callable[[], datetime]
) -> tuple[int, str]:
    """Open the copy (migrating an older schema) and re-derive its ledger; nothing is signed.

    Raises:
        LedgerInvalid: the ledger does not verify.
        StorageError: a newer schema, or a database error.
    """
    copied = Store(f"sqlite:///{path}")
    try:
        ledger = LedgerService(copied, key_file=key_file, origin=origin, clock=clock)
        report = ledger.verify()
    finally:
        copied.close()
    if not report.ok or report.checkpoint is None:
        problem = report.problem.message if report.problem is not None else "no checkpoint"
        raise LedgerInvalid(f"the backup's ledger does not verify ({problem}); nothing was restored")
    return report.checkpoint.size, b64(report.checkpoint.root_hash)
