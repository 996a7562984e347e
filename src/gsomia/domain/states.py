"""The states of the exchange's objects, as the domain names them (docs/design.md §2).

Each is a ``StrEnum``: its value is what the API, the ledger and the database carry, so a
member can be written wherever its text could.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConsentState", "DeliveryPurpose", "DeliveryState", "ReleaseOutcome"]


class ReleaseOutcome(StrEnum):
    """What became of a release decision for one recipient of a report."""

    DELIVERED = "delivered"
    """Released directly: a delivery was made."""
    DENIED = "denied"
    """No agreement allows the release (the reasons say why)."""
    NO_KEY = "no_key"
    """Allowed, but the recipient (or the hub) has registered no encryption key."""
    PENDING_CONSENT = "pending_consent"
    """A relay that waits for the originator's consent (docs/design.md §3 rule 6)."""
    RELAYED = "relayed"
    """A relay released: the hub's and the onward deliveries were made."""
    RELAY_REFUSED = "relay_refused"
    """Consent was granted, but at that instant the relay no longer held."""
    CONSENT_REFUSED = "consent_refused"
    """The originator refused the relay."""
    CONSENT_EXPIRED = "consent_expired"
    """Nobody answered the consent request in time."""


class DeliveryState(StrEnum):
    """Where a delivery stands with its recipient: ready to fetch (fetching changes nothing),
    then acknowledged (need-to-know attested, rule 5). ``fetched`` is a state deliveries had
    when fetching still changed them; no delivery enters it any more."""

    READY = "ready"
    FETCHED = "fetched"
    ACKNOWLEDGED = "acknowledged"


class DeliveryPurpose(StrEnum):
    """Why a delivery was made: directly, to the hub of a relay, or onward from the hub."""

    DIRECT = "direct"
    RELAY_HUB = "relay_hub"
    RELAY_ONWARD = "relay_onward"


class ConsentState(StrEnum):
    """A consent request's state (docs/design.md §2 "Consent")."""

    PENDING = "pending"
    GRANTED = "granted"
    REFUSED = "refused"
    EXPIRED = "expired"
