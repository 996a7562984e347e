"""``gsomia backup``: a verified copy of the exchange's SQLite database, made while it runs;
``gsomia restore``: a verified backup put back in its place, all or nothing."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from gsomia.bootstrap import system_clock
from gsomia.cli import common
from gsomia.cli.options import AsJson
from gsomia.errors import InvalidInput
from gsomia.services.ledger.backup import (
    POSTGRES_ADVICE,
    POSTGRES_RESTORE_ADVICE,
    BackupResult,
    backup_database,
    restore_database,
)
from gsomia.storage.backup import Progress as CopyProgress
from gsomia.storage.backup import sqlite_file

_PROGRESS_MIN_PAGES = 16_384  # 64 MiB at the default page size; below this a bar only flickers


def backup_cmd(
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="The backup file to create (mode 0600; refused if it exists).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    as_json: AsJson = False,
) -> None:
    """Copy the database into a new file while the server runs, and check the copy.

    SQLite's online backup API copies the database as of one commit, the write-ahead log
    included, without stopping the server. Copying gsomia.db with cp is not a backup: the
    latest commits live in gsomia.db-wal until SQLite checkpoints them, so gsomia.db alone
    can be a 4 KB file that holds none of the data, and a copy taken while the server writes
    can be torn.

    The copy is then opened and checked: its ledger must re-derive to the root of the live
    ledger at the same size. The file (mode 0600) holds sealed content keys and ciphertext.
    It does NOT hold the exchange's key-encryption key (exchange.kek in the data directory,
    or GSOMIA_KEK), without which no payload can be read, nor the ledger key
    (exchange-ledger.key): copy those two files once, apart (they never change).

    To restore: stop the server, put back exchange.kek and exchange-ledger.key from the same
    backup set, run 'gsomia restore --from FILE --force', start the server, run 'gsomia
    ledger verify'. FILE may not be the database or one of its -wal, -shm or -journal files.

    PostgreSQL: this command names the tools to use instead: 'pg_dump -Fc' for a logical
    copy, 'pg_basebackup' with WAL archiving for point-in-time recovery."""
    with common.errors():
        settings = common.settings()
        source = sqlite_file(settings.database_url())
        # before the application is built: building it would create an empty database, or
        # try to reach a PostgreSQL server this command will not copy
        if source is None:
            raise InvalidInput(POSTGRES_ADVICE)
        if not source.is_file():
            raise InvalidInput(f"there is no database at {source}")
        app = common.app()
        secrets = [
            "GSOMIA_KEK (the key-encryption key)" if settings.kek else str(settings.data_dir / "exchange.kek"),
            str(settings.ledger_key_path()),
        ]
        with _progress(as_json) as tick:
            result = backup_database(
                app.store,
                app.ledger,
                out_file,
                key_file=settings.ledger_key_path(),
                clock=system_clock,
                not_included=tuple(secrets),
                force=force,
                progress=tick,
            )
        if as_json:
            common.emit_json(result.as_dict())
        else:
            _render(result)


def restore_cmd(
    from_file: Annotated[Path, typer.Option("--from", help="The backup file (made by 'gsomia backup').")],
    force: Annotated[bool, typer.Option("--force", help="Replace the database there.")] = False,
    as_json: AsJson = False,
) -> None:
    """Put a backup back in place of the SQLite database: all or nothing, checked first.

    Stop the server first (a database some process has open is refused). The backup is copied
    beside the database and checked there: a whole SQLite file, of a schema this release knows,
    whose ledger re-derives to the checkpoint it keeps, signed by the ledger key in the data
    directory (put exchange-ledger.key and exchange.kek back first, from the same backup set).
    Only then is it renamed over the database, whose -wal and -shm files go (SQLite would
    replay them into the restored file). A failure at any step, or an interruption, leaves the
    database as it was. Then start the server and run 'gsomia ledger verify --since' with the
    checkpoint printed at backup time.

    PostgreSQL: this command names the tools to use instead ('pg_restore')."""
    with common.errors():
        settings = common.settings()
        if sqlite_file(settings.database_url()) is None:
            raise InvalidInput(POSTGRES_RESTORE_ADVICE)
        result = restore_database(
            settings.database_url(),
            from_file,
            key_file=settings.ledger_key_path(),
            origin=settings.ledger_origin,
            clock=system_clock,
            force=force,
        )
        if as_json:
            common.emit_json(result.as_dict())
        else:
            sys.stdout.write(
                f"restored {result.backup} to {result.database}"
                f"{' (replacing the database there)' if result.replaced else ''}: ledger of "
                f"{result.ledger_size:,} entries, root {result.ledger_root}, verified\n"
            )


def _render(result: BackupResult) -> None:
    # plain writes: these lines are read by people and by scripts, never wrapped
    sys.stdout.write(
        f"backed up {result.source} to {result.file} ({result.bytes:,} bytes, {result.pages:,} pages): "
        f"ledger of {result.ledger_size:,} entries, root {result.ledger_root}, verified\n"
        "keep this signed checkpoint beside the backup; after a restore, 'gsomia ledger verify --since FILE' "
        "with it saved in FILE checks the ledger against it:\n"
        f"{result.checkpoint.rstrip()}\n"
    )
    sys.stderr.write(
        "not in the backup (copy them once, apart; they never change): " + ", ".join(result.not_included) + "\n"
    )


@contextmanager
def _progress(quiet: bool) -> Iterator[CopyProgress | None]:
    """A Rich progress bar on stderr for large databases, only when stderr is a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("copying pages"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=common.err, transient=True) as bar:
        task: list[TaskID] = []

        def tick(done: int, total: int) -> None:
            if total < _PROGRESS_MIN_PAGES:
                return
            if not task:
                task.append(bar.add_task("pages", total=total))
            bar.update(task[0], completed=done)

        yield tick
