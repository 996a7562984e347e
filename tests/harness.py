"""An exchange in this process: a temporary SQLite database holding the bundled scenario, a
clock the test moves, principals for JPN, KOR and USA (each with its own key pair), an
operator and an auditor. Nothing listens on a socket; the services are called directly, as
the API's route handlers call them.

The model is python-tuf's ``RepositorySimulator``: everything a test needs to drive the use
cases (sign and submit, read an inbox, fetch and open a delivery, answer a consent, move the
clock), and nothing hidden from it (``harness.app`` is the whole wired application).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from gsomia.bootstrap import App, Settings, build
from gsomia.client.opening import open_delivery, verify_origin
from gsomia.client.reports import ReportDraft, sign_report
from gsomia.codec import b64encode
from gsomia.crypto import PartyKeys, Profile, sign
from gsomia.domain.instants import parse_instant
from gsomia.ledger.entries import entry_bytes
from gsomia.services.exchange import Exchange
from gsomia.services.exchange.access import Principal, Role
from gsomia.services.exchange.submissions import ReportSubmission, SubmissionResult

PARTIES = ("JPN", "KOR", "USA")
TOPIC = "dprk.missile.launch"
NOV22 = "2019-11-22T10:00+09:00"
"""The morning of the day Korea suspended its notice: the Japan–Korea GSOMIA is in force."""


class TestClock:
    """The wall clock of the harness: it moves only when the test moves it."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def set(self, at: datetime | str) -> datetime:
        """Jump to ``at`` (ISO 8601 text is read in UTC unless it has an offset)."""
        self.at = parse_instant(at, "UTC") if isinstance(at, str) else at
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by ``delta``."""
        self.at = self.at + delta
        return self.at


@dataclass
class Harness:
    """A wired exchange and its users (see the module docstring)."""

    app: App
    clock: TestClock
    keys: dict[str, PartyKeys]
    principals: dict[str, Principal]
    tokens: dict[str, str] = field(repr=False)
    _counter: int = 0

    @property
    def exchange(self) -> Exchange:
        """Every exchange use case."""
        return self.app.exchange

    def close(self) -> None:
        """Finish queued writes and release the database."""
        self.app.close()

    # --- submitting -------------------------------------------------------------------------

    def draft(self, **fields: Any) -> ReportDraft:
        """A report draft with sensible defaults (a fresh id, the missile-launch topic, 極秘 if the
        originator is JPN, created now) and ``fields`` on top."""
        self._counter += 1
        defaults: dict[str, Any] = {
            "id": f"r-{self._counter}",
            "topic": TOPIC,
            "level": "極秘",
            "payload": b'{"track": "example"}',
            "created": self.clock(),
            "content_type": "application/json",
        }
        return ReportDraft(**(defaults | fields))

    def signed(self, originator: str = "JPN", *, signer: str | None = None, **fields: Any) -> ReportSubmission:
        """A report of ``originator`` signed with ``signer``'s keys (by default its own): a
        forger signs a report that names another party as its originator."""
        body = sign_report(self.keys[originator], self.draft(**fields))
        if signer is not None and signer != originator:
            forger = self.keys[signer]
            signature = b64encode(sign(forger, entry_bytes(body["report"])))
            body = {"report": body["report"], "signature": signature, "key": forger.fingerprint()}
        return ReportSubmission(report=body["report"], signature=body["signature"], key=body["key"])

    def submit(
        self, originator: str = "JPN", *, recipients: Sequence[str] | None = ("KOR",), **fields: Any
    ) -> SubmissionResult:
        """Sign and submit a report as ``originator`` (to KOR unless ``recipients`` says otherwise)."""
        sub = self.signed(originator, recipients=list(recipients) if recipients is not None else None, **fields)
        return self.exchange.submissions.submit(self.principals[originator], sub)

    def outcomes(self, result: SubmissionResult) -> dict[str, str]:
        """``recipient -> outcome`` of a submission result."""
        return {r["recipient"]: r["outcome"] for r in result.body["recipients"]}

    # --- receiving --------------------------------------------------------------------------

    def inbox(self, party: str) -> list[dict[str, Any]]:
        """Every item of ``party``'s inbox, oldest first."""
        items, _ = self.exchange.deliveries.inbox(self.principals[party], after=0, limit=1000)
        return items

    def deliveries(self, party: str, report_id: str | None = None) -> list[dict[str, Any]]:
        """The delivery items of ``party``'s inbox (of one report if given)."""
        return [
            i for i in self.inbox(party) if i["type"] == "delivery" and (report_id is None or i["report"] == report_id)
        ]

    def open(self, party: str, delivery_id: str) -> bytes:
        """Fetch a delivery as ``party``, decrypt it with its key and check the originator's
        signature, as a recipient's client does; return the payload."""
        view = self.exchange.deliveries.delivery(self.principals[party], delivery_id)
        payload = open_delivery(view, self.keys[party])
        originator = view["origin"]["report"]["originator"]
        registered = self.exchange.keys.history(self.principals[party], originator)
        verify_origin(view, payload, [k.as_dict() for k in registered])
        return payload


def start(
    tmp_path: Path,
    *,
    at: str = NOV22,
    profiles: dict[str, Profile] | None = None,
    db: str | None = None,
    **settings: Any,
) -> Harness:
    """A harness on a fresh database (SQLite in ``tmp_path`` unless ``db`` names another) with
    the bundled scenario loaded, the clock at ``at`` and every party's keys registered."""
    clock = TestClock(parse_instant(at, "UTC"))
    url = db or f"sqlite:///{tmp_path / 'exchange.db'}"
    app = build(Settings(db=url, data_dir=tmp_path, **settings), clock=clock)
    app.scenarios.load("japan-korea-2019")
    identity = app.exchange.identity
    keys: dict[str, PartyKeys] = {}
    principals: dict[str, Principal] = {}
    tokens: dict[str, str] = {}
    for party in PARTIES:
        issued = identity.add_principal(role=Role.PARTY, name=f"{party} desk", party=party)
        principals[party], tokens[party] = issued.principal, issued.token
        keys[party] = PartyKeys.generate(party, (profiles or {}).get(party, Profile.CLASSIC))
        app.exchange.keys.register(issued.principal, party, keys[party].public_keys())
    for role in (Role.OPERATOR, Role.AUDITOR):
        issued = identity.add_principal(role=role, name=f"the {role}")
        principals[role.value], tokens[role.value] = issued.principal, issued.token
    return Harness(app=app, clock=clock, keys=keys, principals=principals, tokens=tokens)
