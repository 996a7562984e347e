"""The composition root: settings in, wired services out. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gsomia.services.analysis import AnalysisService
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

    def close(self) -> None:
        """Release the database."""
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
    return App(settings=settings, store=store, analysis=analysis, scenarios=scenarios)
