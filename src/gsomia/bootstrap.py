"""The composition root: settings in, wired services out. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gsomia.services.analysis import AnalysisService
from gsomia.services.exchange_setup import Exchange, ExchangeOptions, build_exchange
from gsomia.services.ledger import DEFAULT_ORIGIN, LedgerService
from gsomia.services.scenarios import ScenarioService
from gsomia.storage.store import Store


def default_data_dir() -> Path:
    """The user's data directory for gsomia (``~/.local/share/gsomia`` on Linux)."""
    return Path(platformdirs.user_data_dir("gsomia", appauthor=False))


class Settings(BaseSettings):
    """Settings from the environment (``GSOMIA_*``) and command-line options."""

    model_config = SettingsConfigDict(env_prefix="GSOMIA_", extra="ignore")

    db: str | None = Field(default=None, description="database URL; default: SQLite in the data directory")
    data_dir: Path = Field(default_factory=default_data_dir)
    sqlite_synchronous: str = Field(default="NORMAL", pattern="^(OFF|NORMAL|FULL|EXTRA)$")
    ledger_key_file: Path | None = Field(
        default=None, description="checkpoint key; default: DATA_DIR/exchange-ledger.key"
    )
    ledger_origin: str = Field(default=DEFAULT_ORIGIN, description="the ledger's origin line and signed-note key name")
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
    consent_ttl_hours: float = Field(
        default=72.0, gt=0, description="a consent request expires after this much exchange time"
    )
    consent_sweep_seconds: float = Field(default=30.0, gt=0, description="how often expired consent requests are swept")
    group_commit_max: int = Field(default=256, ge=1, description="most write actions committed in one transaction")

    def ledger_key_path(self) -> Path:
        """The exchange's checkpoint key file (created with mode 0600 on first use)."""
        return self.ledger_key_file or self.data_dir / "exchange-ledger.key"

    def database_url(self) -> str:
        """The database URL to use."""
        return self.db or f"sqlite:///{self.data_dir / 'gsomia.db'}"


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

    def close(self) -> None:
        """Finish queued writes, then release the database."""
        self.exchange.close()
        self.store.close()


def build(settings: Settings | None = None, *, clock: Callable[[], datetime] = system_clock) -> App:
    """Build the application from ``settings`` (default: from the environment).

    Raises:
        InvalidInput: for a bad database URL.
        StorageError: if the database cannot be opened or migrated.
    """
    settings = settings or Settings()
    store = Store(settings.database_url(), sqlite_synchronous=settings.sqlite_synchronous)
    analysis = AnalysisService(store, clock=clock, database=store.describe())
    scenarios = ScenarioService(store, clock=clock, on_change=analysis.invalidate)
    ledger = LedgerService(store, key_file=settings.ledger_key_path(), origin=settings.ledger_origin, clock=clock)
    options = ExchangeOptions(
        data_dir=settings.data_dir,
        kek=settings.kek.get_secret_value() if settings.kek else None,
        exercise_clock=settings.exercise_clock,
        exercise_whatif=settings.exercise_whatif,
        consent_ttl_hours=settings.consent_ttl_hours,
        consent_sweep_seconds=settings.consent_sweep_seconds,
        group_commit_max=settings.group_commit_max,
    )
    exchange = build_exchange(options, store=store, analysis=analysis, ledger=ledger, clock=clock)
    return App(settings=settings, store=store, analysis=analysis, scenarios=scenarios, ledger=ledger, exchange=exchange)
