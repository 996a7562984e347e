"""The composition root: settings in, wired services out. Nothing is built at import time.

Nothing here starts a thread or touches a key until it is used: a CLI command that only reads
the record never creates the KEK file or the writer thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gsomia.crypto.kek import load_or_create_kek, parse_kek
from gsomia.crypto.keyfile import check_private_dir
from gsomia.domain.instants import parse_instant
from gsomia.errors import InvalidInput
from gsomia.scenario.loader import read_file
from gsomia.services.analysis.scenarios import ScenarioService
from gsomia.services.analysis.service import AnalysisService
from gsomia.services.exchange import Exchange
from gsomia.services.exchange.clock import ExchangeClock
from gsomia.services.exchange.context import ExchangeConfig, ExchangeContext
from gsomia.services.exchange.deliveries import DeliveryService
from gsomia.services.exchange.identity import IdentityService
from gsomia.services.exchange.incidents import IncidentService
from gsomia.services.exchange.keys import KeyService
from gsomia.services.exchange.notify import Notifier
from gsomia.services.exchange.operator import OperatorService
from gsomia.services.exchange.records import RecordCache
from gsomia.services.exchange.relays import ConsentService
from gsomia.services.exchange.standing import StandingConsentService
from gsomia.services.exchange.submissions import SubmissionService
from gsomia.services.exchange.witnesses import WitnessService
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.channel import commit_listener
from gsomia.storage.exchange import ExchangeRepo
from gsomia.storage.exercise import ExerciseDatabase, open_exercise_database
from gsomia.storage.store import Store
from gsomia.storage.traffic import TrafficReader
from gsomia.storage.writer import GroupCommitter


def default_data_dir() -> Path:
    """The user's data directory for gsomia (``~/.local/share/gsomia`` on Linux)."""
    return Path(platformdirs.user_data_dir("gsomia", appauthor=False))


class Settings(BaseSettings):
    """Settings from the environment (``GSOMIA_*``) and command-line options."""

    model_config = SettingsConfigDict(env_prefix="GSOMIA_", extra="ignore")

    db: str | None = Field(default=None, description="database URL; default: SQLite in the data directory")
    data_dir: Path = Field(default_factory=default_data_dir)
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        default="FULL",
        description="SQLite's synchronous mode: FULL (default) syncs the WAL at every commit, so a "
        "commit that was answered survives a power loss; NORMAL may lose the last commits on power loss",
    )
    ledger_key_file: Path | None = Field(
        default=None, description="checkpoint key; default: DATA_DIR/exchange-ledger.key"
    )
    ledger_origin: str | None = Field(
        default=None,
        description="the ledger's origin line and signed-note key name; default: generated at the first start "
        "(gsomia/ and 16 random hex digits) and recorded in the database",
    )
    kek: SecretStr | None = Field(
        default=None, description="key-encryption key, base64 of 32 bytes; default: DATA_DIR/exchange.kek"
    )
    exercise_clock: str | None = Field(
        default=None, description="exercise mode: start the exchange clock at this instant"
    )
    exercise_whatif: Path | None = Field(
        default=None, description="exercise mode: what-if file applied to every decision"
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="largest request body accepted (413 above)")
    max_batch_bytes: int = Field(
        default=16 << 20, ge=1024, description="largest batch of signed reports accepted in one request (413 above)"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a request's headers must arrive within this time, else the connection closes"
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a request's body must arrive within this time, else 408 and the connection closes",
    )
    consent_ttl_hours: float = Field(
        default=72.0, gt=0, description="a consent request expires after this much exchange time"
    )
    consent_sweep_seconds: float = Field(default=30.0, gt=0, description="how often expired consent requests are swept")
    key_registrations_per_hour: int = Field(
        default=6, ge=1, description="most key sets a party may register itself in any hour (429 beyond)"
    )
    group_commit_max: int = Field(default=256, ge=1, description="most write actions committed in one transaction")
    db_pool_size: int = Field(
        default=5, ge=1, le=100, description="PostgreSQL: connections each process keeps (plus one to listen)"
    )
    worker_start_seconds: float = Field(
        default=120.0,
        gt=0,
        description="serve --workers N: a worker that has not begun to serve this long after it was started is "
        "stopped (and the command with it, if no worker has served yet; else it is tried again later)",
    )
    stream_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often an inbox stream re-reads the store without a wake-up (and checks its token)",
    )

    def as_environment(self) -> dict[str, str]:
        """These settings as ``GSOMIA_*`` variables, for worker processes that read their
        settings from the environment (secrets included: the environment of a process is private
        to its user)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is not None:
                text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
                env[f"GSOMIA_{name.upper()}"] = text
        return env

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _mode_in_capitals(cls, value: object) -> object:
        # SQLite reads the pragma's value in any case; so do we (normal, NORMAL)
        return value.strip().upper() if isinstance(value, str) else value

    def ledger_key_path(self) -> Path:
        """The exchange's checkpoint key file (created with mode 0600 on first use)."""
        return self.ledger_key_file or self.data_dir / "exchange-ledger.key"

    def exercise(self) -> bool:
        """Whether exercise mode is on (an exercise clock, a what-if, or both)."""
        return bool(self.exercise_clock or self.exercise_whatif)

    def live_database(self) -> Path:
        """The default (live) SQLite database file in the data directory."""
        return self.data_dir / "gsomia.db"

    def exercise_database(self) -> Path | None:
        """The exercise's own database, ``DATA_DIR/exercise.db``: in exercise mode, unless a
        database was given explicitly (``--db``, ``GSOMIA_DB``)."""
        return self.data_dir / "exercise.db" if self.exercise() and not self.db else None

    def database_url(self) -> str:
        """The database URL to use: the one given, else the exercise's in exercise mode, else
        the live one."""
        if self.db:
            return self.db
        return f"sqlite:///{self.exercise_database() or self.live_database()}"


def system_clock() -> datetime:
    """Now, in UTC. The only place the product reads the wall clock."""
    return datetime.now(UTC)


@dataclass
class App:
    """Every service, wired to one store."""

    settings: Settings
    store: Store
    analysis: AnalysisService
    scenarios: ScenarioService
    ledger: LedgerService
    exchange: Exchange
    exercise_database: ExerciseDatabase | None = None

    def close(self) -> None:
        """Finish queued writes, then release the database (and the exercise's, for a reset)."""
        self.exchange.close()
        self.store.close()
        if self.exercise_database is not None:
            self.exercise_database.release()


def build(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] = system_clock,
    exercise_reset: bool = False,
) -> App:
    """Build the application from ``settings`` (default: from the environment).

    In exercise mode without an explicit database, the exercise's own database is used,
    seeded from the live one on first use, or afresh if ``exercise_reset`` (never read from
    the environment: a variable left set would wipe the exercise at every command); see
    :mod:`gsomia.storage.exercise`.

    Raises:
        InvalidInput: for a bad database URL; an exercise reset with an explicit database; an
            exercise database to seed from a live database that does not exist; a data directory
            (holding the database or a key) that another user owns or may write to.
        StorageError: if the database cannot be opened or migrated.
    """
    settings = settings or Settings()
    if not settings.db or settings.kek is None or settings.ledger_key_file is None:
        # the database or a key is the data directory's: whoever may write there may put their
        # own in place (refused here, at start, not at the first submission that needs the KEK)
        check_private_dir(settings.data_dir, what="data directory")
    exercise_database = _exercise_database(settings, reset=exercise_reset)
    store = Store(
        settings.database_url(), sqlite_synchronous=settings.sqlite_synchronous, pool_size=settings.db_pool_size
    )
    analysis = AnalysisService(store, clock=clock, database=store.describe(), traffic=TrafficReader(store))
    scenarios = ScenarioService(store, clock=clock, on_change=analysis.invalidate)
    ledger = LedgerService(store, key_file=settings.ledger_key_path(), origin=settings.ledger_origin, clock=clock)
    ledger.origin  # noqa: B018 - named (and recorded, at the first start) before any entry is written
    exchange = build_exchange(settings, store=store, analysis=analysis, ledger=ledger, clock=clock)
    if exercise_database is not None and ledger.stored_count() == 0:
        # seeded just now (or a seeding cut short before this): its keys come without the live
        # ledger's entries registering them
        exchange.keys.ledger_seeded()
    return App(
        settings=settings,
        store=store,
        analysis=analysis,
        scenarios=scenarios,
        ledger=ledger,
        exchange=exchange,
        exercise_database=exercise_database,
    )


def _exercise_database(settings: Settings, *, reset: bool) -> ExerciseDatabase | None:
    """Seed (or find) the exercise's own database when exercise mode uses it.

    Raises:
        InvalidInput: a reset outside exercise mode or with an explicit database; no live
            database to seed from.
        StorageError: the exercise database cannot be seeded.
    """
    target = settings.exercise_database()
    if target is None:
        if reset:
            where = "the database given with --db" if settings.db else "a database outside exercise mode"
            raise InvalidInput(f"--exercise-reset seeds DATA_DIR/exercise.db afresh; it does not reset {where}")
        return None
    # a bad clock or what-if is refused before anything is seeded
    if settings.exercise_clock:
        parse_instant(settings.exercise_clock, "UTC")
    if settings.exercise_whatif is not None:
        read_file(settings.exercise_whatif)
    return open_exercise_database(target, live=settings.live_database(), reset=reset)


def build_exchange(
    settings: Settings,
    *,
    store: Store,
    analysis: AnalysisService,
    ledger: LedgerService,
    clock: Callable[[], datetime],
) -> Exchange:
    """Wire the exchange's use cases over ``store`` and ``ledger``.

    Raises:
        InvalidInput: a bad KEK setting, exercise clock, or an unreadable exercise what-if file.
    """
    start = parse_instant(settings.exercise_clock, "UTC") if settings.exercise_clock else None
    whatif_file = settings.exercise_whatif
    whatif_text = read_file(whatif_file) if whatif_file is not None else None
    whatif_name = whatif_file.name if whatif_file is not None else ""
    exchange_clock = ExchangeClock(system=clock, exercise_start=start, whatif_name=whatif_name)
    records = RecordCache(analysis, whatif_text=whatif_text, whatif_name=whatif_name)

    def known_parties() -> frozenset[str] | None:
        if store.summary() is None:
            return None
        return frozenset(records.record().parties)

    identity = IdentityService(store, clock=clock, known_parties=known_parties)
    context = ExchangeContext(
        store=store,
        committer=GroupCommitter(store, max_batch=settings.group_commit_max),
        ledger=ledger,
        identity=identity,
        clock=exchange_clock,
        records=records,
        kek=_kek_source(settings, may_create=lambda: ExchangeRepo.latest_sealed(store) is None),
        notifier=Notifier(),
        config=ExchangeConfig(
            consent_ttl=timedelta(hours=settings.consent_ttl_hours),
            sweep_seconds=settings.consent_sweep_seconds,
            stream_poll_seconds=settings.stream_poll_seconds,
            max_payload_chars=settings.max_body_bytes,
            key_registrations=settings.key_registrations_per_hour,
        ),
    )
    context.committer.on_begin = context.begin
    return Exchange(
        context=context,
        identity=identity,
        keys=KeyService(context),
        submissions=SubmissionService(context),
        consents=ConsentService(context),
        standing=StandingConsentService(context),
        deliveries=DeliveryService(context),
        incidents=IncidentService(context),
        operator=OperatorService(context),
        witnesses=WitnessService(context, ledger, clock=clock),
        listener=commit_listener(store.engine, context.notifier.publish),
    )


def _kek_source(settings: Settings, *, may_create: Callable[[], bool]) -> Callable[[], bytes]:
    """Where the key-encryption key comes from: the setting (checked now), or the data
    directory's ``exchange.kek`` (read, or created with mode 0600 on first use if
    ``may_create()``: never over a database that holds sealed reports).

    Raises:
        InvalidInput: the KEK setting is not base64 of 32 bytes.
    """
    if settings.kek is not None:
        key = parse_kek(settings.kek.get_secret_value())
        return lambda: key
    path = settings.data_dir / "exchange.kek"
    return lambda: load_or_create_kek(path, may_create=may_create)
