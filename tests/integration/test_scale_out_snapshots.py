"""Two exchange processes over one PostgreSQL database, in process, with a change of one
committed at the worst moment of the other: between the statements of a read, or while the
other's writer is deciding. Whatever commits first, the other's next commit honours (ADR 0003):
a read labels what it read with the version it read it at, and a writer waits for a change that
commits outside the writers' turn."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import rfc8785

from gsomia.bootstrap import App, Settings, build
from gsomia.crypto import PartyKeys, sign
from gsomia.errors import BadSignature, NotAuthenticated
from gsomia.services.exchange.access import Principal, Role
from gsomia.services.exchange.operator import EventSpec
from gsomia.services.exchange.submissions import ReportSubmission
from gsomia.storage import store as store_module
from gsomia.storage.exchange import ExchangeRepo
from tests.integration.exchange_support import report_doc

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PARTIES = ("JPN", "KOR", "USA")


@dataclass
class Pair:
    """Process A and process B (two applications over one database) and their users."""

    a: App
    b: App
    db: str
    tokens: dict[str, str]
    keys: dict[str, PartyKeys]

    def principal(self, app: App, who: str) -> Principal:
        return app.exchange.identity.authenticate(self.tokens[who])

    def submit(self, app: App, who: str = "JPN", *, keys: PartyKeys | None = None, **fields: Any) -> Any:
        report = report_doc(originator=who, **fields)
        signer = keys or self.keys[who]
        body: dict[str, Any] = {
            "report": report,
            "signature": base64.b64encode(sign(signer, bytes(rfc8785.dumps(report)))).decode(),
            "key": signer.fingerprint(),
        }
        return app.exchange.submissions.submit(self.principal(app, who), ReportSubmission(**body))


@pytest.fixture
def pair(fresh_pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    monkeypatch.setenv("GSOMIA_KEK", base64.b64encode(secrets.token_bytes(32)).decode())
    settings = Settings(db=fresh_pg, data_dir=tmp_path)
    a = build(settings)
    a.scenarios.load("japan-korea-2019")
    identity = a.exchange.identity
    tokens = {p: identity.add_principal(role=Role.PARTY, name=f"{p} desk", party=p).token for p in PARTIES}
    keys = {p: PartyKeys.generate(p) for p in PARTIES}
    for p in PARTIES:
        a.exchange.keys.register(identity.authenticate(tokens[p]), p, keys[p].public_keys())
    tokens["operator"] = identity.add_principal(role=Role.OPERATOR, name="operator").token
    b = build(settings)
    try:
        yield Pair(a, b, fresh_pg, tokens, keys)
    finally:
        b.close()
        a.close()


def _in_between(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, change: Callable[[], object]) -> None:
    """Make ``owner.name`` (a read step) run ``change`` to its commit, on another thread, once,
    right after its first call returns: the change commits between that read and the next."""
    original = getattr(owner, name)
    fired: list[int] = []

    def patched(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        if not fired:
            fired.append(1)
            t = threading.Thread(target=change)
            t.start()
            t.join()
        return out

    monkeypatch.setattr(owner, name, patched)


def test_an_agreement_event_committed_while_another_process_reads_its_record_is_honoured(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = pair.principal(pair.a, "operator")
    end = EventSpec(kind="termination", by="KOR", id="jk-end")
    _in_between(
        monkeypatch,
        store_module,
        "_event_doc",
        lambda: pair.a.exchange.operator.record_event(operator, "JPN-KOR-GSOMIA", end),
    )
    pair.b.exchange.context.records.invalidate()
    pair.b.exchange.context.records.network()  # B reads its record; A's event commits meanwhile
    monkeypatch.undo()
    for n in range(2):
        result = pair.submit(pair.b, report_id=f"after-end-{n}", recipients=["KOR"])
        (kor,) = result.body["recipients"]
        assert "JPN-KOR-GSOMIA" not in (kor["agreements"] or []), kor  # never released under it
        assert kor["outcome"] != "delivered", kor


def test_a_key_rotation_committed_while_another_process_reads_the_keys_is_honoured(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpn_a = pair.principal(pair.a, "JPN")
    fresh = PartyKeys.generate("JPN")
    change = lambda: pair.a.exchange.keys.register(jpn_a, "JPN", fresh.public_keys())  # noqa: E731
    _in_between(monkeypatch, ExchangeRepo, "current_keys", change)
    pair.b.exchange.identity.forget_keys()
    pair.b.exchange.identity.current_keys("JPN")  # B reads the keys; A's rotation commits meanwhile
    monkeypatch.undo()
    with pytest.raises(BadSignature):
        pair.submit(pair.b, report_id="retired-key", recipients=["USA"])  # signed with the retired key
    assert pair.submit(pair.b, keys=fresh, report_id="current-key", recipients=["USA"]).created


def test_a_revocation_committed_while_another_process_reads_the_token_is_honoured(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    jpn = pair.principal(pair.a, "JPN")
    change = lambda: pair.a.exchange.identity.revoke(jpn.id)  # noqa: E731
    _in_between(monkeypatch, ExchangeRepo, "principal_by_token_hash", change)
    # read as the revocation commits: still active in what B read, and labelled as read then
    # (so B's cached answer is the token as it was before the revocation, not after)
    seen = pair.b.exchange.identity.authenticate(pair.tokens["JPN"])
    monkeypatch.undo()
    with pair.b.store.reading() as s:
        assert seen.version < store_module.Store.versions(s).principals
    with pytest.raises(NotAuthenticated):
        pair.submit(pair.b, report_id="after-revocation", recipients=["KOR"])  # the writer checks again


def test_a_writer_waits_for_a_revocation_committing_outside_the_writers_turn(pair: Pair) -> None:
    jpn = pair.principal(pair.b, "JPN")  # authenticated before the revocation
    answers: list[BaseException | object] = []
    with psycopg.connect(pair.db.replace("postgresql+psycopg://", "postgresql://")) as conn:
        # the revocation's two statements, its commit held back while B's writer decides
        conn.execute("UPDATE principals SET revoked_at = now() WHERE id = %s", (jpn.id,))
        conn.execute("UPDATE exchange_state SET principals_version = principals_version + 1 WHERE id = 1")

        def submit() -> None:
            report = report_doc(originator="JPN", report_id="during-revocation", recipients=["KOR"])
            keys = pair.keys["JPN"]
            body: dict[str, Any] = {
                "report": report,
                "signature": base64.b64encode(sign(keys, bytes(rfc8785.dumps(report)))).decode(),
                "key": keys.fingerprint(),
            }
            try:
                answers.append(pair.b.exchange.submissions.submit(jpn, ReportSubmission(**body)))
            except BaseException as e:  # noqa: BLE001 - the answer is what the test looks at
                answers.append(e)

        writer = threading.Thread(target=submit)
        writer.start()
        writer.join(timeout=1.5)  # still deciding: its transaction waits for the revocation's row
        conn.commit()
    writer.join(timeout=30)
    assert len(answers) == 1 and isinstance(answers[0], NotAuthenticated), answers
