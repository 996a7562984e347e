"""The ledger service: appends in the caller's transaction, checkpoints, proofs and verification.

Entries are produced the way the exchange produces them: ``LedgerService.append`` inside
``Store.writing()``. The tamper tests flip every byte of a checkpoint and of a proof and
require ``verify`` to fail and name what was altered.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gsomia.crypto.ledger_key import LedgerKey, read_ledger_keyfile
from gsomia.errors import InvalidInput, StorageError, UnknownEntity
from gsomia.ledger.audit import verify_ledger, verify_proof
from gsomia.ledger.checkpoint import parse_note
from gsomia.ledger.entries import entry_bytes, entry_leaf_hash
from gsomia.ledger.merkle import verify_consistency, verify_inclusion
from gsomia.ledger.tree import MerkleTree
from gsomia.services.ledger.service import LedgerService
from gsomia.storage.ledger import Session
from gsomia.storage.store import Store

NOW = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def entry(n: int, kind: str = "delivery") -> dict[str, Any]:
    return {"type": kind, "report": f"r-{n}", "recipient": "KOR", "n": n}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'g.db'}")
    yield s
    s.close()


@pytest.fixture
def ledger(store: Store, tmp_path: Path) -> LedgerService:
    return LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)


def fill(store: Store, ledger: LedgerService, n: int, *, start: int = 0) -> None:
    with store.writing() as s:
        for i in range(start, start + n):
            ledger.append(s, entry(i))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def failing_transaction(store: Store, ledger: LedgerService, e: dict[str, Any]) -> None:
    with store.writing() as s:
        assert ledger.append(s, e) == 2
        raise RuntimeError("the state change failed after its ledger entry")


def failing_savepoint(s: Session, ledger: LedgerService, e: dict[str, Any]) -> None:
    with contextlib.suppress(ValueError), s.begin_nested():
        ledger.append(s, e)
        raise ValueError("the action failed after its ledger entry")


# --- appending ------------------------------------------------------------------------------------


def test_appends_get_consecutive_indices_and_reach_the_tree_on_commit(store: Store, ledger: LedgerService) -> None:
    assert ledger.size() == 0
    with store.writing() as s:
        assert [ledger.append(s, entry(i)) for i in range(3)] == [0, 1, 2]
        assert ledger.size() == 0  # not committed yet: not in the tree
    assert ledger.size() == 3
    with store.writing() as s:
        assert ledger.append(s, entry(3, "ack")) == 3
    assert ledger.size() == 4
    assert ledger.entry(3)["entry"] == entry(3, "ack")


def test_a_rolled_back_transaction_leaves_no_leaf(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 2)
    root_before = ledger.inclusion(0)["root"]
    with pytest.raises(RuntimeError, match="failed after its ledger entry"):
        failing_transaction(store, ledger, entry(99))
    assert ledger.size() == 2
    assert ledger.inclusion(0)["root"] == root_before
    with pytest.raises(UnknownEntity):
        ledger.entry(2)
    # The index is reused: the log stays gap-free.
    with store.writing() as s:
        assert ledger.append(s, entry(2)) == 2
    assert ledger.size() == 3
    assert ledger.verify().ok


def test_a_rolled_back_savepoint_drops_only_its_leaves(store: Store, ledger: LedgerService) -> None:
    # The exchange's group commit runs each action in a savepoint of one shared transaction.
    with store.writing() as s:
        for i in range(6):
            if i % 3 == 1:
                failing_savepoint(s, ledger, entry(i))  # this action fails; the others commit
            else:
                with s.begin_nested():
                    ledger.append(s, entry(i))
    assert [e["entry"]["n"] for e in ledger.entries(0, 100)] == [0, 2, 3, 5]
    assert ledger.size() == 4
    assert ledger.verify().ok


def test_a_released_savepoint_is_not_a_commit(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 1)

    def released_then_failed() -> None:
        with store.writing() as s:
            with s.begin_nested():
                ledger.append(s, entry(1))
            assert ledger.size() == 1  # released, but the transaction is still open
            raise RuntimeError("the transaction fails after the savepoint")

    with pytest.raises(RuntimeError, match="after the savepoint"):
        released_then_failed()
    assert ledger.size() == 1
    assert [e["index"] for e in ledger.entries(0, 10)] == [0]
    assert ledger.verify().ok


def test_append_needs_an_open_write_transaction(store: Store, ledger: LedgerService) -> None:
    with store.reading() as s, pytest.raises(StorageError, match=r"Store\.writing\(\)"):
        ledger.append(s, entry(0))
    assert ledger.size() == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"report": "r-1"}, "ledger entry type None"),
        ({"type": "payload"}, "ledger entry type 'payload'"),
        ({"type": "delivery", "x": float("nan")}, "RFC 8785"),
        ({"type": "delivery", "x": 2**60}, "RFC 8785"),
        ({"type": "delivery", "blob": "x" * (1 << 20)}, "limit"),
    ],
)
def test_entries_that_cannot_be_ledgered_are_refused(
    store: Store, ledger: LedgerService, bad: dict[str, Any], message: str
) -> None:
    with store.writing() as s, pytest.raises(InvalidInput, match=message):
        ledger.append(s, bad)
    assert ledger.size() == 0


def test_concurrent_writer_threads_stay_gap_free(store: Store, ledger: LedgerService) -> None:
    ledger.open()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for t in range(20):
                with store.writing() as s:
                    for k in range(1 + t % 3):
                        ledger.append(s, entry(w * 1000 + t * 10 + k))
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    total = 4 * sum(1 + t % 3 for t in range(20))
    assert ledger.size() == total
    rows = ledger.entries(0, 1000)
    assert [r["index"] for r in rows] == list(range(total))
    assert len({r["entry"]["n"] for r in rows}) == total
    expected = MerkleTree.from_leaf_hashes([entry_leaf_hash(r["entry"]) for r in rows]).root()
    assert unb64(ledger.inclusion(0)["root"]) == expected
    assert ledger.verify().ok


# --- checkpoints and proofs -------------------------------------------------------------------------


def test_checkpoint_is_a_signed_note_of_the_tree(store: Store, ledger: LedgerService) -> None:
    empty = ledger.checkpoint()
    origin = ledger.origin
    assert re.fullmatch(r"gsomia/[0-9a-f]{16}", origin)
    assert empty.startswith(f"{origin}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— ")
    fill(store, ledger, 5)
    key = LedgerKey.parse(json.dumps(ledger.public_key()))
    cp = key.open(ledger.checkpoint())
    leaves = [entry_leaf_hash(entry(i)) for i in range(5)]
    assert (cp.origin, cp.size, cp.root_hash) == (origin, 5, MerkleTree.from_leaf_hashes(leaves).root())
    published = ledger.public_key()
    assert published["algorithm"] == "ed25519" and published["vkey"].startswith(f"{origin}+")
    assert LedgerKey.parse(published["vkey"]) == key


def test_inclusion_and_consistency_proofs_verify_at_every_size(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 13)
    for size in range(1, 14):
        for index in range(size):
            p = ledger.inclusion(index, size)
            verify_inclusion(unb64(p["leaf_hash"]), index, size, [unb64(h) for h in p["proof"]], unb64(p["root"]))
            assert ("checkpoint" in p) == (size == 13)
        for old in range(size + 1):
            c = ledger.consistency(old, size)
            verify_consistency(old, size, unb64(c["old_root"]), unb64(c["new_root"]), [unb64(h) for h in c["proof"]])
    current = ledger.inclusion(4)
    assert parse_note(current["checkpoint"])[0].size == 13


def test_proofs_beyond_the_ledger_are_unknown(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 3)
    with pytest.raises(UnknownEntity, match="not in the tree of size 3"):
        ledger.inclusion(3)
    with pytest.raises(UnknownEntity, match="no tree of size 9"):
        ledger.inclusion(0, 9)
    with pytest.raises(UnknownEntity, match="no tree of size 9"):
        ledger.consistency(1, 9)
    with pytest.raises(InvalidInput, match="goes forward"):
        ledger.consistency(3, 2)
    with pytest.raises(InvalidInput):
        ledger.inclusion(-1)
    with pytest.raises(UnknownEntity, match="ledger entry 7 does not exist"):
        ledger.entry(7)
    with pytest.raises(InvalidInput, match="limit"):
        ledger.entries(0, 5000)


def test_a_restart_rebuilds_the_same_tree(store: Store, ledger: LedgerService, tmp_path: Path) -> None:
    fill(store, ledger, 21)
    note = ledger.checkpoint()
    again = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    assert again.checkpoint() == note  # same key, same tree, deterministic Ed25519


def test_another_process_appending_is_caught_up(store: Store, ledger: LedgerService, tmp_path: Path) -> None:
    # Two services on one database stand for two API workers over one PostgreSQL.
    other = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    ledger.open()
    other.open()
    fill(store, other, 3)
    fill(store, ledger, 2, start=3)  # this worker's leaf 3 arrives with leaves 0..2 missing in memory
    assert ledger.size() == 5
    assert other.inclusion(4)["size"] == 5  # asked beyond its tree: it catches up
    assert ledger.checkpoint() == other.checkpoint()


# --- the key file ------------------------------------------------------------------------------------


def test_the_key_file_is_created_0600_and_kept(store: Store, ledger: LedgerService, tmp_path: Path) -> None:
    path = tmp_path / "exchange-ledger.key"
    assert not path.exists()
    key = ledger.public_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b64(read_ledger_keyfile(path).public_key_raw()) == key["public_key"]
    again = LedgerService(store, key_file=path, clock=clock)
    assert again.public_key() == key


def test_an_unsafe_key_file_is_refused(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "exchange-ledger.key"
    LedgerService(store, key_file=path, clock=clock).open()
    os.chmod(path, 0o640)
    with pytest.raises(InvalidInput, match=r"chmod 600"):
        LedgerService(store, key_file=path, clock=clock).checkpoint()
    os.chmod(path, 0o600)
    doc = json.loads(path.read_text())
    doc["public_key"] = b64(bytes(32))
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="does not match the private key"):
        LedgerService(store, key_file=path, clock=clock).open()


def test_a_bad_origin_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="origin"):
        LedgerService(store, key_file=tmp_path / "k", origin="two words", clock=clock)


# --- verification and tampering ------------------------------------------------------------------------


def _flip(data: bytes, position: int) -> bytes:
    out = bytearray(data)
    out[position] ^= 0x01
    return bytes(out)


def test_verify_reports_success_with_what_it_checked(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 9)
    kept = ledger.checkpoint()
    fill(store, ledger, 4, start=9)
    report = ledger.verify(since=kept)
    assert report.ok, report.problem
    doc = report.as_dict()
    assert doc["entries"] == 13 and doc["checkpoint"]["size"] == 13 and doc["since"]["size"] == 9
    assert "consistent with your kept checkpoint (size 9)" in doc["checks"]


def test_flipping_any_byte_of_the_checkpoint_is_named(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 6)
    note = ledger.checkpoint().encode()
    key = ledger.key()
    rows = [(i, entry_bytes(entry(i)), None) for i in range(6)]
    assert verify_ledger([rows], key=key, checkpoint=note, source="test").ok
    for position in range(len(note)):
        report = verify_ledger([rows], key=key, checkpoint=_flip(note, position), source="test")
        assert report.problem is not None, f"byte {position} of the checkpoint was flipped unnoticed"
        assert report.problem.kind == "checkpoint", (position, report.problem)
        assert report.problem.message.startswith("the checkpoint does not verify"), report.problem.message


def test_flipping_any_byte_of_the_kept_checkpoint_is_named(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 4)
    kept = ledger.checkpoint().encode()
    fill(store, ledger, 2, start=4)
    for position in range(len(kept)):
        report = ledger.verify(since=_flip(kept, position).decode("utf-8", errors="surrogateescape"))
        assert report.problem is not None and report.problem.kind == "kept-checkpoint", position


def test_flipping_any_byte_of_an_inclusion_proof_is_named(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 11)
    proof = ledger.inclusion(6)
    proof["entry"] = ledger.entry(6)["entry"]
    key = ledger.key()
    assert verify_proof(proof, key=key).ok
    assert ledger.verify(proofs=[proof]).ok
    for k, element in enumerate(proof["proof"]):
        raw = unb64(element)
        for position in range(len(raw)):
            bad = dict(proof, proof=[*proof["proof"][:k], b64(_flip(raw, position)), *proof["proof"][k + 1 :]])
            # Against the re-derived ledger: the element is named.
            problem = ledger.verify(proofs=[bad]).problem
            assert problem is not None and (problem.kind, problem.index, problem.element) == ("inclusion-proof", 6, k)
            # Offline, against the signed checkpoint alone: the proof of entry 6 is named.
            problem = verify_proof(bad, key=key).problem
            assert problem is not None and problem.kind == "inclusion-proof" and problem.index == 6
            assert "entry 6" in problem.message
    for member in ("leaf_hash", "root"):
        raw = unb64(proof[member])
        bad = dict(proof, **{member: b64(_flip(raw, 0))})
        problem = verify_proof(bad, key=key).problem
        assert problem is not None and problem.kind == "inclusion-proof", member


def test_flipping_any_byte_of_a_consistency_proof_is_named(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 5)
    kept = ledger.checkpoint()
    fill(store, ledger, 8, start=5)
    proof = ledger.consistency(5)
    key = ledger.key()
    assert verify_proof(proof, key=key, since=kept).ok
    for k, element in enumerate(proof["proof"]):
        raw = unb64(element)
        for position in range(0, len(raw), 7):
            bad = dict(proof, proof=[*proof["proof"][:k], b64(_flip(raw, position)), *proof["proof"][k + 1 :]])
            problem = verify_proof(bad, key=key, since=kept).problem
            assert problem is not None and problem.kind == "consistency-proof"
            problem = ledger.verify(since=kept, proofs=[bad]).problem
            assert problem is not None and (problem.kind, problem.element) == ("consistency-proof", k)


def test_a_proof_text_edit_that_keeps_the_bytes_is_still_refused(store: Store, ledger: LedgerService) -> None:
    # Base64 has two spellings for some values (unused low bits); only the canonical one passes.
    fill(store, ledger, 3)
    proof = ledger.inclusion(1)
    element = proof["proof"][0]
    assert element.endswith("=")
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    alias = element[:-2] + last[last.index(element[-2]) ^ 1] + "="
    assert unb64(alias) == unb64(element)
    problem = verify_proof(dict(proof, proof=[alias, *proof["proof"][1:]]), key=ledger.key()).problem
    assert problem is not None and problem.element == 0


def test_a_served_consistency_proof_is_checked_element_by_element(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 5)
    kept = ledger.checkpoint()
    fill(store, ledger, 8, start=5)
    served = [unb64(h) for h in ledger.consistency(5)["proof"]]
    rows = [(i, entry_bytes(entry(i)), None) for i in range(13)]

    def check(proof: list[bytes]) -> Any:
        return verify_ledger(
            [rows], key=ledger.key(), checkpoint=ledger.checkpoint(), since=kept, served_consistency=lambda o, n: proof,
            source="a server",
        ).problem  # fmt: skip

    assert check(served) is None
    for k in range(len(served)):
        bad = [*served[:k], _flip(served[k], 3), *served[k + 1 :]]
        problem = check(bad)
        assert problem is not None and (problem.kind, problem.element) == ("consistency-proof", k)
    problem = check(served[:-1])
    assert problem is not None and f"has {len(served) - 1} hashes; the tree's has {len(served)}" in problem.message


def test_published_key_forms_parse_back() -> None:
    # Many keys, so base64 holding "+" and "/" is covered.
    for seed in range(64):
        raw = bytes([seed]) * 32
        key = LedgerKey(name="gsomia.local/ledger", public_key=raw)
        assert LedgerKey.parse(key.vkey()) == key
        assert LedgerKey.parse(json.dumps(key.to_dict())) == key
        assert LedgerKey.parse(b64(raw), name="gsomia.local/ledger") == key
    with pytest.raises(InvalidInput, match="vkey"):
        LedgerKey.parse("gsomia.local/ledger+00000000+" + b64(b"\x01" + bytes(32)))
    with pytest.raises(InvalidInput, match="origin"):
        LedgerKey.parse(b64(bytes(32)))


def test_indices_beyond_64_bits_are_invalid_input(store: Store, ledger: LedgerService) -> None:
    fill(store, ledger, 1)
    for call in (lambda: ledger.entry(2**64), lambda: ledger.entries(2**70, 10), lambda: ledger.inclusion(0, 2**64)):
        with pytest.raises(InvalidInput, match="between 0 and"):
            call()


def test_each_log_names_itself_once_and_keeps_its_name(store: Store, tmp_path: Path) -> None:
    first = LedgerService(store, key_file=tmp_path / "k1", clock=clock).origin
    assert re.fullmatch(r"gsomia/[0-9a-f]{16}", first)
    # every process over the same database reads the same name
    assert LedgerService(store, key_file=tmp_path / "k1", clock=clock).origin == first
    # a configured name that is not the log's is refused, not silently used
    with pytest.raises(InvalidInput, match="keeps its name for life"):
        LedgerService(store, key_file=tmp_path / "k1", clock=clock, origin="example.org/other").origin  # noqa: B018


def test_a_log_with_entries_from_before_names_keeps_the_old_shared_name(tmp_path: Path) -> None:
    older = Store(f"sqlite:///{tmp_path / 'older.db'}")
    try:
        ledger = LedgerService(older, key_file=tmp_path / "k", clock=clock)
        with older.writing() as s:
            ledger.append(s, entry(0))  # written before any origin was recorded
        assert LedgerService(older, key_file=tmp_path / "k", clock=clock).origin == "gsomia.local/ledger"
    finally:
        older.close()


def test_a_lost_key_file_is_refused_once_a_checkpoint_was_signed(
    store: Store, ledger: LedgerService, tmp_path: Path
) -> None:
    fill(store, ledger, 3)
    assert not (tmp_path / "exchange-ledger.key").exists()  # entries, but nothing signed yet
    unsigned = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    unsigned.key()  # no checkpoint was signed yet: the key is made now, as on a first start
    unsigned.checkpoint()
    (tmp_path / "exchange-ledger.key").unlink()
    lost = LedgerService(store, key_file=tmp_path / "exchange-ledger.key", clock=clock)
    with pytest.raises(StorageError, match="is missing, and this database holds checkpoints it signed"):
        lost.key()
    assert not (tmp_path / "exchange-ledger.key").exists()  # not made anew
