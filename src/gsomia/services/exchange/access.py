"""Who may do what: principals, roles and the one policy function every action goes through.

Roles (docs/design.md §7):

- ``party``: acts for exactly one party. It submits reports as that party, reads its own
  inbox and deliveries, answers consent requests for its own reports, files and follows
  incidents on its own deliveries, registers its own public keys.
- ``operator``: records agreement events, registers any party's public keys, moves the
  exercise clock; reads exchange statistics and the ledger. Never a payload.
- ``auditor``: reads the ledger and exchange statistics. Never a payload or a content key.

A principal never acts as another party (:class:`~gsomia.errors.NotPermitted`, HTTP 403), and
an object that belongs to another party is reported as not found
(:class:`~gsomia.errors.UnknownEntity`, HTTP 404), so its existence does not leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from gsomia.domain.parties import PARTY_ID
from gsomia.errors import InvalidInput, NotPermitted, UnknownEntity


class Role(StrEnum):
    """What a principal is."""

    PARTY = "party"
    OPERATOR = "operator"
    AUDITOR = "auditor"

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role named ``value``.

        Raises:
            InvalidInput: for an unknown role.
        """
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput(f"unknown role {value!r}: use party, operator or auditor") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller: a party's account, an operator or an auditor."""

    id: str
    name: str
    role: Role
    party: str | None = None
    version: int = -1
    """The stored principals version when this principal was authenticated: a write checks the
    token again only if some token was revoked since (-1: always check)."""

    def __post_init__(self) -> None:
        if self.role is Role.PARTY:
            if self.party is None or not PARTY_ID.fullmatch(self.party):
                raise InvalidInput("a party principal needs a party id such as JPN")
        elif self.party is not None:
            raise InvalidInput(f"an {self.role} principal acts for no party; leave --party out")

    def describe(self) -> str:
        """``party JPN (name)``, ``operator (name)``."""
        return f"{self.role} {self.party} ({self.name})" if self.party else f"{self.role} ({self.name})"


class Action(StrEnum):
    """Everything a principal can ask the exchange to do."""

    SUBMIT = "submit reports"
    READ_INBOX = "read an inbox"
    READ_DELIVERY = "read deliveries"
    ACK = "acknowledge deliveries"
    FILE_INCIDENT = "file loss or compromise reports"
    FOLLOW_INCIDENT = "read or update incidents"
    ANSWER_CONSENT = "answer consent requests"
    MANAGE_STANDING = "manage standing consents"
    REGISTER_KEYS = "register public keys"
    READ_KEYS = "read public keys"
    RECORD_EVENT = "record agreement events"
    READ_LEDGER = "read the ledger"
    READ_STATS = "read exchange statistics"
    SET_CLOCK = "set the exercise clock"
    READ_REPORT = "read submission results"
    REGISTER_WITNESS = "register a witness key"
    COSIGN = "cosign checkpoints"


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.PARTY: frozenset(
        {
            Action.SUBMIT,
            Action.READ_INBOX,
            Action.READ_DELIVERY,
            Action.ACK,
            Action.FILE_INCIDENT,
            Action.FOLLOW_INCIDENT,
            Action.ANSWER_CONSENT,
            Action.MANAGE_STANDING,
            Action.REGISTER_KEYS,
            Action.READ_KEYS,
            Action.READ_LEDGER,
            Action.READ_REPORT,
            Action.REGISTER_WITNESS,
            Action.COSIGN,
        }
    ),
    Role.OPERATOR: frozenset(
        {
            Action.RECORD_EVENT,
            Action.REGISTER_KEYS,
            Action.REGISTER_WITNESS,
            Action.READ_KEYS,
            Action.READ_LEDGER,
            Action.READ_STATS,
            Action.SET_CLOCK,
        }
    ),
    Role.AUDITOR: frozenset({Action.READ_KEYS, Action.READ_LEDGER, Action.READ_STATS}),
}

# Actions an operator may take for any party (it acts for none); a party only for itself.
_FOR_ANY_PARTY: dict[Role, frozenset[Action]] = {
    Role.OPERATOR: frozenset({Action.REGISTER_KEYS, Action.REGISTER_WITNESS})
}


def allowed(role: Role) -> frozenset[Action]:
    """The actions a role may take (for documentation and tests)."""
    return _ALLOWED[role]


def authorize(
    principal: Principal,
    action: Action,
    *,
    acting_for: str | None = None,
    owners: Iterable[str] | None = None,
    thing: str = "object",
    thing_id: str = "",
) -> None:
    """Decide whether ``principal`` may take ``action``; return quietly if so.

    Args:
        principal: who asks.
        action: what they ask for.
        acting_for: the party the action is taken for (a report's originator, the party
            whose keys are registered); a party principal may act only for itself.
        owners: the parties an existing object belongs to (a delivery's recipient, a
            consent's originator, an incident's reporter and originator).
        thing: what the object is, for the not-found message ("delivery").
        thing_id: the object's id, for the not-found message.

    Raises:
        NotPermitted: the role may not take the action, or the principal would act for
            another party.
        UnknownEntity: the object belongs to other parties (reported as not found, so its
            existence does not leak).
    """
    if action not in _ALLOWED[principal.role]:
        raise NotPermitted(f"{principal.describe()} may not {action.value}")
    for_any = action in _FOR_ANY_PARTY.get(principal.role, frozenset())
    if acting_for is not None and not for_any and principal.party != acting_for:
        raise NotPermitted(f"{principal.describe()} may act only for its own party, not for {acting_for}")
    if owners is not None and principal.role is Role.PARTY and principal.party not in set(owners):
        raise UnknownEntity(f"no {thing} {thing_id!r}".replace(" ''", ""))


def ledger_party(principal: Principal) -> str | None:
    """Whose ledger entries ``principal`` may read: its own party's (a party sees the entries
    about its reports, deliveries, consents and incidents, and the public ones), or None for
    every entry (auditors and operators: metadata, never a payload)."""
    return principal.party if principal.role is Role.PARTY else None
