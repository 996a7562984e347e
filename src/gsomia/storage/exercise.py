"""The exercise database: a rehearsal never writes into the live database or its ledger.

On first use it is created from the live database's *standing* data — the record (scenario,
agreement events, the record's past reports and provisions), the principals (token hashes,
revocations included) and the parties' registered public keys — so tokens and keys work in
the exercise as they do live. Nothing that happened on the live exchange comes along: no
submitted report, decision, delivery, consent, standing consent, incident, inbox item or
ledger entry; the exercise's ledger starts empty.

Seeding is all-or-nothing: the rows are copied in one transaction into a new file beside the
target, which is renamed into place only when complete, so a crash leaves either no exercise
database or a whole one. A second start finds it and reuses it; a reset seeds a new one and
replaces it.

The parties' current keys are valid in the exercise from :data:`EXERCISE_KEYS_VALID_FROM`, not
from their live registration: an exercise's clock is set in the past (2019 for the bundled
scenario), and a report is verified with the key valid when the exchange received it
(docs/design.md §6), so a key registered live today would verify nothing signed in the
rehearsal. Retired keys keep their live dates: nothing in the exercise was signed with them.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from gsomia.errors import InvalidInput, StorageError
from gsomia.storage.backup import discard, seal
from gsomia.storage.exchange import PartyKeyRow, PrincipalRow
from gsomia.storage.schema import EventRow, ProvisionRow, ReportRow, ScenarioRow
from gsomia.storage.store import Store

__all__ = ["EXERCISE_KEYS_VALID_FROM", "SEEDED_TABLES", "ExerciseDatabase", "open_exercise_database"]

EXERCISE_KEYS_VALID_FROM = datetime(1970, 1, 1, tzinfo=UTC)
"""When the parties' current keys, copied from the live database, become valid in an exercise."""

_SEEDED = (ScenarioRow, EventRow, ReportRow, ProvisionRow, PrincipalRow, PartyKeyRow)
SEEDED_TABLES = tuple(str(row.__tablename__) for row in _SEEDED)
"""The tables copied from the live database, parents first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExerciseDatabase:
    """Which exercise database is used, and how it came to be."""

    path: Path
    live: Path
    outcome: str
    """``created`` (seeded now), ``reset`` (seeded now, replacing the previous one) or ``reused``."""
    copied: dict[str, int]
    """Rows copied per table (empty when reused)."""
    held: _Held = field(default_factory=lambda: _Held(-1), compare=False, repr=False)
    """The lock file, held shared while this process uses the database (see :meth:`release`)."""

    def release(self) -> None:
        """Stop using the database: another process may reset it now (once every other user has
        released it too). Closing a process releases it as well."""
        self.held.close()

    def describe(self) -> str:
        """One line for the server's start-up message."""
        if self.outcome == "reused":
            return f"exercise database {self.path} (reused; --exercise-reset seeds it afresh from {self.live})"
        counts = ", ".join(f"{n} {table}" for table, n in self.copied.items())
        return (
            f"exercise database {self.path} ({self.outcome}: seeded from {self.live} with {counts}; "
            "no reports, deliveries, consents, incidents or ledger entries)"
        )


def open_exercise_database(target: Path, *, live: Path, reset: bool = False) -> ExerciseDatabase:
    """Make sure the exercise database ``target`` exists, seeding it from ``live`` if needed.

    Args:
        target: The exercise database file (``DATA_DIR/exercise.db``).
        live: The live database file it is seeded from.
        reset: Seed a new one even if ``target`` exists (and replace it).

    Returns:
        What was done.

    Raises:
        InvalidInput: ``live`` does not exist or holds no scenario.
        StorageError: the live database cannot be read or the exercise one written (no
            exercise database is left half-seeded).
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the data directory {target.parent}: {e.strerror}") from e
    held = _Held(_open_lock(target))
    try:
        if reset:
            # a reset replaces the file: a process still using it would go on writing to the
            # replaced one, and what it then did would be lost without a word
            _take_to_reset(held, target)
        else:
            held.lock(fcntl.LOCK_SH)
            if target.exists():
                return ExerciseDatabase(path=target, live=live, outcome="reused", copied={}, held=held)
            held.lock(fcntl.LOCK_EX)  # to seed it: one process at a time, the others then reuse it
            if target.exists():
                held.lock(fcntl.LOCK_SH)
                return ExerciseDatabase(path=target, live=live, outcome="reused", copied={}, held=held)
        outcome = "reset" if target.exists() else "created"
        copied = _seeded(target, live)
        held.lock(fcntl.LOCK_SH)  # kept while this process uses it
        return ExerciseDatabase(path=target, live=live, outcome=outcome, copied=copied, held=held)
    except BaseException:
        held.close()
        raise


def _take_to_reset(held: _Held, target: Path) -> None:
    """Take the database alone, to replace it.

    Raises:
        InvalidInput: another process is using it.
    """
    if not held.lock(fcntl.LOCK_EX | fcntl.LOCK_NB):
        raise InvalidInput(
            f"--exercise-reset: another process is using the exercise database {target} (a server or a "
            "command): stop it first; nothing was reset"
        )


def _seeded(target: Path, live: Path) -> dict[str, int]:
    """Seed a new exercise database from ``live`` and put it in ``target``'s place; the rows
    copied per table.

    Raises:
        InvalidInput: ``live`` does not exist or holds no scenario.
        StorageError: the live database cannot be read or the exercise one written.
    """
    if not live.is_file():
        raise InvalidInput(
            f"exercise mode seeds {target} from the live database {live}, which does not exist: "
            "load a scenario first ('gsomia scenario load'), or give the exercise's database with --db"
        )
    fresh = target.with_name(f".{target.name}.seeding-{secrets.token_hex(6)}")
    try:
        copied = _seed(live, fresh)
        seal(fresh)
        # The previous exercise's -wal and -shm belong to the file they sit beside: SQLite
        # would replay them into the new one (sqlite.org/wal.html §The WAL File).
        for suffix in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        fresh.replace(target)
        _fsync_dir(target.parent)
    except BaseException:
        discard(fresh)
        raise
    return copied


def _seed(live: Path, fresh: Path) -> dict[str, int]:
    try:
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise StorageError(f"cannot create {fresh}: {e.strerror}") from e
    os.close(fd)
    source = Store(f"sqlite:///{live}")
    try:
        with source.reading() as s:  # one read transaction: one commit's standing data
            if s.scalars(select(ScenarioRow.id)).first() is None:
                raise InvalidInput(
                    f"the live database {live} holds no scenario to rehearse: load one first ('gsomia scenario load')"
                )
            rows: dict[str, list[dict[str, Any]]] = {
                str(row.__tablename__): [dict(r) for r in s.execute(select(row.__table__)).mappings()]
                for row in _SEEDED
            }
    finally:
        source.close()
    for key in rows[str(PartyKeyRow.__tablename__)]:
        if key["retired_at"] is None:
            key["registered_at"] = EXERCISE_KEYS_VALID_FROM
    target = Store(f"sqlite:///{fresh}")
    try:
        with target.writing("seeding the exercise database") as s:
            for row in _SEEDED:
                batch = rows[str(row.__tablename__)]
                if batch:
                    s.execute(insert(row), batch)
    finally:
        target.close()
    return {table: len(batch) for table, batch in rows.items()}


class _Held:
    """An open lock file (``flock``: shared by the processes using the database, exclusive to
    seed or reset it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def lock(self, how: int) -> bool:
        """Take (or convert to) ``how``; False if ``LOCK_NB`` was asked and it is held elsewhere."""
        try:
            fcntl.flock(self.fd, how)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the lock
            self.fd = -1


def _open_lock(target: Path) -> int:
    path = target.with_name(f".{target.name}.lock")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise StorageError(f"cannot create {path}: {e.strerror}") from e


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
