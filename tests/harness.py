"""An exchange in this process: a temporary SQLite database holding the bundled scenario, a
clock the test moves, principals for JPN, KOR and USA (each with its own key pair), an
operator and an auditor. Nothing listens on a socket; the services are called directly, as
the API's route handlers call them.

The model is python-tuf's ``RepositorySimulator``: everything a test needs to drive the use
cases (sign and submit, read an inbox, fetch and open a delivery, answer a consent, move the
clock), and nothing hidden from it (``harness.app`` is the whole wired application).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
from fastapi import FastAPI

from gsomia.api.app import create_app
from gsomia.bootstrap import App, Settings, build
from gsomia.client.http import ExchangeClient
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
DEC1 = "2019-12-01T10:00+09:00"
"""A week after the GSOMIA would have ended had Korea not suspended its notice."""
NO_SUSPENSION = "name: termination-took-effect\ndrop: [jpn-kor-2019-suspension]\n"
"""The exercise what-if in which Korea's notice took effect (the GSOMIA ended at 00:00 KST on
2019-11-23): from then on a report from Japan reaches Korea only relayed through the US under TISA."""


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class InProcessTransport(httpx.BaseTransport):
    """A synchronous httpx transport that hands each request to an ASGI application in this
    process (no socket), so :class:`~gsomia.client.http.ExchangeClient` can talk to the API as it
    talks to a server. Responses are read whole: not for the endless event stream."""

    def __init__(self, app: FastAPI) -> None:
        self._asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):  # a body from a generator
            request = httpx.Request(
                request.method, request.url, headers=request.headers, stream=_Chunks(list(request.stream))
            )

        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

        return anyio.run(send)


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
    _api: FastAPI | None = None

    @property
    def exchange(self) -> Exchange:
        """Every exchange use case."""
        return self.app.exchange

    def close(self) -> None:
        """Finish queued writes and release the database."""
        self.app.close()

    def clone(self, tmp_path: Path) -> Harness:
        """A copy of this (closed) harness's exchange in ``tmp_path``: its database, key-encryption
        key and ledger key copied, the same users and key pairs, a clock of its own at this
        harness's instant. What :func:`start` would give, without migrating, loading the
        scenario and registering keys again (a test's setup in milliseconds)."""
        source = self.app.settings.data_dir
        for path in source.iterdir():
            if path.is_file():
                shutil.copy2(path, tmp_path / path.name)
        db = str(self.app.settings.db).replace(str(source), str(tmp_path))
        settings = self.app.settings.model_copy(update={"db": db, "data_dir": tmp_path})
        clock = TestClock(self.clock.at)
        return Harness(
            app=build(settings, clock=clock),
            clock=clock,
            keys=dict(self.keys),
            principals=dict(self.principals),
            tokens=dict(self.tokens),
        )

    # --- over HTTP, in this process --------------------------------------------------------

    @property
    def api(self) -> FastAPI:
        """The HTTP application around :attr:`app` (its start-up and shut-down are not run)."""
        if self._api is None:
            self._api = create_app(self.app)
        return self._api

    def client(self, who: str | None) -> ExchangeClient:
        """An :class:`~gsomia.client.http.ExchangeClient` of ``who`` (a party, ``operator``,
        ``auditor``, or None for no token) talking to :attr:`api` in this process."""
        token = self.tokens[who] if who is not None else None
        return ExchangeClient("http://exchange.test", token=token, transport=InProcessTransport(self.api))

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

    def decision(self, result: SubmissionResult, recipient: str) -> dict[str, Any]:
        """The decision for one recipient of a submission result."""
        (found,) = [r for r in result.body["recipients"] if r["recipient"] == recipient]
        return dict(found)

    def written(self) -> tuple[int, dict[str, Any]]:
        """What exists: the ledger's size and the auditor's exchange counts (to show that a
        refused action wrote nothing)."""
        return self.app.ledger.size(), self.exchange.deliveries.stats(self.principals["auditor"])

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

    def consent_requests(self, party: str = "JPN") -> list[dict[str, Any]]:
        """The consent requests in ``party``'s inbox, oldest first."""
        return [i for i in self.inbox(party) if i["type"] == "consent_request"]

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
    **settings: Any,
) -> Harness:
    """A harness on a fresh SQLite database in ``tmp_path`` with the bundled scenario loaded,
    the clock at ``at`` and every party's keys registered."""
    clock = TestClock(parse_instant(at, "UTC"))
    app = build(Settings(db=f"sqlite:///{tmp_path / 'exchange.db'}", data_dir=tmp_path, **settings), clock=clock)
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


def start_terminated(tmp_path: Path, *, at: str = DEC1, **settings: Any) -> Harness:
    """A harness in exercise mode with the :data:`NO_SUSPENSION` what-if applied to every
    decision, the clock at ``at`` (by default :data:`DEC1`, when Japan reaches Korea only
    through the US)."""
    whatif = tmp_path / "no-suspension.yaml"
    whatif.write_text(NO_SUSPENSION, encoding="utf-8")
    return start(tmp_path, at=at, exercise_whatif=whatif, **settings)
