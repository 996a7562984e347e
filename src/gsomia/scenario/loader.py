"""Read scenario and what-if files into domain values, reporting every problem with its line.

Loading is all-or-nothing: :func:`parse_scenario` either returns a complete
:class:`~gsomia.domain.record.Record` or raises :class:`~gsomia.errors.ValidationFailed`
listing every problem found (schema, cross-references, calendar and lifecycle). The YAML is
read with its line numbers by :mod:`gsomia.scenario.yamlfile`; the record is built and
cross-checked by :mod:`gsomia.scenario.record`.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from pydantic import ValidationError

from gsomia.domain.agreements import AgreementEvent, EventKind
from gsomia.domain.instants import parse_instant
from gsomia.domain.record import Record, WhatIf
from gsomia.errors import InvalidInput, Problem, ValidationFailed
from gsomia.scenario.model import ScenarioDoc, WhatIfDoc
from gsomia.scenario.record import build_event, build_record
from gsomia.scenario.yamlfile import Collector, Path_, pydantic_problems, read_yaml

MAX_FILE_BYTES = 16 * 1024 * 1024


def read_file(path: Path) -> str:
    """Read a scenario file as UTF-8 text, refusing oversized or binary input.

    Raises:
        InvalidInput: if it is not a regular file, cannot be read, is too large, or is not UTF-8.
    """
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise InvalidInput(f"{path}: {what}; give a YAML file")
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # never more, whatever the size said a moment ago
        if len(data) > MAX_FILE_BYTES:
            raise InvalidInput(f"{path}: over the {MAX_FILE_BYTES} byte limit for a scenario")
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read ({e.strerror})") from e


def digest_of(data: Any) -> str:
    """SHA-256 of the RFC 8785 canonical form of a parsed document."""
    return hashlib.sha256(rfc8785.dumps(data)).hexdigest()


@dataclass(frozen=True, slots=True)
class LoadedScenario:
    """A valid scenario: its record, the canonical document and its digest."""

    record: Record
    document: dict[str, Any]
    digest: str


def parse_scenario(text: str, file: str = "") -> LoadedScenario:
    """Parse and validate scenario text.

    Raises:
        ValidationFailed: listing every problem, each with file and line.
    """
    data, lines = read_yaml(text, file)
    return _parse_data(data, lines, file)


def _parse_data(data: Any, lines: dict[Path_, int], file: str, *, canonical: bool = True) -> LoadedScenario:
    col = Collector(file, lines, [])
    if not isinstance(data, dict):
        raise ValidationFailed(
            [Problem("a scenario is a YAML mapping with scenario, parties, agreements…", line=1, file=file)]
        )
    try:
        doc = ScenarioDoc.model_validate(data)
    except ValidationError as e:
        pydantic_problems(e, col)
        raise ValidationFailed(col.problems) from e
    record = build_record(doc, col)
    if record is None:
        raise ValidationFailed(col.problems)
    document = doc.model_dump(mode="json", by_alias=True, exclude_none=True)
    if canonical:
        return LoadedScenario(record, document, digest_of(document))
    # a stored document only needs an identity for caching, not the RFC 8785 digest
    quick = hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return LoadedScenario(record, document, quick)


def parse_scenario_document(document: dict[str, Any]) -> LoadedScenario:
    """Rebuild a scenario from its stored canonical document (no line numbers).

    Raises:
        ValidationFailed: if the stored document no longer validates.
    """
    return _parse_data(document, {}, "<stored scenario>", canonical=False)


def parse_whatif(text: str, record: Record, file: str = "") -> WhatIf:
    """Parse a what-if file against ``record``.

    Raises:
        ValidationFailed: listing every problem with its line.
    """
    data, lines = read_yaml(text, file)
    col = Collector(file, lines, [])
    try:
        doc = WhatIfDoc.model_validate(data if data is not None else {})
    except ValidationError as e:
        pydantic_problems(e, col)
        raise ValidationFailed(col.problems) from e
    added = []
    for i, event_doc in enumerate(doc.add):
        ev = build_event(col, ("add", i), event_doc, dict(record.agreements), record.timezone)
        if ev is not None:
            added.append(ev)
    known = {e.id for e in record.events}
    for i, d in enumerate(doc.drop):
        if d not in known:
            col.add(("drop", i), f"no recorded event {d!r} to drop")
    if col.problems:
        raise ValidationFailed(col.problems)
    return WhatIf(doc.name, tuple(added), tuple(doc.drop))


_SPEC_KINDS = {k.value for k in EventKind}


def parse_event_spec(spec: str, record: Record, n: int = 1) -> AgreementEvent:
    """Parse ``'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]'``.

    Dates are read in the agreement's zone. The event gets the id ``whatif-N``.

    Raises:
        InvalidInput: if the text does not follow that form.
        UnknownEntity: if the agreement or party is unknown.
    """
    words = spec.split()
    form = "'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]'"
    if len(words) < 3:
        raise InvalidInput(f"--add-event {spec!r}: expected {form}")
    agreement = record.agreement(words[0])
    kind = words[1]
    if kind not in _SPEC_KINDS:
        raise InvalidInput(f"--add-event {spec!r}: KIND must be one of {', '.join(sorted(_SPEC_KINDS))}")
    at = parse_instant(words[2], agreement.timezone)
    by = effective = None
    rest = words[3:]
    while rest:
        if len(rest) < 2 or rest[0] not in ("by", "effective"):
            raise InvalidInput(f"--add-event {spec!r}: expected {form}")
        if rest[0] == "by":
            by = record.party(rest[1]).id
            if by not in agreement.parties:
                raise InvalidInput(f"--add-event {spec!r}: {by} is not a party to {agreement.id}")
        else:
            effective = parse_instant(rest[1], agreement.timezone)
        rest = rest[2:]
    return AgreementEvent(
        id=f"whatif-{n}",
        agreement=agreement.id,
        kind=EventKind(kind),
        at=at,
        by=by,
        effective=effective,
        hypothetical=True,
        note=f"hypothetical: {spec}",
    )


def bundled_scenarios() -> dict[str, Path]:
    """Scenario files shipped in the package, by name."""
    folder = Path(__file__).parent / "data"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files."""
    schema = ScenarioDoc.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://gsomia.invalid/schema/scenario.json"
    return schema
