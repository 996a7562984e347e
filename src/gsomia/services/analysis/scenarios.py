"""Scenario use cases: validate a file, load it (all-or-nothing, idempotent), print the schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from gsomia.errors import Conflict, InvalidInput, ValidationFailed
from gsomia.scenario.loader import (
    LoadedScenario,
    bundled_scenarios,
    json_schema,
    parse_scenario,
    parse_scenario_document,
    read_file,
)
from gsomia.storage.store import LoadOutcome, Store, StoredEvent


class ScenarioStore(Protocol):
    """What loading needs from storage."""

    def load_scenario(self, **kwargs: Any) -> LoadOutcome:
        """Store a scenario in one transaction."""
        ...


def resolve(name_or_path: str) -> Path:
    """A bundled scenario's name, or a path to a scenario file.

    Raises:
        InvalidInput: if it is neither.
    """
    bundled = bundled_scenarios()
    if name_or_path in bundled:
        return bundled[name_or_path]
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.exists():
        what = "a folder" if path.is_dir() else "not a regular file"
        raise InvalidInput(f"{name_or_path!r} is {what}: give a scenario file (YAML) or a bundled name")
    raise InvalidInput(
        f"no scenario {name_or_path!r}: give a file path or a bundled name ({', '.join(bundled) or 'none'})"
    )


class ScenarioService:
    """Validate and load scenarios."""

    def __init__(
        self, store: Store, *, clock: Callable[[], datetime], on_change: Callable[[], None] = lambda: None
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_change = on_change

    @staticmethod
    def validate(name_or_path: str) -> LoadedScenario:
        """Parse and check a scenario.

        Raises:
            ValidationFailed: listing every problem with its file and line.
            InvalidInput: if the file cannot be read.
        """
        path = resolve(name_or_path)
        return parse_scenario(read_file(path), str(path))

    @staticmethod
    def schema() -> dict[str, Any]:
        """The JSON Schema of scenario files."""
        return json_schema()

    def load(self, name_or_path: str, *, replace: bool = False) -> tuple[LoadedScenario, LoadOutcome]:
        """Validate then store a scenario in one transaction.

        Raises:
            ValidationFailed: if the scenario has problems (nothing is written).
            Conflict: if the database holds another scenario and ``replace`` is false.
            StorageError: on a database failure (nothing is written).
        """
        loaded = self.validate(name_or_path)
        doc = loaded.document
        definitions = {k: v for k, v in doc.items() if k not in ("events", "reports", "provisions")}
        events = [
            StoredEvent(
                id=e.id,
                agreement=e.agreement,
                kind=str(e.kind),
                at=e.at,
                by=e.by,
                effective=e.effective,
                changes=_changes_doc(doc, e.id),
                note=e.note,
                source=e.source,
            )
            for e in loaded.record.events
        ]
        outcome = self._store.load_scenario(
            name=loaded.record.name,
            title=loaded.record.title,
            digest=loaded.digest,
            definitions=definitions,
            events=events,
            reports=doc.get("reports", []),
            provisions=doc.get("provisions", []),
            replace=replace,
            now=self._clock(),
            check=_holds_with_recorded_events,
        )
        if outcome.outcome != "unchanged":
            self._on_change()
        return loaded, outcome


def _holds_with_recorded_events(combined: dict[str, Any]) -> None:
    """The scenario with the events an operator recorded must still make one record: a changed
    scenario that contradicts them is refused, not stored to fail every later read.

    Raises:
        Conflict: naming the first contradiction; nothing is loaded.
    """
    try:
        parse_scenario_document(combined)
    except ValidationFailed as e:
        raise Conflict(
            f"this scenario contradicts the agreement events an operator recorded in this database ({e}); "
            "nothing was loaded: keep the scenario those events were recorded under, or load this one into "
            "another database (--db)"
        ) from None


def _changes_doc(doc: dict[str, Any], event_id: str) -> dict[str, Any] | None:
    for e in doc.get("events", []):
        if e.get("id") == event_id:
            changes = e.get("changes")
            return dict(changes) if changes else None
    return None
