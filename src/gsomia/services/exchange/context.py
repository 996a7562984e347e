"""What every exchange use case shares: the context (store, writer, ledger, keys, clock,
record), the record cache, deliveries and their ledger entries, and the envelope bindings.

The use cases themselves live beside this module: ``submissions`` (submit and decide),
``consents`` (relays), ``inbox`` (deliveries, acknowledgements, the inbox), ``incidents``
(Art. 17) and ``agreements`` (operator events).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from gsomia.crypto import (
    PartyKeys,
    decrypt_payload,
    delivery_info,
    open_at_rest,
    seal_at_rest,
    unwrap_key,
    wrap_key,
)
from gsomia.domain.instants import iso
from gsomia.domain.markings import Marking
from gsomia.domain.record import Network, Record, WhatIf
from gsomia.errors import InvalidInput
from gsomia.services.analysis.service import AnalysisService, WhatIfSpec
from gsomia.services.exchange.clock import ExchangeClock
from gsomia.services.exchange.identity import IdentityService
from gsomia.services.exchange.notify import Notifier
from gsomia.storage.exchange import DeliveryRow, ExchangeRepo, Tx
from gsomia.storage.store import Store
from gsomia.storage.writer import GroupCommitter, Outcome

__all__ = [
    "DeliveryWrap",
    "ExchangeConfig",
    "ExchangeContext",
    "Ledger",
    "RecordCache",
    "Rows",
    "add_delivery",
    "b64decode",
    "content_key_aad",
    "decision_entry_route",
    "delivery_marking",
    "delivery_summary",
    "new_id",
    "open_delivery",
    "payload_aad",
    "t",
]

UTC_ZONE = "UTC"


class Ledger(Protocol):
    """What the exchange needs from the ledger: append an entry in the caller's transaction."""

    def append(self, session: Any, entry: Mapping[str, Any]) -> int:
        """Append ``entry``; return its leaf index."""
        ...


def payload_aad(report_id: str) -> bytes:
    """Associated data binding a payload ciphertext to its report id (recipients use it too)."""
    return b"gsomia/payload/v1\x00" + report_id.encode("utf-8")


def content_key_aad(report_id: str) -> bytes:
    """Associated data binding a sealed content key to its report id."""
    return b"gsomia/content-key/v1\x00" + report_id.encode("utf-8")


def t(at: datetime) -> str:
    """An instant as ISO 8601 text in UTC (the form used in ledger entries and the API)."""
    return iso(at, UTC_ZONE) or ""


class _IdSource:
    """Random ids from the OS CSPRNG, read 4 KiB at a time (one system call per ~400 ids)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""

    def take(self, n: int) -> bytes:
        with self._lock:
            if len(self._buffer) < n:
                self._buffer = secrets.token_bytes(4096)
            out, self._buffer = self._buffer[:n], self._buffer[n:]
            return out


_ids = _IdSource()


def new_id(prefix: str) -> str:
    """A fresh object id such as ``d-3f9c…`` (80 random bits: unique, not secret)."""
    return f"{prefix}-{_ids.take(10).hex()}"


def decision_entry_route(route_json: Mapping[str, Any]) -> dict[str, Any]:
    """What a decision's ledger entry records of its route: the decision, path, agreements,
    hub, resulting level and every reason (the full route stays in the decision row)."""
    marking = route_json.get("marking") or {}
    return {
        "decision": route_json["decision"],
        "path": route_json["path"],
        "agreements": route_json["agreements"],
        "arrangement": route_json.get("arrangement"),
        "via": route_json.get("via"),
        "level": marking.get("recipient_level"),
        "reasons": route_json["reasons"],
    }


def delivery_marking(m: Marking) -> dict[str, str]:
    """What a recipient sees (Art. 4.2): the originator's name and level, and its own level."""
    return {
        "originator": m.originator,
        "originator_level": m.level,
        "common_level": m.common_level,
        "level": m.recipient_level,
        "banner": m.banner(),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ExchangeConfig:
    """Exchange settings: how long a consent request waits, how often expiry is swept."""

    consent_ttl: timedelta = timedelta(hours=72)
    sweep_seconds: float = 30.0
    max_recipients: int = 64


class RecordCache:
    """The record the exchange decides on: the stored record with the exercise what-if applied,
    compiled once per change (never re-parsed per request).

    ``generation`` changes whenever the compiled network does, so a decision prepared on an
    older record can be detected and made again.
    """

    def __init__(
        self, analysis: AnalysisService, *, whatif_text: str | None = None, whatif_name: str = "", ttl: float = 1.0
    ) -> None:
        self._analysis = analysis
        self._whatif_text = whatif_text
        self._whatif_name = whatif_name
        self._ttl = ttl
        self._lock = threading.Lock()
        self._checked = -1.0
        self._base: object = None
        self._network: Network | None = None
        self.generation = 0

    def network(self) -> Network:
        """The compiled network to decide on.

        Raises:
            StorageError: if no scenario is loaded.
            ValidationFailed: if the exercise what-if does not apply to the record.
        """
        now = time.monotonic()
        net = self._network
        if net is not None and now - self._checked < self._ttl:
            return net
        with self._lock:
            base = self._analysis.compiled()
            if base is not self._base or self._network is None:
                if self._whatif_text is not None:
                    whatif = self._analysis.whatif(WhatIfSpec(file_text=self._whatif_text, file_name=self._whatif_name))
                    self._network = self._analysis.with_whatif(whatif).network
                else:
                    self._network = base.network
                self._base = base
                self.generation += 1
            self._checked = now
            return self._network

    def warm(self) -> bool:
        """Whether :meth:`network` would answer from memory now (no database read, no compiling)."""
        return self._network is not None and time.monotonic() - self._checked < self._ttl

    def record(self) -> Record:
        """The record behind :meth:`network`."""
        return self.network().record

    def invalidate(self) -> None:
        """Re-read the record on next use (after an agreement event was recorded)."""
        with self._lock:
            self._analysis.invalidate()
            self._checked = -1.0
            self._base = None
            self.generation += 1

    def whatif(self) -> WhatIf | None:
        """The exercise what-if, parsed (None outside exercise mode)."""
        if self._whatif_text is None:
            return None
        return self._analysis.whatif(WhatIfSpec(file_text=self._whatif_text, file_name=self._whatif_name))


class ExchangeContext:
    """What every exchange use case shares: storage, the writer, ledger, keys, clock, record."""

    def __init__(
        self,
        *,
        store: Store,
        committer: GroupCommitter,
        ledger: Ledger,
        identity: IdentityService,
        clock: ExchangeClock,
        records: RecordCache,
        kek: Callable[[], bytes],
        notifier: Notifier,
        config: ExchangeConfig,
    ) -> None:
        self.store = store
        self.committer = committer
        self.ledger = ledger
        self.identity = identity
        self.clock = clock
        self.records = records
        self._kek_source = kek
        self._kek: bytes | None = None
        self.notifier = notifier
        self.config = config

    def __repr__(self) -> str:
        return "ExchangeContext(...)"

    def _key(self) -> bytes:
        if self._kek is None:
            self._kek = self._kek_source()
        return self._kek

    def seal(self, report_id: str, content_key: bytes) -> bytes:
        """Seal a content key under the KEK (loaded, or created, on first use).

        Raises:
            InvalidInput: the KEK setting or file is invalid.
        """
        return seal_at_rest(self._key(), content_key, content_key_aad(report_id))

    def unseal(self, report_id: str, sealed: bytes) -> bytes:
        """Open a content key sealed by :meth:`seal`.

        Raises:
            DecryptionFailed: if it does not open (another KEK, tampered row).
        """
        return open_at_rest(self._key(), sealed, content_key_aad(report_id))

    def entry(self, kind: str, at: datetime, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A ledger entry of ``kind`` at ``at``; entries made in exercise mode say so."""
        out: dict[str, Any] = {"type": kind, **fields, "at": t(at)}
        if self.clock.exercise:
            out["exercise"] = True
        return out

    def wrap_for(self, party: str, content_key: bytes) -> DeliveryWrap | None:
        """Wrap ``content_key`` to ``party``'s current key under a fresh delivery id (None if
        the party has registered no key)."""
        keys = self.identity.current_keys(party)
        if keys is None:
            return None
        did = new_id("d")
        wrapped = wrap_key(keys, content_key, delivery_info(did, party))
        return DeliveryWrap(
            delivery_id=did, party=party, wrapped=wrapped, profile=keys.profile.value, fingerprint=keys.fingerprint()
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryWrap:
    """A content key wrapped to one party for one delivery id."""

    delivery_id: str
    party: str
    wrapped: bytes = field(repr=False)
    profile: str
    fingerprint: str


class Rows:
    """Rows and notifications one action accumulates, written together at its end."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.notify: set[str] = set()

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Queue a row for ``table``."""
        self.tables.setdefault(table, []).append(row)

    def inbox(self, party: str, kind: str, ref: str, body: dict[str, Any], at: datetime) -> None:
        """Queue an inbox item for ``party`` (and wake its streams after the commit)."""
        self.add("inbox_events", {"party": party, "kind": kind, "ref": ref, "body": body, "created_at": at})
        self.notify.add(party)

    def flush(self, s: Tx) -> None:
        """Insert every queued row (parents first)."""
        for table in ("reports", "decisions", "consents", "deliveries", "incidents", "incident_updates"):
            ExchangeRepo.insert(s, table, self.tables.pop(table, []))
        for table, rows in self.tables.items():
            ExchangeRepo.insert(s, table, rows)
        self.tables.clear()

    def outcome(self, ctx: ExchangeContext, value: Any) -> Outcome[Any]:
        """The action's outcome: ``value``, and the wake-ups to send after the commit."""
        parties = frozenset(self.notify)
        return Outcome(value, (lambda: ctx.notifier.publish(parties),) if parties else ())


def add_delivery(
    ctx: ExchangeContext,
    s: Tx,
    rows: Rows,
    *,
    wrap: DeliveryWrap,
    report_id: str,
    originator: str,
    topic: str,
    marking: Marking,
    purpose: str,
    via: str | None,
    consent_id: str | None,
    at: datetime,
) -> dict[str, Any]:
    """Ledger and queue one delivery and its inbox item; return its summary."""
    mark = delivery_marking(marking)
    leaf = ctx.ledger.append(
        s,
        ctx.entry(
            "delivery",
            at,
            {
                "delivery": wrap.delivery_id,
                "report": report_id,
                "originator": originator,
                "recipient": wrap.party,
                "purpose": purpose,
                "via": via,
                "marking": mark,
                "key": wrap.fingerprint,
                "wrapped_key_sha256": hashlib.sha256(wrap.wrapped).hexdigest(),
            },
        ),
    )
    rows.add(
        "deliveries",
        {
            "id": wrap.delivery_id,
            "report_id": report_id,
            "recipient": wrap.party,
            "originator": originator,
            "purpose": purpose,
            "via": via,
            "consent_id": consent_id,
            "marking": mark,
            "state": "ready",
            "profile": wrap.profile,
            "key_fingerprint": wrap.fingerprint,
            "wrapped_key": wrap.wrapped,
            "created_at": at,
            "leaf_index": leaf,
            "fetched_at": None,
            "acked_at": None,
            "ack_leaf_index": None,
        },
    )
    summary = {
        "id": wrap.delivery_id,
        "recipient": wrap.party,
        "purpose": purpose,
        "via": via,
        "marking": mark,
        "leaf_index": leaf,
        "created_at": t(at),
    }
    body = {"type": "delivery", "report": report_id, "originator": originator, "topic": topic, **summary}
    rows.inbox(wrap.party, "delivery", wrap.delivery_id, body, at)
    return summary


def delivery_summary(d: DeliveryRow) -> dict[str, Any]:
    """A stored delivery's summary, as :func:`add_delivery` returned it."""
    return {
        "id": d.id,
        "recipient": d.recipient,
        "purpose": d.purpose,
        "via": d.via,
        "marking": d.marking,
        "leaf_index": d.leaf_index,
        "created_at": t(d.created_at),
    }


def b64decode(value: object, what: str) -> bytes:
    """Decode a base64 JSON value.

    Raises:
        InvalidInput: it is not a base64 string (the message names ``what`` only).
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what}: expected a base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as e:
        raise InvalidInput(f"{what}: not valid base64") from e


def open_delivery(view: Mapping[str, Any], private: PartyKeys) -> bytes:
    """Decrypt a fetched delivery with the recipient's private keys (client side).

    Args:
        view: the delivery as ``GET /api/v1/deliveries/{id}`` returned it.
        private: the recipient's :class:`~gsomia.crypto.PartyKeys`.

    Returns:
        The payload.

    Raises:
        DecryptionFailed: the keys are not the recipient's, or anything was altered.
        InvalidInput: the view is malformed.
    """
    wrapped = b64decode(view.get("wrapped_key"), "wrapped_key")
    blob = b64decode(view.get("payload_ciphertext"), "payload_ciphertext")
    did, report_id = str(view.get("id", "")), str(view.get("report", ""))
    content_key = unwrap_key(private, wrapped, delivery_info(did, private.party))
    return decrypt_payload(content_key, blob, payload_aad(report_id))
