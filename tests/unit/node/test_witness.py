"""The node's witness: it accepts only checkpoints that extend the last one it accepted,
cosigns them, and raises the alarm on a fork or a rollback."""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gsomia.crypto.ledger_key import Cosigner, CosignerPublicKey, LedgerKey
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import ExchangeError, ExchangeUnreachable, InvalidInput, LedgerInvalid
from gsomia.ledger.checkpoint import Checkpoint, sign_note
from gsomia.ledger.cosignature import quorum, split_line
from gsomia.ledger.merkle import leaf_hash
from gsomia.ledger.tree import MerkleTree
from gsomia.node.store import NodeStore, alarms
from gsomia.node.sync import Quarantined, Syncer
from gsomia.node.witness import Accepted, LedgerWitness

ORIGIN = "gsomia.test/ledger"


class FakeLog:
    """A log as the exchange serves it: signed checkpoints, consistency proofs, cosignatures."""

    def __init__(self, signer: ExchangeSigner, leaves: int, *, carries: bool = False) -> None:
        self.signer = signer
        self.carries = carries
        """Answer a consistency proof to the current size with its checkpoint, as the exchange does."""
        self.requests: list[str] = []
        self.key = LedgerKey(name=ORIGIN, public_key=signer.public_key_raw())
        self.tree = MerkleTree()
        self.add(leaves)
        self.cosigned: list[tuple[int, str]] = []

    def add(self, n: int, tag: bytes = b"e") -> None:
        for _ in range(n):
            self.tree.append(leaf_hash(tag + secrets.token_bytes(8)))

    def note(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        cp = Checkpoint(origin=ORIGIN, size=size, root_hash=self.tree.root(size))
        return sign_note(cp, ORIGIN, self.key.key_id, self.signer.sign)

    # the ExchangeClient methods the witness uses
    def ledger_checkpoint(self) -> str:
        self.requests.append("checkpoint")
        return self.note()

    def ledger_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        self.requests.append("consistency")
        if old > (self.tree.size if new is None else new):
            raise InvalidInput("old size is larger than new size: a consistency proof goes forward")
        proof = self.tree.consistency_proof(old, new)
        doc: dict[str, Any] = {"old": old, "new": new, "proof": [base64.b64encode(h).decode() for h in proof]}
        if self.carries and new is None:
            doc |= {"new": self.tree.size, "checkpoint": self.note()}
        return doc

    def cosign(self, size: int, line: str) -> dict[str, Any]:
        self.cosigned.append((size, line))
        return {"size": size}


@pytest.fixture(params=[False, True], ids=["checkpoint-then-proof", "proof-carries-checkpoint"])
def carries(request: pytest.FixtureRequest) -> bool:
    """Every test runs against both answers: the witness must judge a log the same either way."""
    return bool(request.param)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NodeStore]:
    s = NodeStore(tmp_path / "node.db", secrets.token_bytes(32))
    s.put("witness.registered", "yes")
    yield s
    s.close()


def witness(store: NodeStore, log: FakeLog, events: list[tuple[str, dict[str, Any]]]) -> LedgerWitness:
    cosigner = Cosigner("kor.node.test", ExchangeSigner.generate())
    store.put("cosigner", cosigner.public.vkey())
    return LedgerWitness(store, key=log.key, cosigner=cosigner, publish=lambda k, d: events.append((k, d)))


def test_extensions_are_accepted_and_cosigned(store: NodeStore, carries: bool) -> None:
    log = FakeLog(ExchangeSigner.generate(), 5, carries=carries)
    events: list[tuple[str, dict[str, Any]]] = []
    w = witness(store, log, events)
    assert w.advance(log).size == 5  # type: ignore[arg-type,union-attr]
    log.add(7)
    assert w.advance(log).size == 12  # type: ignore[arg-type,union-attr]
    assert [s for s, _ in log.cosigned] == [5, 12]
    vkey = CosignerPublicKey.parse(store.get("cosigner") or "")
    note = log.note(12) + log.cosigned[-1][1] + "\n"
    assert quorum(note, [vkey])[1] == ["kor.node.test"]  # a valid cosignature of what it saw
    assert w.alarm() is None and w.summary()["accepted"] == 2


def test_a_diverged_history_is_a_fork_and_stops_acceptance(store: NodeStore, carries: bool) -> None:
    signer = ExchangeSigner.generate()
    log = FakeLog(signer, 5, carries=carries)
    events: list[tuple[str, dict[str, Any]]] = []
    w = witness(store, log, events)
    w.advance(log)  # type: ignore[arg-type]
    other = FakeLog(signer, 3, carries=carries)  # the same key, another history
    other.add(6, b"x")
    with pytest.raises(LedgerInvalid, match="fork"):
        w.advance(other)  # type: ignore[arg-type]
    alarm = w.alarm()
    assert alarm is not None and alarm["kind"] == "fork"
    assert "\n5\n" in alarm["first"] and "\n9\n" in alarm["second"]
    assert events[-1][0] == "alarm"
    log.add(4)
    assert w.advance(log).size == 5  # type: ignore[arg-type,union-attr]  # nothing more is accepted
    w.clear_alarm("chief")
    assert w.alarm() is None


def test_the_same_size_with_another_root_is_a_fork_and_a_smaller_tree_a_rollback(tmp_path: Path, carries: bool) -> None:
    signer = ExchangeSigner.generate()
    for kind, other_size, other_tag in (("fork", 5, b"y"), ("rollback", 3, b"e")):
        store = NodeStore(tmp_path / f"{kind}.db", secrets.token_bytes(32))
        try:
            log = FakeLog(signer, 5, carries=carries)
            events: list[tuple[str, dict[str, Any]]] = []
            w = witness(store, log, events)
            w.advance(log)  # type: ignore[arg-type]
            other = FakeLog(signer, 0, carries=carries)
            other.add(other_size, other_tag)
            with pytest.raises(LedgerInvalid, match=kind):
                w.advance(other)  # type: ignore[arg-type]
            assert w.alarm()["kind"] == kind  # type: ignore[index]
        finally:
            store.close()


def test_a_checkpoint_not_signed_by_the_pinned_key_is_refused_and_raises_the_key_alarm_once(
    store: NodeStore, carries: bool
) -> None:
    signer = ExchangeSigner.generate()
    log = FakeLog(signer, 5, carries=carries)
    events: list[tuple[str, dict[str, Any]]] = []
    w = witness(store, log, events)
    w.advance(log)  # type: ignore[arg-type]
    pinned = log.key
    rekey(log)  # the exchange's key file replaced: the same tree, grown, signed with another key
    log.add(3)
    with pytest.raises(LedgerInvalid, match=r"^key: the exchange's checkpoint is not signed by the pinned ledger key"):
        w.advance(log)  # type: ignore[arg-type]
    alarm = w.alarm()
    assert alarm is not None and alarm["kind"] == "key", alarm
    assert alarm["first"] == log_note(signer, pinned, log, 5) and alarm["second"] == log.note(8)  # the evidence
    assert pinned.key_id.hex() in alarm["detail"] and log.key.key_id.hex() in alarm["detail"]
    assert [k for k, _ in events].count("alarm") == 1
    for _ in range(3):  # every later round: nothing accepted, cosigned, or raised again
        log.add(1)
        assert w.advance(log).size == 5  # type: ignore[arg-type,union-attr]
    assert [k for k, _ in events].count("alarm") == 1 and _alarm_rows(store) == 1
    assert [s for s, _ in log.cosigned] == [5]


def rekey(log: FakeLog, signer: ExchangeSigner | None = None) -> None:
    """The exchange signs with another key from now on (its key file replaced), or ``signer``."""
    log.signer = signer or ExchangeSigner.generate()
    log.key = LedgerKey(name=ORIGIN, public_key=log.signer.public_key_raw())


def log_note(signer: ExchangeSigner, key: LedgerKey, log: FakeLog, size: int) -> str:
    """The note ``signer`` signed of ``log``'s tree at ``size``."""
    cp = Checkpoint(origin=ORIGIN, size=size, root_hash=log.tree.root(size))
    return sign_note(cp, ORIGIN, key.key_id, signer.sign)


def _alarm_rows(store: NodeStore) -> int:
    with store.read() as c:
        return int(c.execute(select(func.count()).select_from(alarms)).scalar_one())


def test_a_node_that_never_accepted_a_checkpoint_raises_the_key_alarm_too(store: NodeStore, carries: bool) -> None:
    log = FakeLog(ExchangeSigner.generate(), 5, carries=carries)
    w = witness(store, log, [])
    impostor = FakeLog(ExchangeSigner.generate(), 5, carries=carries)
    with pytest.raises(LedgerInvalid, match=r"^key: "):
        w.advance(impostor)  # type: ignore[arg-type]
    alarm = w.alarm()
    assert alarm is not None and alarm["kind"] == "key" and alarm["first"] == "" and alarm["second"] == impostor.note()
    assert w.latest() is None


class CosignedLog(FakeLog):
    """A log whose checkpoints carry a second signature, by another key (signed-note allows
    several: a verifier ignores the keys it does not know)."""

    def __init__(self, signer: ExchangeSigner, leaves: int, *, other: ExchangeSigner, carries: bool) -> None:
        super().__init__(signer, leaves, carries=carries)
        self.other = other
        self.other_key = LedgerKey(name="another.example/log", public_key=other.public_key_raw())

    def note(self, size: int | None = None) -> str:
        signed = super().note(size)
        body = signed.split("\n\n", 1)[0] + "\n"
        extra = sign_note(
            Checkpoint(origin=ORIGIN, size=int(body.split("\n")[1]), root_hash=self.tree.root(size)),
            self.other_key.name,
            self.other_key.key_id,
            self.other.sign,
        ).rsplit("\n", 2)[-2]
        return signed + extra + "\n"


def test_a_checkpoint_signed_by_the_pinned_key_and_another_is_accepted(store: NodeStore, carries: bool) -> None:
    log = CosignedLog(ExchangeSigner.generate(), 5, other=ExchangeSigner.generate(), carries=carries)
    assert log.note().count("\n\u2014 ") == 2
    w = witness(store, log, [])
    assert w.advance(log).size == 5  # type: ignore[arg-type,union-attr]
    log.add(2)
    assert w.advance(log).size == 7 and w.alarm() is None  # type: ignore[arg-type,union-attr]


class ForgedLog(FakeLog):
    """A log whose checkpoints carry, besides the pinned key's valid signature or instead of it,
    a signature under the pinned key's name and ID that does not verify."""

    def __init__(self, signer: ExchangeSigner, leaves: int, *, keep_valid: bool) -> None:
        super().__init__(signer, leaves)
        self.keep_valid = keep_valid

    def note(self, size: int | None = None) -> str:
        signed = super().note(size)
        body, line = signed.rsplit("\n\u2014 ", 1)
        forged = "\u2014 " + line[:-5] + ("A" if line[-5] != "A" else "B") + line[-4:]
        return (signed if self.keep_valid else body + "\n") + forged


@pytest.mark.parametrize("keep_valid", [False, True], ids=["forged-only", "valid-and-forged"])
def test_a_signature_under_the_pinned_key_that_does_not_verify_raises_the_key_alarm(
    store: NodeStore, keep_valid: bool
) -> None:
    log = FakeLog(ExchangeSigner.generate(), 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    forged = ForgedLog(log.signer, 0, keep_valid=keep_valid)
    forged.tree = log.tree
    with pytest.raises(LedgerInvalid, match=r"^key: .*does not verify"):
        w.advance(forged)  # type: ignore[arg-type]
    assert w.alarm()["kind"] == "key" and w.latest().size == 5  # type: ignore[index,union-attr]


class UnreachableLog(FakeLog):
    """An exchange that cannot be reached (a network error), or that serves something that is no
    signed note at all (a proxy's error page)."""

    def __init__(self, signer: ExchangeSigner, leaves: int, *, answer: str | None) -> None:
        super().__init__(signer, leaves)
        self.answer = answer

    def ledger_checkpoint(self) -> str:
        if self.answer is None:
            raise ExchangeUnreachable("connection refused")
        return self.answer

    def ledger_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        if self.answer is None:
            raise ExchangeUnreachable("connection refused")
        return {"old": old, "new": new, "proof": [], "checkpoint": self.answer}


@pytest.mark.parametrize("answer", [None, "<html>502 Bad Gateway</html>\n"], ids=["unreachable", "not-a-note"])
def test_a_network_error_or_an_answer_that_is_no_note_raises_no_alarm(store: NodeStore, answer: str | None) -> None:
    log = FakeLog(ExchangeSigner.generate(), 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    down = UnreachableLog(log.signer, 5, answer=answer)
    with pytest.raises(ExchangeUnreachable if answer is None else LedgerInvalid):
        w.advance(down)  # type: ignore[arg-type]
    assert w.alarm() is None and w.latest().size == 5  # type: ignore[union-attr]
    log.add(2)
    assert w.advance(log).size == 7  # type: ignore[arg-type,union-attr]


def test_clearing_a_key_alarm_keeps_the_accepted_checkpoints_as_the_base(store: NodeStore) -> None:
    signer = ExchangeSigner.generate()
    log = FakeLog(signer, 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    rekey(log)
    with pytest.raises(LedgerInvalid, match=r"^key: "):
        w.advance(log)  # type: ignore[arg-type]
    rekey(log, signer)  # the exchange's key put back
    cleared = w.clear_alarm("chief")
    assert cleared is not None and cleared["kind"] == "key"
    assert w.latest().size == 5  # type: ignore[union-attr]  # the history it signed is still the base
    other = FakeLog(signer, 0)
    other.add(6, b"x")  # so a diverged tree after the episode is still a fork
    with pytest.raises(LedgerInvalid, match="fork"):
        w.advance(other)  # type: ignore[arg-type]


def test_a_standing_key_alarm_names_itself_in_the_quarantine_of_a_delivery(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5)
    w, sync = grown(store, log)
    rekey(log)
    with pytest.raises(LedgerInvalid, match=r"^key: "):
        w.advance(log)  # type: ignore[arg-type]
    try:
        assert sync._advance(log).size == 5  # type: ignore[arg-type,union-attr]  # quietly, under the alarm
        with pytest.raises(Quarantined) as caught:
            sync._ledger(log, {"leaf_index": 9, "origin": {"leaf_index": 8}}, {}, 0)  # type: ignore[arg-type]
    finally:
        sync.close()
    assert caught.value.reason == "checkpoint_inconsistent"
    assert "ledger alarm (key)" in caught.value.detail, caught.value.detail


class GarbledLog(FakeLog):
    """A log whose consistency proofs come as JSON that is not an object."""

    def ledger_consistency(self, old: int, new: int | None = None) -> Any:
        self.requests.append("consistency")
        return [old, new]


def test_a_consistency_answer_that_is_not_an_object_is_a_fork_not_a_crash(store: NodeStore) -> None:
    log = GarbledLog(ExchangeSigner.generate(), 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    log.add(4)
    # an AttributeError here ended the node's witness thread, which catches gsomia's errors only
    with pytest.raises(LedgerInvalid, match=r"fork.*the proof is missing"):
        w.advance(log)  # type: ignore[arg-type]
    assert w.alarm()["kind"] == "fork" and w.latest().size == 5  # type: ignore[index,union-attr]


def _signed_leaf(body: bytes) -> tuple[FakeLog, Accepted, dict[str, Any]]:
    """A log whose leaf 3 holds ``body``, its checkpoint, and the inclusion proof of leaf 3."""
    log = FakeLog(ExchangeSigner.generate(), 3)
    log.tree.append(leaf_hash(body))
    log.add(2)
    cp = Accepted(6, log.tree.root(6), log.note())
    return log, cp, {"proof": [base64.b64encode(h).decode() for h in log.tree.inclusion_proof(3, 6)]}


@pytest.mark.parametrize(
    "body", [b"not json", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000], ids=["text", "not-utf8", "nested"]
)
def test_an_included_leaf_that_is_not_json_is_refused_not_a_crash(store: NodeStore, body: bytes) -> None:
    log, cp, proof = _signed_leaf(body)  # the exchange signed a tree holding it
    record = {"body": base64.b64encode(body).decode()}
    with pytest.raises(LedgerInvalid, match="entry 3: not JSON"):
        witness(store, log, []).check_inclusion(log, 3, cp, record=record, proof=proof)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"recipient":"JPN","recipient":"KOR","type":"delivery"}', "given twice"),
        (b'{"recipient": "KOR", "type": "delivery"}', "not the RFC 8785 canonical form"),
        (b'{"type":"delivery","recipient":"KOR"}', "not the RFC 8785 canonical form"),
        (b'{"n":1.0,"type":"delivery"}', "not the RFC 8785 canonical form"),
        (b'{"recipient":"K\\u004fR","type":"delivery"}', "not the RFC 8785 canonical form"),
        (b'{"n":9007199254740993,"type":"delivery"}', "cannot be canonicalised"),
    ],
    ids=["member-twice", "whitespace", "member-order", "number-spelling", "string-escape", "beyond-2**53"],
)
def test_an_included_leaf_that_is_not_its_entry_s_canonical_form_is_refused(
    store: NodeStore, body: bytes, why: str
) -> None:
    # docs/protocol.md §5.1: the leaf bytes are JCS(entry). The exchange signed a tree holding
    # other bytes, which two parsers (last member wins, first member wins) read as two entries.
    log, cp, proof = _signed_leaf(body)
    record = {"body": base64.b64encode(body).decode()}
    with pytest.raises(LedgerInvalid, match=f"entry 3: .*{why}"):
        witness(store, log, []).check_inclusion(log, 3, cp, record=record, proof=proof)  # type: ignore[arg-type]


def test_an_included_leaf_in_canonical_form_is_its_entry(store: NodeStore) -> None:
    body = b'{"recipient":"KOR","type":"delivery"}'
    log, cp, proof = _signed_leaf(body)
    record = {"body": base64.b64encode(body).decode()}
    got = witness(store, log, []).check_inclusion(log, 3, cp, record=record, proof=proof)  # type: ignore[arg-type]
    assert got == {"recipient": "KOR", "type": "delivery"}


@pytest.mark.parametrize(("record", "proof"), [([], {}), ({"body": "e30="}, [])], ids=["record", "proof"])
def test_an_entry_record_or_proof_that_is_not_an_object_is_refused(store: NodeStore, record: Any, proof: Any) -> None:
    log, cp, _ = _signed_leaf(b"{}")
    with pytest.raises(LedgerInvalid, match="not a JSON object"):
        witness(store, log, []).check_inclusion(log, 3, cp, record=record, proof=proof)  # type: ignore[arg-type]


class ShrunkLog(FakeLog):
    """A log that answers a proof from a larger size with its smaller checkpoint."""

    def ledger_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        self.requests.append("consistency")
        return {"old": old, "new": self.tree.size, "proof": [], "checkpoint": self.note()}


def test_a_smaller_checkpoint_carried_by_a_proof_is_a_rollback(store: NodeStore) -> None:
    signer = ExchangeSigner.generate()
    log = FakeLog(signer, 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    shrunk = ShrunkLog(signer, 3)
    with pytest.raises(LedgerInvalid, match="rollback"):
        w.advance(shrunk)  # type: ignore[arg-type]
    assert w.alarm()["kind"] == "rollback" and shrunk.requests == ["consistency"]  # type: ignore[index]


class OtherOriginLog(FakeLog):
    """A log whose checkpoints name another origin, signed with the pinned key all the same."""

    def note(self, size: int | None = None) -> str:
        size = self.tree.size if size is None else size
        cp = Checkpoint(origin="gsomia.test/another-log", size=size, root_hash=self.tree.root(size))
        return sign_note(cp, ORIGIN, self.key.key_id, self.signer.sign)


def test_a_checkpoint_of_another_origin_is_neither_accepted_nor_cosigned(store: NodeStore, carries: bool) -> None:
    # tlog-witness: a witness cosigns only checkpoints of the log it knows, whatever key signed them
    log = OtherOriginLog(ExchangeSigner.generate(), 5, carries=carries)
    w = witness(store, log, [])
    with pytest.raises(LedgerInvalid, match="another log"):
        w.advance(log)  # type: ignore[arg-type]
    assert w.latest() is None and log.cosigned == []


def test_a_proof_that_carries_its_checkpoint_takes_one_request(store: NodeStore) -> None:
    log = FakeLog(ExchangeSigner.generate(), 5, carries=True)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    assert log.requests == ["checkpoint"]  # nothing kept yet to prove from
    log.requests.clear()
    log.add(7)
    assert w.advance(log).size == 12  # type: ignore[arg-type,union-attr]
    assert log.requests == ["consistency"]
    log.requests.clear()
    assert w.advance(log).size == 12  # type: ignore[arg-type,union-attr]
    assert log.requests == ["consistency"]  # nothing new: still one request
    assert [size for size, _ in log.cosigned] == [5, 12]


class SkewedLog(FakeLog):
    """Answers a proof to a smaller size than the checkpoint it carries."""

    def ledger_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        if new is not None:
            return super().ledger_consistency(old, new)
        self.requests.append("consistency")
        short = self.tree.size - 3
        proof = [base64.b64encode(h).decode() for h in self.tree.consistency_proof(old, short)]
        return {"old": old, "new": short, "proof": proof, "checkpoint": self.note()}


def test_a_carried_checkpoint_of_another_size_than_the_proof_is_not_taken_on_its_word(store: NodeStore) -> None:
    log = SkewedLog(ExchangeSigner.generate(), 5, carries=True)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    log.add(7)
    log.requests.clear()
    assert w.advance(log).size == 12  # type: ignore[arg-type,union-attr]
    # the proof to 9 proves nothing of the checkpoint of 12: the checkpoint, then its own proof
    assert log.requests == ["consistency", "checkpoint", "consistency"]
    assert w.alarm() is None


# --- the sync brings the checkpoint up to date with the proofs of a page ----------------------


class ProvingLog(FakeLog):
    """A log that also serves entries with their inclusion proofs
    (``/ledger/proof/inclusions``); ``knows_old=False`` is an exchange that predates the
    proofs in the current tree (it requires a size)."""

    def __init__(self, signer: ExchangeSigner, leaves: int, *, knows_old: bool = True, lie: int = 0) -> None:
        super().__init__(signer, leaves)
        self.knows_old = knows_old
        self.lie = lie  # answer the proofs for a tree this much smaller than the checkpoint

    def ledger_inclusions(
        self, indexes: list[int], size: int | None = None, *, old: int | None = None
    ) -> dict[str, Any]:
        self.requests.append("inclusions" if size is None else f"inclusions@{size}")
        if size is None and not self.knows_old:
            raise InvalidInput("size: field required")
        n = (self.tree.size if size is None else size) - self.lie
        b64 = base64.b64encode
        items = [
            {
                "index": i,
                "entry": {"i": i},
                "proof": {"index": i, "size": n, "proof": [b64(h).decode() for h in self.tree.inclusion_proof(i, n)]},
            }
            for i in indexes
            if i < n
        ]
        out: dict[str, Any] = {"size": n, "items": items}
        if size is None:
            out["checkpoint"] = self.note()
            if old is not None:
                proof = self.tree.consistency_proof(old, self.tree.size)
                out["consistency"] = {"old": old, "new": self.tree.size, "proof": [b64(h).decode() for h in proof]}
        return out

    def ledger_entry(self, index: int) -> dict[str, Any]:
        self.requests.append(f"entry {index}")
        return {"index": index, "entry": {"i": index}}


def syncer(store: NodeStore, w: LedgerWitness) -> Syncer:
    return Syncer(store, party="KOR", keyring=None, witness=w, connect=None, publish=lambda k, d: None)  # type: ignore[arg-type]


def grown(store: NodeStore, log: ProvingLog) -> tuple[LedgerWitness, Syncer]:
    """A node whose witness accepted ``log`` at its size, after which the log grew by 7."""
    w = witness(store, log, [])
    w.advance(log, cosign=False)  # type: ignore[arg-type]
    log.add(7)
    log.requests.clear()
    return w, syncer(store, w)


def views(*pairs: tuple[int, int]) -> list[dict[str, Any]]:
    return [{"leaf_index": d, "origin": {"leaf_index": s}} for d, s in pairs]


def test_a_page_brings_the_checkpoint_and_its_proofs_in_one_request(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5)
    w, s = grown(store, log)
    s._prove(log, views((10, 6), (11, 7)))  # type: ignore[arg-type]
    assert log.requests == ["inclusions"]  # no checkpoint, no consistency proof apart
    latest = w.latest()
    assert latest is not None and latest.size == 12 and latest.root == log.tree.root(12)
    assert sorted(s._proved) == [6, 7, 10, 11]
    assert all(cp == latest and got["proof"]["size"] == 12 for cp, got in s._proved.values())
    s.close()


def test_an_exchange_without_proofs_in_the_current_tree_is_asked_as_before(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5, knows_old=False)
    w, s = grown(store, log)
    s._prove(log, views((10, 6)))  # type: ignore[arg-type]
    assert log.requests == ["inclusions", "checkpoint", "consistency", "inclusions@12"]
    assert sorted(s._proved) == [6, 10] and w.latest().size == 12  # type: ignore[union-attr]
    s.close()


def test_proofs_answered_for_another_tree_than_the_checkpoint_are_not_kept(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5, lie=1)
    w, s = grown(store, log)
    s._prove(log, views((10, 6)))  # type: ignore[arg-type]
    # the checkpoint and its consistency proof verify, so it is accepted; the proofs of the
    # answer are for size 11, so they are asked again in the tree of the accepted size
    assert w.latest().size == 12  # type: ignore[union-attr]
    assert log.requests == ["inclusions", "inclusions@12"]
    s.close()


def test_a_fork_in_the_answer_with_the_proofs_raises_the_alarm_and_keeps_none(store: NodeStore) -> None:
    signer = ExchangeSigner.generate()
    log = ProvingLog(signer, 5)
    w = witness(store, log, [])
    w.advance(log, cosign=False)  # type: ignore[arg-type]
    other = ProvingLog(signer, 3)  # the same key, another history
    other.add(9, b"x")
    s = syncer(store, w)
    s._prove(other, views((10, 6)))  # type: ignore[arg-type]
    alarm = w.alarm()
    assert alarm is not None and alarm["kind"] == "fork"
    assert s._proved == {} and w.latest().size == 5  # type: ignore[union-attr]
    s.close()


def _stored(store: NodeStore) -> list[int]:
    from sqlalchemy import select

    from gsomia.node.store import checkpoints

    with store.read() as c:
        return [int(size) for size in c.execute(select(checkpoints.c.size).order_by(checkpoints.c.size)).scalars()]


def test_a_page_s_checkpoint_is_stored_with_its_results_not_before(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5)
    w, s = grown(store, log)
    s._prove(log, views((10, 6)))  # type: ignore[arg-type]
    assert w.latest().size == 12 and _stored(store) == [5]  # type: ignore[union-attr]  # held
    with store.write() as c:  # the transaction of the page's results
        kept = w.keep(c)
    w.kept(kept)
    assert _stored(store) == [5, 12] and w._held is None
    s.close()


def test_a_checkpoint_never_stored_with_results_is_not_remembered_after_a_restart(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5)
    _, s = grown(store, log)
    s._prove(log, views((10, 6)))  # type: ignore[arg-type]
    s.close()
    again = witness(store, log, [])  # the node stopped before the page's results were stored
    assert again.latest().size == 5  # type: ignore[union-attr]
    log.add(3)
    assert again.advance(log).size == 15  # type: ignore[arg-type,union-attr]  # from the stored one
    assert _stored(store) == [5, 15]


def test_the_witness_s_own_round_stores_a_held_checkpoint_before_it_builds_on_it(store: NodeStore) -> None:
    log = ProvingLog(ExchangeSigner.generate(), 5)
    w, s = grown(store, log)
    s._prove(log, views((10, 6)))  # type: ignore[arg-type]
    assert w.advance(log).size == 12  # type: ignore[arg-type,union-attr]  # the same size, cosigned
    assert _stored(store) == [5, 12] and [size for size, _ in log.cosigned] == [12]
    s.close()


def test_a_fork_after_a_held_checkpoint_drops_it(store: NodeStore) -> None:
    signer = ExchangeSigner.generate()
    log = ProvingLog(signer, 5)
    w, s = grown(store, log)
    s._prove(log, views((10, 6)))  # type: ignore[arg-type]
    other = ProvingLog(signer, 3)  # the same key, another history, larger
    other.add(20, b"x")
    s._prove(other, views((20, 6)))  # type: ignore[arg-type]
    assert w.alarm() is not None and w._held is None
    assert w.latest().size == 5 and _stored(store) == [5]  # type: ignore[union-attr]
    s.close()


class OnceGarbledLog(FakeLog):
    """An honest log whose first consistency proof is garbled on the way (a proof is not signed:
    anyone between the exchange and the node can change it)."""

    garble_next = False

    def ledger_consistency(self, old: int, new: int | None = None) -> dict[str, Any]:
        doc = super().ledger_consistency(old, new)
        if self.garble_next and (new is not None or "checkpoint" in doc):  # a proof that will be checked
            self.garble_next = False
            doc["proof"] = [base64.b64encode(secrets.token_bytes(32)).decode() for _ in doc["proof"]]
        return doc


def test_a_consistency_proof_garbled_once_is_asked_again_and_the_extension_accepted(
    store: NodeStore, carries: bool
) -> None:
    log = OnceGarbledLog(ExchangeSigner.generate(), 13, carries=carries)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    log.add(3)
    log.garble_next = True
    assert w.advance(log).size == 16  # type: ignore[arg-type,union-attr]
    assert w.alarm() is None and log.requests[-2:] == ["consistency", "consistency"]  # the garbled one, and again


# --- numbers the node's store cannot hold ------------------------------------------------------


class HugeLog(FakeLog):
    """A log whose checkpoints claim ``size`` leaves (validly signed: a checkpoint's size is a
    64-bit number), served as the sync and the witness loop ask for them."""

    def __init__(self, signer: ExchangeSigner, size: int) -> None:
        super().__init__(signer, 0)
        self.size = size

    def note(self, size: int | None = None) -> str:
        cp = Checkpoint(origin=ORIGIN, size=self.size, root_hash=b"\1" * 32)
        return sign_note(cp, ORIGIN, self.key.key_id, self.signer.sign)

    def __enter__(self) -> HugeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def exercise(self) -> dict[str, Any]:
        return {"exercise": False}


@pytest.mark.parametrize("size", [2**63, 2**64 - 1])
def test_a_checkpoint_larger_than_a_ledger_can_be_is_refused_without_an_alarm(store: NodeStore, size: int) -> None:
    # its size does not fit the node's store: every round failed there, silently
    log = HugeLog(ExchangeSigner.generate(), size)
    w = witness(store, log, [])
    with pytest.raises(LedgerInvalid, match="size"):
        w.advance(log)  # type: ignore[arg-type]
    assert w.latest() is None and w.alarm() is None and log.cosigned == []


def test_a_checkpoint_larger_than_a_ledger_can_be_shows_as_the_exchange_s_error(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = HugeLog(ExchangeSigner.generate(), 2**63)
    w = witness(store, log, [])
    s = Syncer(store, party="KOR", keyring=None, witness=w, connect=lambda: log, publish=lambda k, d: None)  # type: ignore[arg-type,return-value]
    stop, rounds = threading.Event(), list[int]()

    def wait(_timeout: float | None = None) -> bool:
        rounds.append(1)
        return len(rounds) > 1

    monkeypatch.setattr(stop, "wait", wait)
    try:
        s.witness_loop(stop, 60.0)
        with pytest.raises(ExchangeError, match="size"):
            s._advance(log)  # type: ignore[arg-type]
    finally:
        s.close()
    assert store.get("exchange.reachable") == "false"
    assert "size" in (store.get("exchange.error") or "")
    assert w.latest() is None and w.alarm() is None


class _LostAnswerLog(FakeLog):
    """A log whose answer to a cosignature is lost (kept, then the connection cut), or that
    refuses it."""

    def __init__(self, signer: ExchangeSigner, leaves: int) -> None:
        super().__init__(signer, leaves)
        self.fail: Exception | None = None

    def cosign(self, size: int, line: str) -> dict[str, Any]:
        if self.fail is not None:
            if isinstance(self.fail, ExchangeUnreachable):
                super().cosign(size, line)  # kept; the answer never arrives
            raise self.fail
        return super().cosign(size, line)


def _stamps(log: FakeLog) -> list[int]:
    return [split_line(line).timestamp for _, line in log.cosigned]


def test_cosignature_timestamps_never_go_back_when_the_clock_does(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tlog-cosignature: a cosignature says what the largest consistent tree was as of its
    # time; a later one of a larger tree at an earlier time contradicts it
    clock = [2_000_000_000.0]
    monkeypatch.setattr("gsomia.node.witness.time.time", lambda: clock[0])
    log = _LostAnswerLog(ExchangeSigner.generate(), 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    clock[0] -= 3600  # the clock set back an hour
    log.add(2)
    w.advance(log)  # type: ignore[arg-type]
    log.fail = ExchangeUnreachable("cut mid-answer")
    log.add(2)
    clock[0] += 10
    with pytest.raises(ExchangeUnreachable):
        w.advance(log)  # type: ignore[arg-type]
    clock[0] -= 600
    log.fail = None
    again = witness(store, log, [])  # restarted (a new key would not change the rule)
    again.cosigner = w.cosigner
    again.advance(log)  # type: ignore[arg-type]
    assert [s for s, _ in log.cosigned] == [5, 7, 9, 9]
    stamps = _stamps(log)
    assert stamps == sorted(stamps) and stamps[0] == 2_000_000_000


def test_a_refused_cosignature_does_not_hold_back_the_next_timestamps(
    store: NodeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [2_000_000_000.0]
    monkeypatch.setattr("gsomia.node.witness.time.time", lambda: clock[0])
    log = _LostAnswerLog(ExchangeSigner.generate(), 5)
    w = witness(store, log, [])
    w.advance(log)  # type: ignore[arg-type]
    clock[0] += 86_400  # a day ahead: the exchange refuses the line
    log.fail = ExchangeError("the cosignature's timestamp is ahead of the exchange's clock")
    log.add(2)
    w.advance(log)  # type: ignore[arg-type]
    clock[0] -= 86_400 - 60  # the clock put right
    log.fail = None
    w.advance(log)  # type: ignore[arg-type]
    assert [s for s, _ in log.cosigned] == [5, 7]
    assert _stamps(log) == [2_000_000_000, 2_000_000_060]
