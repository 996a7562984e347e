"""STIX 2.1 objects ⇄ gsomia reports and national markings (docs/interop.md §2–§4).

gsomia's national marking travels as a STIX 2.1 ``marking-definition`` carrying the
property-extension :data:`NATIONAL_MARKING_EXTENSION` (STIX 2.1 §7.3, extension definitions),
whose JSON Schema is ``docs/interop/gsomia-national-marking.schema.json``:

- on what a party sends: the party, a level of that party's own ladder and its caveats
  (REL TO, NOFORN, ORCON);
- on what a party received: the same in the recipient's own ladder (Japan–Korea GSOMIA
  Art. 4.2), plus the originator's marking, the agreement that released it, and the delivery's
  id and ledger index.

TLP 2.0 markings (their fixed ids, STIX 2.1 §7.2.1.4 and the TLP 2.0 extension) and ISA ACS 3.0
markings (``extension-definition--3a65884d-…``) are read as caveats where they map; nothing is
sent on a guess (docs/design.md §3 rule 7): an object whose national marking cannot be read is
refused with the reason, never sent unmarked.

Pure: no clock, no I/O. Instants come in as parameters.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import string
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gsomia import jsontext
from gsomia.domain.parties import PARTY_ID
from gsomia.domain.topics import TOPIC
from gsomia.errors import InvalidInput

__all__ = [
    "ACS_3_0_EXTENSION",
    "EXTENSION_CREATED",
    "GSOMIA_IDENTITY",
    "NATIONAL_MARKING_EXTENSION",
    "SCHEMA_PATH",
    "STIX_MEDIA_TYPE",
    "TLP_1_0",
    "TLP_2_0",
    "TLP_2_0_CREATED",
    "TLP_2_0_EXTENSION",
    "DeliveredMarking",
    "EnvelopePlan",
    "MarkingPolicy",
    "NationalMarking",
    "Refusal",
    "ReportGroup",
    "TopicMap",
    "TopicRule",
    "delivery_marking_id",
    "delivery_objects",
    "extension_definition",
    "identifier_problem",
    "national_marking_definition",
    "national_marking_id",
    "parse_timestamp",
    "party_identity",
    "plan_envelope",
    "read_bundle",
    "stix_timestamp",
    "tlp_2_0_definition",
    "version_of",
]

NATIONAL_MARKING_EXTENSION = "extension-definition--558995fd-2ea2-4a15-bfd4-8f0a691d1343"
"""The fixed id of gsomia's national marking extension. It never changes: a change to the
extension's schema comes with a new extension id (STIX 2.1 §7.3: extension definitions are
versioned by their ``version``, and consumers key on the id)."""

GSOMIA_IDENTITY = "identity--28c790ec-8585-402e-9b7b-e602e4a0529c"
"""The identity that publishes the extension definition (its ``created_by_ref``)."""

EXTENSION_CREATED = "2026-12-01T00:00:00.000Z"
"""``created`` and ``modified`` of the extension definition and of the fixed identities."""

SCHEMA_PATH = "docs/interop/gsomia-national-marking.schema.json"
"""Where the extension's JSON Schema is published in the distribution."""

STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
"""The content type of a report whose payload is a STIX 2.1 bundle."""

_ID_NAMESPACE = uuid.UUID("77095941-9c33-464f-af96-317be69edab3")
"""Namespace of the deterministic (UUIDv5) ids gsomia gives the objects it makes."""

TLP_2_0_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_2_0 = {
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": "clear",
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": "green",
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": "amber",
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": "amber+strict",
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": "red",
}
"""The fixed ids of the TLP 2.0 marking definitions and their labels."""
TLP_2_0_CREATED = "2022-10-01T00:00:00.000Z"
"""``created`` of every TLP 2.0 marking definition (oasis-open/cti-stix-common-objects)."""

TLP_1_0 = {
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": "white",
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": "green",
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": "amber",
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": "red",
}
"""The predefined TLP 1.0 marking definitions of STIX 2.1 §7.2.1.4."""

_TLP_ORCON = frozenset({"red", "amber+strict"})
"""TLP labels read as ORCON: TLP:RED ("for the eyes and ears of individual recipients only")
and TLP:AMBER+STRICT (no disclosure outside the recipient's organisation) leave every further
release to the originator, which is what ORCON says (docs/interop.md §2.3). TLP:AMBER, GREEN,
CLEAR and WHITE add nothing to what the agreement's third-party rule already requires."""

ACS_3_0_EXTENSION = "extension-definition--3a65884d-005a-4290-8335-cb2d778a83ce"
"""ISA ACS 3.0 marking extension (oasis-open/cti-stix-common-objects)."""

_STIX_ID = re.compile(r"^([a-z][a-z0-9-]{0,249})--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TIMESTAMP = re.compile(
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<frac>[0-9]{1,9}))?(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})$"
)
_STIX_CREATED = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3,9}Z")
"""``created`` and ``modified`` as STIX 2.1 writes them (§3.2, and its timestamp type): UTC,
``Z``, at least milliseconds."""
MAX_OBJECTS_PER_REPORT = 500
"""At most this many objects in one report; a larger group is split."""
MAX_PAYLOAD_BYTES = 600_000
"""At most this many payload bytes in one report (the exchange takes 1 MiB bodies, and base64
adds a third)."""


# --- timestamps and ids ---------------------------------------------------------------------------


def stix_timestamp(at: datetime) -> str:
    """``at`` as a STIX timestamp (UTC, ``Z``; milliseconds, or microseconds when they are not
    whole milliseconds).

    Raises:
        InvalidInput: ``at`` is naive.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("a STIX timestamp needs an aware instant")
    u = at.astimezone(UTC)
    base = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond % 1000:
        return f"{base}.{u.microsecond:06d}Z"
    return f"{base}.{u.microsecond // 1000:03d}Z"


def parse_timestamp(text: object, what: str = "timestamp") -> datetime:
    """Read an RFC 3339 timestamp with an offset (``2019-11-22T01:00:00.000Z``) as an aware UTC
    instant, to the microsecond (finer digits are dropped).

    Raises:
        InvalidInput: ``text`` is not such a timestamp.
    """
    m = _TIMESTAMP.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidInput(f"{what}: {text!r} is not an RFC 3339 timestamp such as 2019-11-22T01:00:00.000Z")
    frac = (m["frac"] or "").ljust(6, "0")[:6]
    tz = "+00:00" if m["tz"] == "Z" else m["tz"]
    try:
        return datetime.fromisoformat(f"{m['date']}T{m['time']}.{frac}{tz}").astimezone(UTC)
    except (ValueError, OverflowError) as e:  # 2024-02-30; 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise InvalidInput(f"{what}: {text!r} is not a valid instant") from e


def _stable_id(kind: str, *parts: str) -> str:
    """A deterministic id in the UUIDv4 layout that STIX 2.1 §2.9 asks of SDOs and SMOs: the
    UUIDv5 name-based digest, with the version and variant bits of version 4."""
    digest = uuid.uuid5(_ID_NAMESPACE, chr(31).join(parts)).bytes
    return f"{kind}--{uuid.UUID(bytes=digest, version=4)}"


def _canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def version_of(obj: Mapping[str, Any]) -> str | None:
    """The TAXII version of a STIX object (TAXII 2.1 §3.4.1): ``modified``, else ``created``,
    else None (an SCO: not versioned)."""
    for key in ("modified", "created"):
        value = obj.get(key)
        if isinstance(value, str):
            return value
    return None


# --- the national marking -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class NationalMarking:
    """A party's national marking: a level of its own ladder and its caveats (docs/design.md §2)."""

    party: str
    level: str
    rel_to: tuple[str, ...] | None = None
    noforn: bool = False
    orcon: bool = False

    def __post_init__(self) -> None:
        if not PARTY_ID.fullmatch(self.party):
            raise InvalidInput(f"marking party {self.party!r} is not a party id")
        if not self.level.strip() or len(self.level) > 64:
            raise InvalidInput("a marking needs a level of 1 to 64 characters")
        if self.rel_to is not None:
            if not all(isinstance(p, str) and PARTY_ID.fullmatch(p) for p in self.rel_to):
                raise InvalidInput("REL TO lists party ids only")
            # Sorted and without duplicates: the exchange stores rel_to so (docs/protocol.md §3.5).
            object.__setattr__(self, "rel_to", tuple(sorted(set(self.rel_to))))

    def caveats(self) -> dict[str, Any]:
        """The caveats as the report object carries them (docs/protocol.md §3.1)."""
        return {
            "rel_to": list(self.rel_to) if self.rel_to is not None else None,
            "noforn": self.noforn,
            "orcon": self.orcon,
        }

    def label(self) -> str:
        """A one-line label: ``JPN 極秘 REL TO KOR, USA ORCON``."""
        parts = [self.party, self.level]
        if self.rel_to is not None:
            parts.append("REL TO " + ", ".join(self.rel_to))
        if self.noforn:
            parts.append("NOFORN")
        if self.orcon:
            parts.append("ORCON")
        return " ".join(parts)

    def narrowed(
        self, *, rel_to: Iterable[str] | None = None, noforn: bool = False, orcon: bool = False
    ) -> NationalMarking:
        """This marking with further caveats: the most restrictive of both wins (a REL TO list
        intersects, NOFORN and ORCON add)."""
        combined = self.rel_to
        if rel_to is not None:
            extra = set(rel_to)
            combined = tuple(sorted(extra if combined is None else set(combined) & extra))
        return NationalMarking(
            party=self.party,
            level=self.level,
            rel_to=combined,
            noforn=self.noforn or noforn,
            orcon=self.orcon or orcon,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveredMarking:
    """What a recipient's node knows about a delivery's marking (docs/protocol.md §4.3): its own
    level, the originator's marking, and the release behind it."""

    recipient: str
    level: str
    originator: NationalMarking
    common_level: str | None
    banner: str
    agreement: str | None
    delivery: str
    ledger_index: int
    purpose: str = "direct"
    via: str | None = None
    exercise: bool = False


def extension_definition() -> dict[str, Any]:
    """The ``extension-definition`` object of gsomia's national marking (STIX 2.1 §7.3)."""
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": NATIONAL_MARKING_EXTENSION,
        "created_by_ref": GSOMIA_IDENTITY,
        "created": EXTENSION_CREATED,
        "modified": EXTENSION_CREATED,
        "name": "gsomia national marking",
        "description": (
            "A national classification marking under security agreements between nations: the party, a level "
            "of that party's own ladder and its caveats (REL TO, NOFORN, ORCON); on received objects also the "
            "originator's marking, the agreement that released it, and the delivery's id and ledger index."
        ),
        "schema": f"JSON Schema (draft 2020-12) published with gsomia as {SCHEMA_PATH}",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def gsomia_identity() -> dict[str, Any]:
    """The identity that publishes the extension definition."""
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": GSOMIA_IDENTITY,
        "created": EXTENSION_CREATED,
        "modified": EXTENSION_CREATED,
        "name": "gsomia",
        "identity_class": "system",
    }


def party_identity(party: str, name: str | None = None) -> dict[str, Any]:
    """The identity of a party (a nation or an organisation), with an id fixed by its party id."""
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": _stable_id("identity", "party", party),
        "created": EXTENSION_CREATED,
        "modified": EXTENSION_CREATED,
        "name": name or party,
        "identity_class": "organization",
        "sectors": ["government-national", "defense"],
    }


def _stix_caveats(marking: NationalMarking) -> dict[str, Any]:
    """The caveats as the extension carries them. STIX has no null and forbids empty lists
    (STIX 2.1 §3.1, §2.8): no REL TO list is an absent ``rel_to``, and a REL TO list that allows
    no other party is what NOFORN says, so it is written as ``noforn``."""
    out: dict[str, Any] = {"noforn": marking.noforn, "orcon": marking.orcon}
    if marking.rel_to is not None:
        if marking.rel_to:
            out["rel_to"] = list(marking.rel_to)
        else:
            out["noforn"] = True
    return out


def _marking_extension(marking: NationalMarking) -> dict[str, Any]:
    return {
        "extension_type": "property-extension",
        "party": marking.party,
        "level": marking.level,
        "caveats": _stix_caveats(marking),
    }


def national_marking_id(ext: Mapping[str, Any]) -> str:
    """The id a national marking-definition whose extension member is ``ext`` must have: fixed
    by that member exactly as it is carried, every member it holds and none it leaves out (no
    default is filled in), as docs/interop.md §2.1 spells out for independent implementations.

    The UUIDv5 (RFC 9562) in the namespace ``77095941-9c33-464f-af96-317be69edab3`` of the name
    ``national``, U+001F and the member as canonical JSON (keys sorted, no whitespace,
    non-ASCII characters as themselves, UTF-8), with the version and variant bits of a version
    4 UUID, as STIX 2.1 §2.9 asks of an id."""
    return _stable_id("marking-definition", "national", _canonical(ext))


def national_marking_definition(marking: NationalMarking) -> dict[str, Any]:
    """The ``marking-definition`` of an originator's national marking. Its id is fixed by its
    content (:func:`national_marking_id`), so the same marking is always the same object
    (marking definitions are never versioned, STIX 2.1 §7.2.1)."""
    ext = _marking_extension(marking)
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": national_marking_id(ext),
        "created": EXTENSION_CREATED,
        "name": marking.label(),
        "extensions": {NATIONAL_MARKING_EXTENSION: ext},
    }


def tlp_2_0_definition(marking_id: str) -> dict[str, Any]:
    """The TLP 2.0 ``marking-definition`` of the fixed id ``marking_id`` (a key of
    :data:`TLP_2_0`), as the standard publishes it (oasis-open/cti-stix-common-objects,
    ``extension-definition-specifications/tlp-2.0``): its content is fixed with its id.

    Raises:
        KeyError: ``marking_id`` is not a TLP 2.0 id.
    """
    label = TLP_2_0[marking_id]
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": TLP_2_0_CREATED,
        "name": f"TLP:{label.upper()}",
        "extensions": {TLP_2_0_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": label}},
    }


def delivery_marking_id(delivery: str) -> str:
    """The id of the ``marking-definition`` a recipient's node makes for the delivery ``delivery``."""
    return _stable_id("marking-definition", "delivery", delivery)


def delivered_marking_definition(delivered: DeliveredMarking, *, created: datetime) -> dict[str, Any]:
    """The ``marking-definition`` of a delivery in the recipient's own ladder (Art. 4.2),
    created by the originating party's identity."""
    o = delivered.originator
    # Members the node does not know are left out: STIX has no null (STIX 2.1 §3.1).
    record: dict[str, Any] = {
        "delivery_id": delivered.delivery,
        "ledger_index": delivered.ledger_index,
        "purpose": delivered.purpose,
    }
    if delivered.via is not None:
        record["via"] = delivered.via
    ext: dict[str, Any] = {
        "extension_type": "property-extension",
        "party": delivered.recipient,
        "level": delivered.level,
        "caveats": _stix_caveats(o),
        "originator_marking": {"party": o.party, "level": o.level, "caveats": _stix_caveats(o)},
        "banner": delivered.banner,
        "delivery": record,
        "exercise": delivered.exercise,
    }
    if delivered.common_level is not None:
        ext["common_level"] = delivered.common_level
    if delivered.agreement is not None:
        ext["agreement"] = delivered.agreement
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": delivery_marking_id(delivered.delivery),
        "created": stix_timestamp(created),
        "created_by_ref": party_identity(o.party)["id"],
        "name": ("EXERCISE " if delivered.exercise else "") + delivered.banner,
        "extensions": {NATIONAL_MARKING_EXTENSION: ext},
    }


# --- reading markings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkingPolicy:
    """How a node reads the markings on what its users send.

    Attributes:
        party: the node's party: it sends only its own reports.
        levels: the party's ladder (level names); empty to leave the check to the exchange.
        acs_levels: ISA ACS 3.0 ``control_set.classification`` (U, C, S, TS) to a level of the
            party's ladder, for the classifications that map; an ACS marking whose
            classification is not listed gives no level.
    """

    party: str
    levels: tuple[str, ...] = ()
    acs_levels: Mapping[str, str] = field(default_factory=dict)


class Refusal(InvalidInput):
    """An object that will not be sent, and why (it goes into the status resource's failures)."""

    def __init__(self, object_id: str, version: str | None, reason: str) -> None:
        self.object_id = object_id
        self.version = version
        self.reason = reason
        super().__init__(f"{object_id}: {reason}" if object_id else reason)


@dataclass(frozen=True, slots=True)
class _Read:
    """What one marking definition says, as far as gsomia reads it."""

    level: str | None = None  # a level of the policy party's ladder
    party: str | None = None  # the party a national marking names
    rel_to: tuple[str, ...] | None = None
    noforn: bool = False
    orcon: bool = False
    received: bool = False  # a delivered (translated) marking, not an originator's


def _read_definition(defn: Mapping[str, Any], policy: MarkingPolicy) -> _Read | None:
    """What ``defn`` contributes, or None if gsomia reads nothing from it (a statement).

    Raises:
        InvalidInput: a gsomia or ACS extension that does not have the published shape.
    """
    mid = defn.get("id")
    if mid in TLP_2_0 or mid in TLP_1_0:
        label = TLP_2_0.get(str(mid)) or TLP_1_0[str(mid)]
        return _Read(orcon=label in _TLP_ORCON)
    extensions = defn.get("extensions")
    if not isinstance(extensions, Mapping):
        return None
    ext = extensions.get(NATIONAL_MARKING_EXTENSION)
    if ext is not None:
        read = _read_national(ext)
        misnamed = None if read.received else _misnamed(defn)
        if misnamed is not None:
            raise InvalidInput(misnamed)
        return read
    tlp = extensions.get(TLP_2_0_EXTENSION)
    if isinstance(tlp, Mapping) and isinstance(tlp.get("tlp_2_0"), str):
        return _Read(orcon=str(tlp["tlp_2_0"]).lower() in _TLP_ORCON)
    acs = extensions.get(ACS_3_0_EXTENSION)
    if acs is not None:
        return _read_acs(acs, policy)
    return None


def _misnamed(defn: Mapping[str, Any]) -> str | None:
    """Why every recipient would leave out the national marking-definition ``defn`` (an
    originator's, docs/interop.md §3.2), or None if none would: its id is not the one its
    content fixes (:func:`national_marking_id`), or it carries a member only a recipient's node
    writes. The objects it marks would arrive without it, so it is refused instead, naming the
    id it needs: a marking minted by hand (a random id, as MISP or OpenCTI give, or content
    without a member the id was derived with) is the usual case. Neither a delivery's marking
    (with ``originator_marking``) nor one that does not read is for this check: what they mark
    is refused as received, or with what does not read."""
    extensions = defn.get("extensions")
    ext = extensions.get(NATIONAL_MARKING_EXTENSION) if isinstance(extensions, Mapping) else None
    if not isinstance(ext, Mapping) or "originator_marking" in ext:
        return None
    try:
        _read_national(ext)
    except InvalidInput:
        return None
    written = sorted(_RECEIVED_MEMBERS.intersection(ext))
    if written:
        return (
            f"a national marking carrying {', '.join(written)} (members only a recipient's node writes) is left "
            "out by every recipient: leave them out"
        )
    expected = national_marking_id(ext)
    if defn.get("id") == expected:
        return None
    return (
        f"a national marking's id is fixed by its content (docs/interop.md §2.1): for this content it is "
        f"{expected}, not {defn.get('id')}; recipients leave a national marking under any other id out"
    )


def _read_national(ext: object) -> _Read:
    if not isinstance(ext, Mapping):
        raise InvalidInput("the gsomia marking extension is not an object")
    party, level, caveats = ext.get("party"), ext.get("level"), ext.get("caveats", {})
    if not isinstance(party, str) or not PARTY_ID.fullmatch(party):
        raise InvalidInput("the gsomia marking names no party id")
    if not isinstance(level, str) or not level.strip():
        raise InvalidInput("the gsomia marking names no level")
    if not isinstance(caveats, Mapping):
        raise InvalidInput("the gsomia marking's caveats are not an object")
    rel_to = caveats.get("rel_to")
    if rel_to is not None and not (
        isinstance(rel_to, list) and all(isinstance(p, str) and PARTY_ID.fullmatch(p) for p in rel_to)
    ):
        raise InvalidInput("the gsomia marking's rel_to is not a list of party ids (such as KOR)")
    noforn, orcon = caveats.get("noforn", False), caveats.get("orcon", False)
    if not isinstance(noforn, bool) or not isinstance(orcon, bool):
        raise InvalidInput("the gsomia marking's noforn and orcon are not booleans")
    return _Read(
        level=level,
        party=party,
        rel_to=tuple(rel_to) if rel_to is not None else None,
        noforn=noforn,
        orcon=orcon,
        received="originator_marking" in ext,
    )


def _read_acs(ext: object, policy: MarkingPolicy) -> _Read:
    """ISA ACS 3.0: ``control_set.classification`` through the node's mapping,
    ``permitted_nationalities`` as REL TO, ``formal_determination`` NF as NOFORN and a
    ``further_sharing`` rule that denies as ORCON (the originator keeps every further release)."""
    if not isinstance(ext, Mapping) or not isinstance(ext.get("control_set"), Mapping):
        raise InvalidInput("the ISA ACS 3.0 marking has no control_set")
    cs: Mapping[str, Any] = ext["control_set"]
    classification = cs.get("classification")
    level = policy.acs_levels.get(classification) if isinstance(classification, str) else None
    # A member that is there but not of the published shape is refused, never read as no
    # caveat: "KOR" for ["KOR"] would otherwise release to every party (deny rather than guess).
    nationalities = _acs_list(cs, "permitted_nationalities", str)
    rel_to: tuple[str, ...] | None = None
    if nationalities is not None:
        # GENC trigraphs are the ISO 3166 alpha-3 codes gsomia's party ids use.
        unknown = [n for n in nationalities if not PARTY_ID.fullmatch(n)]
        if unknown:
            raise InvalidInput(f"the ISA ACS 3.0 permitted_nationalities {unknown[:3]} are not country trigraphs")
        rel_to = tuple(nationalities)
    determinations = _acs_list(cs, "formal_determination", str)
    noforn = determinations is not None and "NF" in determinations
    sharing = _acs_list(ext, "further_sharing", Mapping)
    orcon = sharing is not None and any(rule.get("rule_effect") == "deny" for rule in sharing)
    return _Read(level=level, party=policy.party if level else None, rel_to=rel_to, noforn=noforn, orcon=orcon)


def _acs_list(holder: Mapping[str, Any], name: str, kind: type) -> list[Any] | None:
    """The ISA ACS 3.0 list member ``name`` (None when absent).

    Raises:
        InvalidInput: it is there, and not a list of ``kind``.
    """
    value = holder.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        what = "strings" if kind is str else "objects"
        raise InvalidInput(f"the ISA ACS 3.0 marking's {name} is not a list of {what}")
    return value


def _object_marking(
    obj: Mapping[str, Any],
    definitions: Mapping[str, Mapping[str, Any]],
    policy: MarkingPolicy,
    known: dict[tuple[str, ...], NationalMarking | str] | None = None,
) -> tuple[NationalMarking, tuple[str, ...]]:
    """The national marking of ``obj`` and the ids of the marking definitions it references.

    ``known`` keeps what a list of references reads as (a marking, or why it cannot be sent)
    for the other objects of the same envelope: an envelope's objects mostly reference the
    same definitions, and what they say does not depend on the object.

    Raises:
        Refusal: the object cannot be sent under a national marking, with the reason.
    """
    oid, version = str(obj.get("id")), version_of(obj)
    for gm in obj.get("granular_markings") or ():
        ref = gm.get("marking_ref") if isinstance(gm, Mapping) else None
        defn = definitions.get(ref) if isinstance(ref, str) else None
        if defn is not None and NATIONAL_MARKING_EXTENSION in (defn.get("extensions") or {}):
            raise Refusal(
                oid,
                version,
                "a national marking applies to whole objects: put it in object_marking_refs, not granular_markings",
            )
    refs = obj.get("object_marking_refs") or []
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise Refusal(oid, version, "object_marking_refs is not a list of marking-definition ids")
    key = tuple(refs)
    read = known.get(key) if known is not None else None
    if read is None:
        read = _refs_marking(key, definitions, policy)
        if known is not None:
            known[key] = read
    if isinstance(read, str):
        raise Refusal(oid, version, read)
    return read, key


def _refs_marking(
    refs: tuple[str, ...], definitions: Mapping[str, Mapping[str, Any]], policy: MarkingPolicy
) -> NationalMarking | str:
    """The national marking that ``refs`` (an object's ``object_marking_refs``) give, or the
    reason an object referencing them cannot be sent."""
    reads: list[_Read] = []
    for ref in refs:
        if ref in TLP_2_0 or ref in TLP_1_0:
            read = _read_definition({"id": ref}, policy)
        else:
            defn = definitions.get(ref)
            if defn is None:
                return f"object_marking_refs names {ref}, which is neither in the envelope nor sent before"
            try:
                read = _read_definition(defn, policy)
            except InvalidInput as e:
                return f"{ref}: {e}"
        if read is not None:
            reads.append(read)
    national = [r for r in reads if r.level is not None]
    if any(r.received for r in national):
        return (
            "this object carries the marking of a delivery this party received; received information is not "
            "sent on (third-party rule, docs/design.md §3 rule 6)"
        )
    if not national:
        return (
            f"no national marking: reference a marking-definition with the extension {NATIONAL_MARKING_EXTENSION} "
            f"(party {policy.party}, a level of its ladder) in object_marking_refs; nothing is sent unmarked"
        )
    parties = {r.party for r in national}
    if parties != {policy.party}:
        other = ", ".join(sorted(p for p in parties if p and p != policy.party))
        return f"marked as {other}'s information; this node sends only {policy.party}'s own reports"
    levels = {r.level for r in national}
    if len(levels) > 1:
        return "two national markings name different levels: " + ", ".join(sorted(str(lv) for lv in levels))
    level = str(levels.pop())
    if policy.levels and level not in policy.levels:
        return f"{level!r} is not a level of {policy.party}'s ladder ({', '.join(policy.levels)})"
    try:
        marking = NationalMarking(party=policy.party, level=level)
        for r in reads:
            marking = marking.narrowed(rel_to=r.rel_to, noforn=r.noforn, orcon=r.orcon)
    except InvalidInput as e:  # a caveat no check above foresaw: the object is refused, with why
        return str(e)
    return marking


# --- topics ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicRule:
    """One rule of a topic mapping: objects of a STIX ``type``, or carrying a ``label``, go to
    ``topic``. A rule with both needs both."""

    topic: str
    type: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not TOPIC.fullmatch(self.topic):
            raise InvalidInput(f"topic mapping: {self.topic!r} is not a topic")
        if self.type is None and self.label is None:
            raise InvalidInput(f"topic mapping rule for {self.topic}: give a type, a label or both")

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """True if ``obj`` falls under this rule."""
        if self.type is not None and obj.get("type") != self.type:
            return False
        if self.label is not None:
            labels = obj.get("labels")
            return isinstance(labels, list) and self.label in labels
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicMap:
    """How a node decides the topic of a STIX object: a custom property on the object first
    (``x_gsomia_topic`` by default), then the first rule that matches, then ``default``."""

    rules: tuple[TopicRule, ...] = ()
    property: str | None = "x_gsomia_topic"
    default: str | None = None

    def __post_init__(self) -> None:
        if self.default is not None and not TOPIC.fullmatch(self.default):
            raise InvalidInput(f"topic mapping: default {self.default!r} is not a topic")

    @classmethod
    def from_config(cls, doc: Mapping[str, Any]) -> TopicMap:
        """A topic map from its configuration: ``{"property", "rules": [{"type", "label",
        "topic"}], "default"}``.

        Raises:
            InvalidInput: the configuration does not have that shape.
        """
        unknown = set(doc) - {"property", "rules", "default"}
        if unknown:
            raise InvalidInput(f"topic mapping: unknown member(s) {', '.join(sorted(unknown))}")
        rules = doc.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
            raise InvalidInput("topic mapping: rules is a list of {type, label, topic}")
        built = []
        for r in rules:
            extra = set(r) - {"type", "label", "topic"}
            if extra:
                raise InvalidInput(f"topic mapping rule: unknown member(s) {', '.join(sorted(extra))}")
            built.append(TopicRule(topic=str(r.get("topic", "")), type=r.get("type"), label=r.get("label")))
        prop = doc.get("property", "x_gsomia_topic")
        default = doc.get("default")
        return cls(rules=tuple(built), property=prop if isinstance(prop, str) else None, default=default)

    def topic_for(self, obj: Mapping[str, Any]) -> str | None:
        """The topic of ``obj``, or None when nothing decides it."""
        if self.property is not None:
            value = obj.get(self.property)
            if isinstance(value, str) and TOPIC.fullmatch(value):
                return value
        for rule in self.rules:
            if rule.matches(obj):
                return rule.topic
        return self.default


# --- planning an envelope -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportGroup:
    """Objects that travel as one report: one national marking, one topic."""

    report_id: str
    marking: NationalMarking
    topic: str
    objects: tuple[Mapping[str, Any], ...]
    definitions: tuple[Mapping[str, Any], ...]
    payload: bytes
    texts: tuple[str, ...] = ()
    """Each of ``objects`` as the payload carries it (compact JSON), in the same order; empty
    when not known."""

    def members(self) -> tuple[tuple[str, str | None], ...]:
        """``(id, version)`` of each data object of the group."""
        return tuple((str(o["id"]), version_of(o)) for o in self.objects)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvelopePlan:
    """What becomes of a POSTed envelope: report groups, marking definitions recorded, refusals."""

    groups: tuple[ReportGroup, ...]
    definitions: tuple[Mapping[str, Any], ...]
    refused: tuple[Refusal, ...]


def identifier_problem(obj: object) -> str | None:
    """Why ``obj`` has no STIX identifier of its own type (``type--UUID``, STIX 2.1 §2.9), or
    None when it has one. A TAXII status resource names every object it reports on by such an
    identifier (TAXII 2.1 §4.3.1, status-details ``id``)."""
    if not isinstance(obj, Mapping):
        return "is not a JSON object"
    oid, kind = obj.get("id"), obj.get("type")
    if not isinstance(oid, str) or not isinstance(kind, str):
        return "has no string type and id"
    m = _STIX_ID.fullmatch(oid)
    if m is None or m.group(1) != kind:
        return f"has the id {oid[:300]!r}, not a STIX identifier of its type {kind[:100]!r} (type--UUID)"
    return None


def _check_object(obj: object) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise Refusal("", None, "not a JSON object")
    oid = obj.get("id")
    kind = obj.get("type")
    if not isinstance(oid, str) or not isinstance(kind, str):
        raise Refusal(str(oid or ""), None, "a STIX object needs a type and an id")
    m = _STIX_ID.fullmatch(oid)
    if m is None or m.group(1) != kind:
        raise Refusal(oid, version_of(obj), f"{oid!r} is not a STIX identifier of type {kind!r} (type--UUID)")
    if kind == "bundle":
        # A bundle is a wrapper, not a STIX object (STIX 2.1 §8): its objects would travel
        # without the checks each object gets here.
        raise Refusal(oid, None, "a bundle is not a STIX object: post its objects in the envelope instead")
    spec = obj.get("spec_version")
    if spec is not None and spec != "2.1":
        raise Refusal(oid, version_of(obj), f"spec_version {spec!r}: this server accepts STIX 2.1 only")
    if spec is None and ("created" in obj or kind == "marking-definition"):
        # SDOs, SROs and SMOs must say spec_version in 2.1 (STIX 2.1 §3.2); without it the object is 2.0.
        raise Refusal(oid, version_of(obj), "no spec_version: a STIX 2.0 object (this server accepts STIX 2.1 only)")
    _check_times(oid, obj)
    return obj


def _check_times(oid: str, obj: Mapping[str, Any]) -> None:
    """``created`` and ``modified``, where present, are STIX timestamps (they are the object's
    TAXII version), and ``modified`` is not before ``created`` (STIX 2.1 §3.2)."""
    at: dict[str, datetime] = {}
    for key in ("created", "modified"):
        if key in obj:
            try:
                at[key] = parse_timestamp(obj[key], key)
            except InvalidInput as e:
                raise Refusal(oid, None, str(e)) from e
            if not _STIX_CREATED.fullmatch(obj[key]):
                # STIX 2.1 §3.2 and its timestamp type: in UTC with "Z", precise to the
                # millisecond. Served as sent, an offset or a coarser time would be a TAXII
                # version that is no TAXII timestamp (UTC, "Z") and an object stix2-validator
                # refuses.
                raise Refusal(
                    oid,
                    None,
                    f"{key}: {obj[key]!r} is not a STIX timestamp: write it in UTC with Z, to the millisecond "
                    "(2019-11-22T01:00:00.000Z, STIX 2.1 §3.2)",
                )
    if "created" in at and "modified" in at and at["modified"] < at["created"]:
        raise Refusal(oid, version_of(obj), "modified is before created (STIX 2.1 §3.2)")


def _redefined(obj: Mapping[str, Any]) -> Refusal:
    return Refusal(
        str(obj["id"]),
        version_of(obj),
        "a marking definition is never versioned (STIX 2.1 §7.2.1) and this id already names another one: "
        "give a new marking definition a new id",
    )


def _report_id(marking: NationalMarking, topic: str, payload: bytes) -> str:
    digest = hashlib.sha256(_canonical([marking.label(), topic]).encode() + b"\0" + payload).hexdigest()
    return f"stix-{digest[:40]}"


def _bundle_of_texts(texts: Iterable[str], seed: str) -> bytes:
    """A STIX bundle, compact JSON, of objects already encoded by :func:`gsomia.jsontext.compact`: the bytes
    ``jsontext.compact({"type": "bundle", "id": …, "objects": [...]})`` would give, without encoding
    each object again."""
    head = '{"type":"bundle","id":' + jsontext.compact(_stable_id("bundle", seed)) + ',"objects":['
    return (head + ",".join(texts) + "]}").encode("utf-8")


def _chunks(items: Sequence[tuple[Mapping[str, Any], str]]) -> Iterable[list[tuple[Mapping[str, Any], str]]]:
    """Objects with their encoding, in runs that fit a report. An object's size is that of its
    encoding (the canonical form has the same length: it only orders the members)."""
    chunk: list[tuple[Mapping[str, Any], str]] = []
    size = 0
    for item in items:
        n = len(item[1].encode("utf-8"))
        if chunk and (len(chunk) >= MAX_OBJECTS_PER_REPORT or size + n > MAX_PAYLOAD_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk


def _sort_out(
    objects: Sequence[object], definitions: dict[str, Mapping[str, Any]], refused: list[Refusal]
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """The marking definitions an envelope brings (added to ``definitions``) and its data
    objects; what fails the checks goes to ``refused``."""
    new_definitions: list[Mapping[str, Any]] = []
    data: list[Mapping[str, Any]] = []
    for raw in objects:
        try:
            obj = _check_object(raw)
        except Refusal as r:
            refused.append(r)
            continue
        if obj["type"] == "marking-definition":
            earlier = definitions.get(str(obj["id"]))
            if earlier is not None and _canonical(earlier) != _canonical(obj):
                refused.append(_redefined(obj))
                continue
            definitions[str(obj["id"])] = obj  # the objects that reference it are refused with why
            misnamed = _misnamed(obj)
            if misnamed is not None:
                refused.append(Refusal(str(obj["id"]), version_of(obj), misnamed))  # not recorded
                continue
            new_definitions.append(obj)
        else:
            data.append(obj)
    return new_definitions, data


def plan_envelope(
    objects: Sequence[object],
    *,
    policy: MarkingPolicy,
    topics: TopicMap,
    known_definitions: Mapping[str, Mapping[str, Any]],
) -> EnvelopePlan:
    """Group the objects of a POSTed envelope into reports: one per distinct (national marking,
    topic), each carrying the marking definitions its objects reference.

    Marking definitions in the envelope are recorded (later envelopes may reference them);
    every other object needs a national marking and a topic, or it is refused with the reason.
    """
    refused: list[Refusal] = []
    definitions: dict[str, Mapping[str, Any]] = dict(known_definitions)
    new_definitions, data = _sort_out(objects, definitions, refused)
    grouped: dict[tuple[NationalMarking, str], list[Mapping[str, Any]]] = {}
    used: dict[tuple[NationalMarking, str], dict[str, Mapping[str, Any]]] = {}
    known: dict[tuple[str, ...], NationalMarking | str] = {}
    for obj in data:
        try:
            marking, refs = _object_marking(obj, definitions, policy, known)
        except Refusal as r:
            refused.append(r)
            continue
        topic = topics.topic_for(obj)
        if topic is None:
            refused.append(
                Refusal(
                    str(obj["id"]),
                    version_of(obj),
                    "no topic: give the object x_gsomia_topic, or map its type or labels to a topic in the node's "
                    "configuration",
                )
            )
            continue
        key = (marking, topic)
        grouped.setdefault(key, []).append(obj)
        refd = used.setdefault(key, {})
        for ref in refs:
            if ref in definitions:
                refd[ref] = definitions[ref]
    groups: list[ReportGroup] = []
    for (marking, topic), objs in grouped.items():
        defs = tuple(used[(marking, topic)].values())
        def_texts = [jsontext.compact(d) for d in defs]
        # Each object is encoded once: its size, the report's payload and the stored copy
        # (TaxiiStore) all come from that one text.
        for chunk in _chunks([(o, jsontext.compact(o)) for o in objs]):
            chunk_objects = tuple(o for o, _ in chunk)
            chunk_texts = tuple(t for _, t in chunk)
            seed = _canonical([marking.label(), topic, [(str(o["id"]), version_of(o)) for o in chunk_objects]])
            payload = _bundle_of_texts([*def_texts, *chunk_texts], seed)
            groups.append(
                ReportGroup(
                    report_id=_report_id(marking, topic, payload),
                    marking=marking,
                    topic=topic,
                    objects=chunk_objects,
                    definitions=defs,
                    payload=payload,
                    texts=chunk_texts,
                )
            )
    return EnvelopePlan(groups=tuple(groups), definitions=tuple(new_definitions), refused=tuple(refused))


# --- deliveries -----------------------------------------------------------------------------------


def read_bundle(payload: bytes) -> list[dict[str, Any]]:
    """The objects of a STIX bundle (or TAXII envelope) in a report's payload.

    Raises:
        InvalidInput: the payload is not such a JSON document, or one of its objects is not a
            STIX 2.1 object a node would send (:func:`plan_envelope`'s checks).
    """
    try:
        # A member name twice in one object (RFC 7493 §2.3) is refused, as the node refuses it
        # in an envelope to send: the originator signed these bytes, and parsers disagree on
        # which of the two members they say.
        doc = jsontext.parse(payload, unique=True)
    except ValueError as e:
        raise InvalidInput(f"the payload is not a JSON STIX bundle: {e}") from e
    objects = doc.get("objects") if isinstance(doc, dict) else None
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise InvalidInput("the payload is not a STIX bundle: no list of objects")
    for obj in objects:
        # What a node would refuse to send, it does not serve either: an object without a STIX
        # id, or whose version is not a timestamp, has no place in a TAXII collection.
        _check_object(obj)
    return objects


_RECEIVED_MEMBERS = frozenset({"originator_marking", "banner", "delivery", "agreement", "common_level", "exercise"})
"""Members of the national marking extension that only a recipient's node writes, on the
marking of a delivery (:func:`delivered_marking_definition`)."""

_UNCHANGED = frozenset({"marking-definition", "extension-definition", "language-content"})
"""Types served exactly as the originator signed them (:func:`delivery_objects`)."""


@functools.lru_cache(maxsize=1)
def _three_letter_identities() -> Mapping[str, str]:
    """The fixed identity id of every three-letter party id (every ISO 3166 alpha-3 code), to
    its party: made once, a few tenths of a second."""
    letters = string.ascii_uppercase
    return {party_identity(p)["id"]: p for p in (a + b + c for a in letters for b in letters for c in letters)}


@dataclass(frozen=True, slots=True)
class _OtherIdentities:
    """The fixed identity ids of the parties other than a delivery's originator that the
    delivery could claim to speak for: every three-letter party, the recipient, the hub of a
    relay and the parties of the REL TO list; and the identity that publishes the extension."""

    own: str
    named: frozenset[str]

    @classmethod
    def of(cls, delivered: DeliveredMarking) -> _OtherIdentities:
        """Those of ``delivered``."""
        o = delivered.originator
        parties = {delivered.recipient, *(o.rel_to or ()), *([delivered.via] if delivered.via else [])}
        named = {party_identity(p)["id"] for p in parties if PARTY_ID.fullmatch(p)} | {GSOMIA_IDENTITY}
        return cls(own=party_identity(o.party)["id"], named=frozenset(named))

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str) or ref == self.own:
            return False
        return ref in self.named or ref in _three_letter_identities()


def _foreign(obj: Mapping[str, Any], party: str, others: _OtherIdentities) -> bool:
    """True if ``obj``, in a delivery of ``party``, speaks for someone else in a way the node
    cannot correct: it has the fixed id of another party's identity; or it is served unchanged
    and names another party's identity as its creator; or it is a national marking of another
    party, one that looks like the marking of a delivery (which only the recipient's node
    makes), or one whose id is not the one its content fixes."""
    if obj.get("id") in others:
        return True
    if obj.get("type") in _UNCHANGED and obj.get("created_by_ref") in others:
        return True
    if obj.get("type") != "marking-definition":
        return False
    extensions = obj.get("extensions")
    ext = extensions.get(NATIONAL_MARKING_EXTENSION) if isinstance(extensions, Mapping) else None
    if ext is None:
        return False
    if not isinstance(ext, Mapping) or ext.get("party") != party or not _RECEIVED_MEMBERS.isdisjoint(ext):
        return True
    # The id of a national marking is fixed by its content (docs/interop.md §2.1): under any
    # other, it could take the id of another party's marking before that party sends it.
    return obj.get("id") != national_marking_id(ext)


def _carried(ref: object, definitions: set[str]) -> bool:
    """True if the marking ``ref`` names is one of the delivery's ``definitions`` or a fixed TLP one."""
    return isinstance(ref, str) and (ref in definitions or ref in TLP_2_0 or ref in TLP_1_0)


def _as_delivered(
    obj: Mapping[str, Any], *, marking: str, creator: str, definitions: set[str], others: _OtherIdentities
) -> dict[str, Any]:
    """A data object as the recipient's node serves it: referencing the delivery's ``marking``
    and, for markings, only the ``definitions`` the delivery kept and the fixed TLP ones;
    ``creator`` as its ``created_by_ref`` when it names none, or names another party."""
    copy = dict(obj)
    refs = [r for r in copy.get("object_marking_refs") or [] if _carried(r, definitions)]
    copy["object_marking_refs"] = [*refs, marking] if marking not in refs else refs
    granular = copy.get("granular_markings")
    if isinstance(granular, list):
        entries = [
            g
            for g in granular
            if not (isinstance(g, Mapping) and "marking_ref" in g) or _carried(g["marking_ref"], definitions)
        ]
        if entries:
            copy["granular_markings"] = entries
        else:
            del copy["granular_markings"]  # STIX forbids an empty list (STIX 2.1 §2.8)
    if "created" in copy and ("created_by_ref" not in copy or copy["created_by_ref"] in others):
        copy["created_by_ref"] = creator
    return copy


def delivery_objects(
    objects: Sequence[Mapping[str, Any]],
    *,
    delivered: DeliveredMarking,
    created: datetime,
    originator_name: str | None = None,
) -> list[dict[str, Any]]:
    """What a recipient's node serves for a delivery of STIX content: the national marking's
    extension-definition and the identity that publishes it (STIX 2.1 §7.3: a consumer finds
    the definition of every extension an object uses), the originating party's
    identity, the delivery's marking-definition in the recipient's own ladder, and the original
    objects, each of which references that marking (appended to ``object_marking_refs``) and,
    when it names no creator, the originating party's identity as ``created_by_ref``. Every
    other property is as the originator signed it; marking definitions are never changed
    (they cannot be versioned, STIX 2.1 §7.2.1).

    A delivery speaks for its originator only (docs/interop.md §3.2). Left out: an object with
    the fixed id of another party's identity (or of one the node makes), a national marking of
    another party, shaped like a delivery's marking or under an id its content does not fix
    (:func:`national_marking_definition`), and a marking definition, extension
    definition or language content whose creator is another party, or that references a marking
    definition the delivery does not carry (it cannot be changed). A data object's references
    to marking definitions the delivery does not carry, or that were left out, are dropped (the
    fixed TLP ones stay), and a ``created_by_ref`` naming another party's identity becomes the
    originator's.
    """
    party = delivered.originator.party
    identity = party_identity(party, originator_name)
    marking = delivered_marking_definition(delivered, created=created)
    out: list[dict[str, Any]] = [extension_definition(), gsomia_identity(), identity, marking]
    seen = {o["id"] for o in out}
    others = _OtherIdentities.of(delivered)
    kept: list[Mapping[str, Any]] = []
    for obj in objects:
        oid = obj.get("id")
        if oid in seen or _foreign(obj, party, others):
            continue
        seen.add(str(oid))
        kept.append(obj)
    definitions = {str(o["id"]) for o in kept if o.get("type") == "marking-definition"}
    for obj in kept:
        if obj.get("type") in _UNCHANGED:
            # It cannot be changed: kept only if every marking it references is the delivery's.
            refs = obj.get("object_marking_refs") or []
            if all(_carried(r, definitions) for r in refs):
                out.append(dict(obj))
        else:
            out.append(
                _as_delivered(
                    obj, marking=marking["id"], creator=identity["id"], definitions=definitions, others=others
                )
            )
    return out
