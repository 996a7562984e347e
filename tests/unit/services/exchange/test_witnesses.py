"""Witnesses in process: a party registers its node's cosigning key (a public ledger entry),
and the exchange records a cosignature only if it verifies over this log's own checkpoint of
that size under that party's key."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import timedelta

import pytest

from gsomia.crypto.ledger_key import Cosigner
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import Conflict, InvalidInput, NotAuthenticated, NotPermitted, UnknownEntity
from gsomia.ledger.cosignature import quorum
from gsomia.storage.exchange import ExchangeRepo
from tests.harness import Harness


def body_of(note: str) -> str:
    return note.split("\n\n", maxsplit=1)[0] + "\n"


def registered(h: Harness, party: str, name: str | None = None) -> Cosigner:
    w = Cosigner(name or f"{party.lower()}.witness.example", ExchangeSigner.generate())
    h.exchange.witnesses.register(h.principals[party], party, w.public.vkey())
    return w


def now(h: Harness) -> int:
    return int(h.clock().timestamp())


def test_registration_is_a_public_ledger_entry_and_idempotent(harness: Harness) -> None:
    w = Cosigner("kor.witness.example", ExchangeSigner.generate())
    svc = harness.exchange.witnesses
    first, new = svc.register(harness.principals["KOR"], "KOR", w.public.vkey())
    assert new
    again, new_again = svc.register(harness.principals["KOR"], "KOR", w.public.vkey())
    assert not new_again
    assert again.leaf_index == first.leaf_index
    entry = harness.app.ledger.entry(first.leaf_index, reader="JPN")  # every party can read it
    assert entry["entry"]["action"] == "witness_registered"
    assert entry["entry"]["vkey"] == w.public.vkey()
    listed = svc.witnesses(harness.principals["auditor"])
    assert [x.to_dict()["vkey"] for x in listed] == [w.public.vkey()]


def test_a_new_key_replaces_the_old_and_names_it(harness: Harness) -> None:
    old = registered(harness, "KOR")
    new = Cosigner("kor.witness.example", ExchangeSigner.generate())
    w, _ = harness.exchange.witnesses.register(harness.principals["KOR"], "KOR", new.public.vkey())
    entry = harness.app.ledger.entry(w.leaf_index)["entry"]
    assert entry["replaced"] == old.public.vkey()
    size = harness.app.ledger.size()
    with pytest.raises(InvalidInput, match="not by KOR's witness"):
        harness.exchange.witnesses.cosign(harness.principals["KOR"], size, old.cosign("x\n1\nAA==\n", now(harness)))


def test_a_party_cannot_register_for_another_or_take_another_witness_name(harness: Harness) -> None:
    w = Cosigner("jpn.witness.example", ExchangeSigner.generate())
    with pytest.raises(NotPermitted):
        harness.exchange.witnesses.register(harness.principals["KOR"], "JPN", w.public.vkey())
    registered(harness, "JPN", "shared.name")
    with pytest.raises(Conflict, match="another party's witness"):
        registered(harness, "KOR", "shared.name")
    with pytest.raises(NotPermitted):
        harness.exchange.witnesses.register(harness.principals["auditor"], "JPN", w.public.vkey())
    with pytest.raises(InvalidInput):
        harness.exchange.witnesses.register(harness.principals["JPN"], "JPN", "not a vkey")
    # An operator may register any party's witness.
    harness.exchange.witnesses.register(harness.principals["operator"], "USA", w.public.vkey())


def test_a_valid_cosignature_is_recorded_and_served_with_the_checkpoint(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"])
    jpn, kor = registered(harness, "JPN"), registered(harness, "KOR")
    ledger = harness.app.ledger
    note = ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    for party, w in (("JPN", jpn), ("KOR", kor)):
        out = harness.exchange.witnesses.cosign(harness.principals[party], size, w.cosign(body_of(note), now(harness)))
        assert out["size"] == size
        assert out["kept"] is True
    # An older cosignature of the same size does not replace a newer one; a newer one does.
    older = kor.cosign(body_of(note), now(harness) - 60)
    assert harness.exchange.witnesses.cosign(harness.principals["KOR"], size, older)["kept"] is False
    assert older not in ledger.cosigned_checkpoint(size)
    newer = kor.cosign(body_of(note), now(harness) + 60)
    assert harness.exchange.witnesses.cosign(harness.principals["KOR"], size, newer)["kept"] is True
    assert newer in ledger.cosigned_checkpoint(size)
    cosigned = ledger.cosigned_checkpoint()
    assert cosigned.startswith(note)
    assert quorum(cosigned, [jpn.public, kor.public])[1] == [jpn.public.name, kor.public.name]
    assert ledger.cosigned_checkpoint(size) == cosigned


def test_a_former_witness_name_of_another_party_is_refused_and_its_cosignatures_stay(harness: Harness) -> None:
    # KOR cosigns as "kor.witness.example", then its witness takes another name: the old name
    # stays KOR's, and so does the line kept under it.
    ledger = harness.app.ledger
    note = ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    kor = registered(harness, "KOR")
    line = kor.cosign(body_of(note), now(harness))
    assert harness.exchange.witnesses.cosign(harness.principals["KOR"], size, line)["kept"] is True
    registered(harness, "KOR", "kor2.witness.example")
    with pytest.raises(Conflict, match=r"'kor\.witness\.example' was KOR's"):
        registered(harness, "USA", "kor.witness.example")
    with pytest.raises(Conflict, match="was KOR's"):  # nor through an operator
        harness.exchange.witnesses.register(
            harness.principals["operator"],
            "USA",
            Cosigner("kor.witness.example", ExchangeSigner.generate()).public.vkey(),
        )
    with pytest.raises(NotPermitted, match="no registered witness"):
        harness.exchange.witnesses.cosign(harness.principals["USA"], size, line)
    assert line in ledger.cosigned_checkpoint(size)
    assert harness.app.ledger.verify().ok
    registered(harness, "KOR", "kor.witness.example")  # KOR may take its own name back


def test_a_new_key_under_the_same_name_replaces_the_partys_own_line(harness: Harness) -> None:
    ledger = harness.app.ledger
    note = ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    old = registered(harness, "KOR")
    ahead = old.cosign(body_of(note), now(harness) + 240)
    assert harness.exchange.witnesses.cosign(harness.principals["KOR"], size, ahead)["kept"] is True
    new = registered(harness, "KOR")  # the same name, a new key
    line = new.cosign(body_of(note), now(harness))
    assert harness.exchange.witnesses.cosign(harness.principals["KOR"], size, line)["kept"] is True
    served = ledger.cosigned_checkpoint(size)
    assert line in served and ahead not in served
    assert quorum(served, [new.public])[1] == [new.public.name]


def test_a_line_of_another_partys_key_kept_under_a_name_is_never_overwritten(harness: Harness) -> None:
    # A name two parties registered before the exchange kept names with their first party (a
    # database from then): the line of the first party's key stays.
    ledger = harness.app.ledger
    note = ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    kor = registered(harness, "KOR", "shared.name")
    line = kor.cosign(body_of(note), now(harness))
    assert harness.exchange.witnesses.cosign(harness.principals["KOR"], size, line)["kept"] is True
    registered(harness, "KOR", "kor2.witness.example")
    usa = Cosigner("shared.name", ExchangeSigner.generate())
    with harness.app.store.writing() as s:
        ExchangeRepo.put_witness(
            s,
            party="USA",
            name="shared.name",
            key_id=usa.public.key_id.hex(),
            public_key=usa.public.vkey(),
            at=harness.clock(),
            leaf_index=0,
        )
    with pytest.raises(Conflict, match="another party's witness key"):
        harness.exchange.witnesses.cosign(harness.principals["USA"], size, usa.cosign(body_of(note), now(harness)))
    assert line in ledger.cosigned_checkpoint(size)


def test_a_cosignature_of_an_older_size_is_checked_against_that_size(harness: Harness) -> None:
    kor = registered(harness, "KOR")
    old = harness.app.ledger.checkpoint()
    old_size = int(body_of(old).split("\n")[1])
    harness.submit("JPN", recipients=["KOR"])
    assert harness.app.ledger.size() > old_size
    harness.exchange.witnesses.cosign(harness.principals["KOR"], old_size, kor.cosign(body_of(old), now(harness)))
    assert harness.app.ledger.cosigned_checkpoint(old_size).startswith(old)
    assert harness.app.ledger.checkpoint_at(old_size) == old


def test_a_cosignature_of_another_tree_is_refused_and_not_recorded(harness: Harness) -> None:
    kor = registered(harness, "KOR")
    note = harness.app.ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    lines = body_of(note).split("\n")
    forked = "\n".join([lines[0], lines[1], "A" * 43 + "=", ""])
    with pytest.raises(InvalidInput, match="another tree"):
        harness.exchange.witnesses.cosign(harness.principals["KOR"], size, kor.cosign(forked, now(harness)))
    with pytest.raises(UnknownEntity):
        harness.app.ledger.cosigned_checkpoint()


def test_what_a_hostile_caller_tries_is_refused(harness: Harness) -> None:
    kor = registered(harness, "KOR")
    note = harness.app.ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    svc = harness.exchange.witnesses
    line = kor.cosign(body_of(note), now(harness))
    with pytest.raises(NotPermitted, match="no registered witness"):
        svc.cosign(harness.principals["JPN"], size, line)  # JPN posting KOR's line
    registered(harness, "JPN")
    with pytest.raises(InvalidInput, match="not by JPN's witness"):
        svc.cosign(harness.principals["JPN"], size, line)
    with pytest.raises(NotPermitted):
        svc.cosign(harness.principals["auditor"], size, line)
    with pytest.raises(UnknownEntity):
        svc.cosign(harness.principals["KOR"], harness.app.ledger.size() + 1, line)
    with pytest.raises(InvalidInput):
        svc.cosign(harness.principals["KOR"], size, "\u2014 kor.witness.example AAAA")
    with pytest.raises(InvalidInput, match="at most"):
        svc.cosign(harness.principals["KOR"], size, "x" * 2000)
    ahead = int((harness.clock() + timedelta(hours=1)).timestamp())
    with pytest.raises(InvalidInput, match="ahead"):
        svc.cosign(harness.principals["KOR"], size, kor.cosign(body_of(note), ahead))
    with pytest.raises(UnknownEntity):
        harness.app.ledger.cosigned_checkpoint()


def test_the_ledger_entry_of_a_registration_is_canonical_json(harness: Harness) -> None:
    w = registered(harness, "USA")
    index = harness.exchange.witnesses.witnesses(harness.principals["USA"])[0].leaf_index
    entry = harness.app.ledger.entry(index)
    assert json.loads(base64.b64decode(entry["body"]))["vkey"] == w.public.vkey()


def test_a_cosignature_with_a_token_revoked_before_its_commit_is_refused(harness: Harness) -> None:
    kor = registered(harness, "KOR")
    note = harness.app.ledger.checkpoint()
    size = int(body_of(note).split("\n")[1])
    principal = harness.principals["KOR"]  # authenticated before the revocation, as a request in flight
    harness.app.exchange.identity.revoke(principal.id)
    with pytest.raises(NotAuthenticated):
        harness.exchange.witnesses.cosign(principal, size, kor.cosign(body_of(note), now(harness)))
    with pytest.raises(UnknownEntity):
        harness.app.ledger.cosigned_checkpoint(size)  # nothing was kept


def test_a_database_from_before_names_stayed_learns_every_name_from_the_ledger(
    harness: Harness, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Revision 0010 fills the table of witness keys from the registrations in the ledger.
    registered(harness, "KOR")
    registered(harness, "KOR", "kor2.witness.example")
    harness.close()
    db = sqlite3.connect(harness.app.settings.data_dir / "exchange.db")
    try:
        db.execute("DROP TABLE witness_keys")
        db.execute("UPDATE alembic_version SET version_num = '0009'")
        db.commit()
    finally:
        db.close()
    upgraded = harness.clone(tmp_path_factory.mktemp("upgraded"))
    try:
        with pytest.raises(Conflict, match="was KOR's"):
            registered(upgraded, "USA", "kor.witness.example")
        registered(upgraded, "USA", "usa.witness.example")
    finally:
        upgraded.close()
