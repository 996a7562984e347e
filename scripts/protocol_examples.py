#!/usr/bin/env python3
"""The worked examples of docs/protocol.md §8, computed from fixed keys and inputs.

Each example in docs/protocol.md is a fenced block right after an HTML comment
``<!-- example: NAME -->``. This script computes the text of every such block with the
exchange's own code (the functions the exchange and ``gsomia client`` run: report signing,
fingerprints, payload and key sealing, ledger entries, the Merkle tree, checkpoints,
cosignatures) from the constants below, so the document cannot drift from the code.
``tests/unit/test_protocol_examples.py`` runs it, compares every block and checks the values
against independent implementations (``rfc8785``, ``pyhpke``, PyNaCl, RFC 9162 and C2SP written
out in the test).

Usage (from the repository root, in the development environment)::

    .venv/bin/python scripts/protocol_examples.py            # print every example
    .venv/bin/python scripts/protocol_examples.py --check    # exit 1 if docs/protocol.md differs
    .venv/bin/python scripts/protocol_examples.py --write    # rewrite its example blocks

Fixed inputs: every private key, salt, nonce and id is made of constant bytes (listed in
docs/protocol.md §8 and below). They are test values: never use them.

Two things the exchange draws at random are fixed here so the examples can be reproduced: the
AES-GCM nonces (the exchange draws 12 random bytes) and HPKE's ephemeral key. ``cryptography``'s
HPKE draws its ephemeral key itself, so the wrap is computed step by step as RFC 9180 §4.1
(DHKEM) and §5 (key schedule, base mode, single-shot Seal) define it, with every intermediate
value shown; the test checks that the exchange's own unwrap and an independent HPKE library
open it, and that the independent library seals the same bytes with the same ephemeral key.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gsomia.codec import b64decode, b64encode
from gsomia.crypto import ExchangeSigner, PartyKeys, Profile, content_key_aad, delivery_info, payload_aad
from gsomia.crypto.ledger_key import Cosigner, LedgerKey
from gsomia.domain.instants import utc_iso
from gsomia.domain.record import Caveats, compile_network
from gsomia.domain.routing import ReleaseRequest, Route, explain
from gsomia.domain.states import DeliveryPurpose, DeliveryState
from gsomia.ledger.checkpoint import Checkpoint, sign_note
from gsomia.ledger.cosignature import cosigned_message
from gsomia.ledger.entries import entry_bytes
from gsomia.ledger.merkle import leaf_hash
from gsomia.ledger.tree import MerkleTree
from gsomia.scenario.loader import bundled_scenarios, parse_scenario
from gsomia.services.analysis.presenters import route_json
from gsomia.services.exchange.presenters import decision_entry_route, delivery_marking, delivery_view
from gsomia.services.exchange.relays import text_commitment
from gsomia.services.exchange.submissions import commitment
from gsomia.storage.exchange import DeliveryRow, SubmittedReportRow

__all__ = ["DOC", "Examples", "build", "doc_blocks", "render"]

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "protocol.md"

# --- the fixed inputs (docs/protocol.md §8) ---------------------------------------------------------

JPN_ED25519 = bytes([0x01]) * 32
"""JPN's Ed25519 private key (RFC 8032 §5.1.5 seed)."""
JPN_X25519 = bytes([0x02]) * 32
"""JPN's X25519 private key (RFC 7748 §5)."""
KOR_ED25519 = bytes([0x03]) * 32
KOR_X25519 = bytes([0x04]) * 32
HPKE_EPHEMERAL = bytes([0x05]) * 32
"""The sender's ephemeral X25519 private key skE of the example wrap (the exchange draws one per wrap)."""
LEDGER_SEED = bytes([0x07]) * 32
"""The exchange's ledger key (Ed25519 seed)."""
WITNESS_SEED = bytes([0x08]) * 32
"""KOR's node's cosigning key (Ed25519 seed)."""
CONTENT_KEY = bytes(range(0x10, 0x30))
"""The payload's AES-256 content key (the exchange draws 32 random bytes)."""
SALT = bytes(range(0x30, 0x50))
"""The salt of the ledger's commitment to the report (the exchange draws 32 random bytes)."""
KEK = bytes(range(0x50, 0x70))
"""The exchange's key-encryption key."""
PAYLOAD_NONCE = bytes(range(12))
KEK_NONCE = bytes(range(0x70, 0x7C))
TEXT_SALT = bytes(range(0x80, 0xA0))
"""The salt of the example commitment to a free text (a consent answer's reason)."""

ORIGIN = "gsomia/0f1e2d3c4b5a6978"
"""The example log's origin: ``gsomia/`` and 16 hex digits, as a deployment names itself."""
WITNESS_NAME = "kor.example/witness"
DELIVERY_ID = "d-00112233445566778899"
PRINCIPAL = "p-0123456789abcdef"
"""The principal that registered JPN's keys (a party's own account)."""
REPORT_ID = "R-2019-1122-01"
PAYLOAD = b'{"track":[[39.0,125.7,0],[40.1,133.2,950]]}\n'
CREATED = datetime.fromisoformat("2019-11-22T09:58:00+09:00")
AT = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)
"""The exchange clock when the report is received, decided and delivered."""
REGISTERED = datetime(2019, 11, 1, 0, 0, tzinfo=UTC)
"""When JPN and KOR registered their keys."""
RECORDED = datetime(2019, 11, 22, 1, 0, 0, 123456, tzinfo=UTC)
"""The wall clock of the write (``recorded_at``, not hashed)."""
COSIGNED = datetime(2019, 11, 22, 1, 1, tzinfo=UTC)
"""When KOR's node cosigned the checkpoint."""
REASON = "not for onward release"

_WIDTH = 64


# --- helpers -------------------------------------------------------------------------------------------


def _wrap(text: str, width: int = _WIDTH) -> str:
    return "\n".join(text[i : i + width] for i in range(0, len(text), width))


def _hex(data: bytes) -> str:
    return _wrap(data.hex())


def _labelled(rows: list[tuple[str, str]]) -> str:
    """``name  value`` lines, values aligned; a value longer than a line continues below it."""
    pad = max(len(name) for name, _ in rows) + 2
    out = []
    for name, value in rows:
        lines = value.split("\n")
        out.append(name.ljust(pad) + lines[0])
        out.extend(" " * pad + line for line in lines[1:])
    return "\n".join(out)


def _json_line(doc: Any) -> str:
    """One line of JSON as people write it (``", "`` and ``": "``), members in the given order."""
    return json.dumps(doc, ensure_ascii=False)


def _json_pretty(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2)


def _party(seed: bytes, x25519_key: bytes, party: str) -> PartyKeys:
    """A classic key set from its raw private keys."""
    return PartyKeys(
        party=party,
        profile=Profile.CLASSIC,
        created=REGISTERED,
        signing_key=ed25519.Ed25519PrivateKey.from_private_bytes(seed),
        encryption_key=x25519.X25519PrivateKey.from_private_bytes(x25519_key),
    )


# --- RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM ------------------------------


def _extract(salt: bytes, ikm: bytes) -> bytes:
    # RFC 5869 §2.2; an empty salt is HashLen zeros, which HMAC pads to the same key.
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 §2.3.
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)  # RFC 9180 §4


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite_id + label + info, length)  # RFC 9180 §4


@dataclass(frozen=True, slots=True)
class HpkeSeal:
    """Every value of one RFC 9180 SealBase, for the example."""

    sk_e: bytes
    enc: bytes
    pk_r: bytes
    dh: bytes
    kem_context: bytes
    shared_secret: bytes
    suite_id: bytes
    psk_id_hash: bytes
    info_hash: bytes
    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes
    ct: bytes


def hpke_seal_base(pk_r: bytes, info: bytes, pt: bytes, sk_e: bytes) -> HpkeSeal:
    """RFC 9180 SealBase with a given ephemeral key: DHKEM(X25519, HKDF-SHA256) (§4.1, §7.1),
    HKDF-SHA256, AES-256-GCM, mode_base, empty aad, sequence number 0 (§5.1, §5.2, §6.1)."""
    kem_suite = b"KEM" + struct.pack(">H", 0x0020)
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(sk_e)
    enc = ephemeral.public_key().public_bytes_raw()
    dh = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(pk_r))
    kem_context = enc + pk_r
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(kem_suite, eae_prk, b"shared_secret", kem_context, 32)
    suite_id = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, 0x0002)
    psk_id_hash = _labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite_id, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite_id, shared_secret, b"secret", b"")
    key = _labeled_expand(suite_id, secret, b"key", context, 32)
    base_nonce = _labeled_expand(suite_id, secret, b"base_nonce", context, 12)
    ct = AESGCM(key).encrypt(base_nonce, pt, b"")  # sequence number 0: the nonce is base_nonce
    return HpkeSeal(
        sk_e=sk_e,
        enc=enc,
        pk_r=pk_r,
        dh=dh,
        kem_context=kem_context,
        shared_secret=shared_secret,
        suite_id=suite_id,
        psk_id_hash=psk_id_hash,
        info_hash=info_hash,
        key_schedule_context=context,
        secret=secret,
        key=key,
        base_nonce=base_nonce,
        ct=ct,
    )


# --- the examples ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Examples:
    """The examples' values (for the test's independent checks) and the text of each block."""

    jpn: PartyKeys
    kor: PartyKeys
    submission: dict[str, Any]
    signed: bytes
    wrap: HpkeSeal
    info: bytes
    wrapped_key: bytes
    payload_ciphertext: bytes
    sealed_key: bytes
    view: dict[str, Any]
    registered: dict[str, list[dict[str, Any]]]
    entries: tuple[dict[str, Any], ...]
    leaves: tuple[bytes, ...]
    key_entry: dict[str, Any]
    witness_entry: dict[str, Any]
    ledger_key: LedgerKey
    note: str
    witness: Cosigner
    cosignature_line: str
    cosigned_note: str
    blocks: dict[str, str] = field(default_factory=dict)


def _route(originator: str, recipient: str, topic: str, level: str, caveats: Caveats) -> Route:
    path = bundled_scenarios()["japan-korea-2019"]
    net = compile_network(parse_scenario(path.read_text(encoding="utf-8"), str(path)).record)
    return explain(
        net,
        ReleaseRequest(originator=originator, recipient=recipient, topic=topic, level=level, at=AT, caveats=caveats),
    )


def _entry(kind: str, fields: Mapping[str, Any], at: datetime = AT) -> dict[str, Any]:
    # As ExchangeContext.entry builds it (outside exercise mode).
    return {"type": kind, **fields, "at": utc_iso(at)}


def _leaf_block(body: bytes) -> str:
    h = leaf_hash(body)
    return f"{body.decode('utf-8')}\n{h.hex()}\n{b64encode(h)}"


def _keys(
    blocks: dict[str, str], jpn: PartyKeys, kor: PartyKeys
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """§8.1: the public key documents, JPN's key history and its registration entry."""
    registered: dict[str, list[dict[str, Any]]] = {}
    for name, keys in (("jpn", jpn), ("kor", kor)):
        doc = keys.public_keys().to_dict()
        blocks[f"keys.{name}"] = "\n".join([_json_line(doc), entry_bytes(doc).decode("ascii"), keys.fingerprint()])
        registered[keys.party] = [
            {
                **doc,
                "fingerprint": keys.fingerprint(),
                "registered_at": utc_iso(REGISTERED),
                "retired_at": None,
                "current": True,
            }
        ]
    blocks["keys.registered"] = _json_pretty({"party": "JPN", "keys": registered["JPN"]})
    key_entry = _entry(
        "key",
        {
            "action": "registered",
            "party": "JPN",
            "fingerprint": jpn.fingerprint(),
            "profile": "classic",
            "retired": [],
            "by": PRINCIPAL,
        },
        REGISTERED,
    )
    blocks["ledger.key-entry"] = _leaf_block(entry_bytes(key_entry))
    return registered, key_entry


def _report(blocks: dict[str, str], jpn: PartyKeys) -> tuple[dict[str, Any], bytes, str]:
    """§8.2: the submission body, the signed bytes, the signature and the commitment."""
    from gsomia.client.reports import ReportDraft, sign_report  # noqa: PLC0415 - the client's own signing

    draft = ReportDraft(
        id=REPORT_ID,
        topic="dprk.missile.launch",
        level="極秘",
        payload=PAYLOAD,
        created=CREATED,
        recipients=["KOR"],
        rel_to=["KOR", "USA"],
        content_type="application/json",
    )
    submission = sign_report(jpn, draft)
    report = submission["report"]
    signed = entry_bytes(report)
    signature = b64decode(submission["signature"], "signature")
    blocks["report.payload"] = _hex(PAYLOAD)
    blocks["report.submission"] = _json_pretty(submission)
    blocks["report.signed"] = signed.decode("utf-8")
    blocks["report.signed.hex"] = _hex(signed)
    blocks["report.signature"] = f"{_hex(signature)}\n{submission['signature']}"
    committed = commitment(SALT, signed)
    blocks["report.commitment"] = _labelled(
        [("salt", SALT.hex()), ("salt (base64)", b64encode(SALT)), ("commitment", committed)]
    )
    return submission, signed, committed


def _envelopes(blocks: dict[str, str], kor: PartyKeys) -> tuple[bytes, HpkeSeal, bytes, bytes]:
    """§8.3: the HPKE wrap to KOR, step by step; the payload ciphertext; the sealed content key."""
    info = delivery_info(DELIVERY_ID, "KOR")
    pk_r = kor.public_keys().encryption_key
    seal = hpke_seal_base(pk_r, info, CONTENT_KEY, HPKE_EPHEMERAL)
    wrapped_key = seal.enc + seal.ct
    blocks["hpke.info"] = f"{info.decode('ascii')}\n{_hex(info)}"
    blocks["hpke.encap"] = _labelled(
        [
            ("skE", seal.sk_e.hex()),
            ("enc = pkE", seal.enc.hex()),
            ("pkR", seal.pk_r.hex()),
            ("dh", seal.dh.hex()),
            ("kem_context", _hex(seal.kem_context)),
            ("shared_secret", seal.shared_secret.hex()),
        ]
    )
    blocks["hpke.schedule"] = _labelled(
        [
            ("suite_id", seal.suite_id.hex()),
            ("psk_id_hash", seal.psk_id_hash.hex()),
            ("info_hash", seal.info_hash.hex()),
            ("key_schedule_context", _hex(seal.key_schedule_context)),
            ("secret", seal.secret.hex()),
            ("key", seal.key.hex()),
            ("base_nonce", seal.base_nonce.hex()),
        ]
    )
    blocks["hpke.wrapped"] = _labelled(
        [
            ("content key", CONTENT_KEY.hex()),
            ("ct", _hex(seal.ct)),
            ("wrapped_key", _hex(wrapped_key)),
            ("as served", b64encode(wrapped_key)),
            ("SHA-256", hashlib.sha256(wrapped_key).hexdigest()),
        ]
    )

    aad = payload_aad("JPN", REPORT_ID)
    payload_ct = PAYLOAD_NONCE + AESGCM(CONTENT_KEY).encrypt(PAYLOAD_NONCE, PAYLOAD, aad)
    blocks["payload.aad"] = _labelled(
        [("v2", _hex(aad)), ("v1 (format 1)", _hex(payload_aad("JPN", REPORT_ID, version=1)))]
    )
    blocks["payload.ciphertext"] = f"{_hex(payload_ct)}\n{b64encode(payload_ct)}"
    sealed_aad = content_key_aad("JPN", REPORT_ID)
    sealed = KEK_NONCE + AESGCM(KEK).encrypt(KEK_NONCE, CONTENT_KEY, sealed_aad)
    blocks["payload.sealed"] = _labelled(
        [("KEK", KEK.hex()), ("aad", _hex(sealed_aad)), ("nonce", KEK_NONCE.hex()), ("sealed_key", _hex(sealed))]
    )
    return info, seal, payload_ct, sealed


def _ledger(
    blocks: dict[str, str],
    jpn: PartyKeys,
    kor: PartyKeys,
    report: Mapping[str, Any],
    committed: str,
    wrapped_key: bytes,
) -> tuple[tuple[dict[str, Any], ...], tuple[bytes, ...], MerkleTree, dict[str, Any]]:
    """§8.4: the three entries the exchange writes, their leaves, the tree and its proofs."""
    caveats = Caveats.from_json(report["caveats"])
    route = _route("JPN", "KOR", report["topic"], report["level"], caveats)
    if route.marking is None:
        raise SystemExit("the example report is not releasable to KOR under the bundled scenario")
    marking = delivery_marking(route.marking)
    submission_entry = _entry(
        "submission",
        {
            "report": REPORT_ID,
            "originator": "JPN",
            "topic": report["topic"],
            "level": report["level"],
            "caveats": caveats.to_json(),
            "content_type": report["content_type"],
            "payload_size": len(PAYLOAD),
            "commitment": committed,
            "key": jpn.fingerprint(),
        },
    )
    decision_entry = _entry(
        "decision",
        {"report": REPORT_ID, "originator": "JPN", "recipient": "KOR", "outcome": "delivered"}
        | {"route": decision_entry_route(route_json(route, "UTC"))},
    )
    delivery_entry = _entry(
        "delivery",
        {
            "delivery": DELIVERY_ID,
            "report": REPORT_ID,
            "originator": "JPN",
            "recipient": "KOR",
            "purpose": DeliveryPurpose.DIRECT,
            "via": None,
            "marking": marking,
            "key": kor.fingerprint(),
            "wrapped_key_sha256": hashlib.sha256(wrapped_key).hexdigest(),
        },
    )
    entries = (submission_entry, decision_entry, delivery_entry)
    leaves = tuple(entry_bytes(e) for e in entries)
    for i, body in enumerate(leaves):
        blocks[f"ledger.entry{i}"] = _leaf_block(body)
    blocks["ledger.entry1.hex"] = _hex(leaves[1])
    blocks["ledger.record1"] = _json_pretty(
        {
            "index": 1,
            "entry": json.loads(leaves[1]),
            "body": b64encode(leaves[1]),
            "leaf_hash": b64encode(leaf_hash(leaves[1])),
            "recorded_at": RECORDED.isoformat().replace("+00:00", "Z"),
        }
    )
    tree = MerkleTree.from_leaf_hashes([leaf_hash(b) for b in leaves])
    blocks["ledger.tree"] = _labelled(
        [
            ("root of size 1 = leaf 0", f"{tree.root(1).hex()}\n{b64encode(tree.root(1))}"),
            ("root of size 2", f"{tree.root(2).hex()}\n{b64encode(tree.root(2))}"),
            ("root of size 3", f"{tree.root(3).hex()}\n{b64encode(tree.root(3))}"),
        ]
    )
    proofs = [(f"inclusion of entry {i}", tree.inclusion_proof(i, 3)) for i in range(3)]
    proofs += [(f"consistency {m} → 3", tree.consistency_proof(m, 3)) for m in (1, 2)]
    blocks["ledger.proofs"] = _labelled([(name + ":", json.dumps([b64encode(h) for h in p])) for name, p in proofs])
    reason = text_commitment(TEXT_SALT, "reason", REASON)
    blocks["ledger.text-commitment"] = _labelled(
        [
            ("salt", TEXT_SALT.hex()),
            ("message", _hex(b"reason\x00" + REASON.encode("utf-8"))),
            ("reason_commitment", reason),
        ]
    )
    return entries, leaves, tree, marking


def _delivery(
    blocks: dict[str, str],
    jpn: PartyKeys,
    kor: PartyKeys,
    submission: Mapping[str, Any],
    committed: str,
    marking: dict[str, Any],
    envelopes: tuple[bytes, bytes, bytes],
) -> dict[str, Any]:
    """§8.4: the delivery document KOR fetches, as the exchange presents it."""
    report = submission["report"]
    caveats = Caveats.from_json(report["caveats"])
    wrapped_key, payload_ct, sealed = envelopes
    unsigned = {k: v for k, v in report.items() if k != "payload"}
    view = delivery_view(
        DeliveryRow(
            id=DELIVERY_ID,
            report_id=f"JPN/{REPORT_ID}",
            recipient="KOR",
            originator="JPN",
            purpose=DeliveryPurpose.DIRECT,
            via=None,
            consent_id=None,
            marking=marking,
            state=DeliveryState.READY,
            profile="classic",
            key_fingerprint=kor.fingerprint(),
            wrapped_key=wrapped_key,
            created_at=AT,
            leaf_index=2,
            acked_at=None,
        ),
        SubmittedReportRow(
            id=f"JPN/{REPORT_ID}",
            originator="JPN",
            topic=report["topic"],
            level=report["level"],
            caveats=caveats.to_json(),
            created=report["created"],
            recipients=report["recipients"],
            content_type=report["content_type"],
            digest=committed,
            signature=submission["signature"],
            key=jpn.fingerprint(),
            payload=payload_ct,
            sealed_key=sealed,
            payload_size=len(PAYLOAD),
            received_at=AT,
            leaf_index=0,
            signed_report=entry_bytes(unsigned).decode("utf-8"),
            salt=SALT,
        ),
    )
    blocks["delivery.view"] = _json_pretty(view)
    return view


def _checkpoint(blocks: dict[str, str], tree: MerkleTree) -> tuple[LedgerKey, bytes, str]:
    """§8.5: the ledger key, the checkpoint of the tree of three and its signed note."""
    signer = ExchangeSigner.from_private_bytes(LEDGER_SEED)
    ledger_key = LedgerKey(name=ORIGIN, public_key=signer.public_key_raw())
    key_id_input = ORIGIN.encode("utf-8") + b"\n\x01" + ledger_key.public_key
    blocks["checkpoint.key"] = _labelled(
        [
            ("public key", f"{ledger_key.public_key.hex()}\n{b64encode(ledger_key.public_key)}"),
            ("key ID input", _hex(key_id_input)),
            ("key ID", ledger_key.key_id.hex()),
            ("vkey", ledger_key.vkey()),
        ]
    )
    blocks["checkpoint.key-document"] = _json_pretty(ledger_key.to_dict())
    checkpoint = Checkpoint(origin=ORIGIN, size=3, root_hash=tree.root(3))
    body = checkpoint.body()
    blocks["checkpoint.body"] = body.decode("utf-8").removesuffix("\n")
    blocks["checkpoint.signature"] = _hex(signer.sign(body))
    note = sign_note(checkpoint, ledger_key.name, ledger_key.key_id, signer.sign)
    blocks["checkpoint.note"] = note.removesuffix("\n")
    return ledger_key, body, note


def _witness(blocks: dict[str, str], body: bytes, note: str) -> tuple[Cosigner, dict[str, Any], str, str]:
    """§8.6: KOR's witness key, its registration entry, its cosignature and the cosigned note."""
    witness = Cosigner(WITNESS_NAME, ExchangeSigner.from_private_bytes(WITNESS_SEED))
    public = witness.public
    blocks["witness.key"] = _labelled(
        [
            ("public key", public.public_key.hex()),
            ("key ID input", _hex(WITNESS_NAME.encode("utf-8") + b"\n\x04" + public.public_key)),
            ("key ID", public.key_id.hex()),
            ("vkey", public.vkey()),
        ]
    )
    witness_entry = _entry(
        "key",
        {
            "action": "witness_registered",
            "party": "KOR",
            "witness": WITNESS_NAME,
            "vkey": public.vkey(),
            "replaced": None,
            "by": "p-fedcba9876543210",
        },
        REGISTERED,
    )
    blocks["witness.entry"] = _leaf_block(entry_bytes(witness_entry))
    timestamp = int(COSIGNED.timestamp())
    message = cosigned_message(body.decode("utf-8"), timestamp)
    line = witness.cosign(body.decode("utf-8"), timestamp)
    cosig = witness.signer.sign(message)
    blocks["cosignature.message"] = message.decode("utf-8").removesuffix("\n")
    blocks["cosignature.signature"] = _labelled(
        [
            ("timestamp", f"{timestamp} = {struct.pack('>Q', timestamp).hex()}"),
            ("signature", _hex(cosig)),
            ("key ID || timestamp || signature", _hex(public.key_id + struct.pack(">Q", timestamp) + cosig)),
        ]
    )
    blocks["cosignature.post"] = _json_pretty({"size": 3, "cosignature": line})
    cosigned_note = note + line + "\n"
    blocks["cosignature.note"] = cosigned_note.removesuffix("\n")
    return witness, witness_entry, line, cosigned_note


def build() -> Examples:
    """Compute every example from the fixed inputs.

    Raises:
        GsomiaError: the code refused an input (it would be a bug in this script).
    """
    blocks: dict[str, str] = {}
    jpn = _party(JPN_ED25519, JPN_X25519, "JPN")
    kor = _party(KOR_ED25519, KOR_X25519, "KOR")
    registered, key_entry = _keys(blocks, jpn, kor)
    submission, signed, committed = _report(blocks, jpn)
    info, seal, payload_ct, sealed = _envelopes(blocks, kor)
    wrapped_key = seal.enc + seal.ct
    entries, leaves, tree, marking = _ledger(blocks, jpn, kor, submission["report"], committed, wrapped_key)
    view = _delivery(blocks, jpn, kor, submission, committed, marking, (wrapped_key, payload_ct, sealed))
    ledger_key, body, note = _checkpoint(blocks, tree)
    witness, witness_entry, line, cosigned_note = _witness(blocks, body, note)
    return Examples(
        jpn=jpn,
        kor=kor,
        submission=submission,
        signed=signed,
        wrap=seal,
        info=info,
        wrapped_key=wrapped_key,
        payload_ciphertext=payload_ct,
        sealed_key=sealed,
        view=view,
        registered=registered,
        entries=entries,
        leaves=leaves,
        key_entry=key_entry,
        witness_entry=witness_entry,
        ledger_key=ledger_key,
        note=note,
        witness=witness,
        cosignature_line=line,
        cosigned_note=cosigned_note,
        blocks=blocks,
    )


# --- the document ------------------------------------------------------------------------------------------------

_BLOCK = re.compile(r"<!-- example: (?P<name>[a-z0-9.-]+) -->\n```(?P<lang>[a-z]*)\n(?P<body>.*?)\n```", re.DOTALL)


def doc_blocks(text: str) -> dict[str, str]:
    """The example blocks of the document, by name.

    Raises:
        ValueError: a name is used twice.
    """
    found: dict[str, str] = {}
    for m in _BLOCK.finditer(text):
        if m["name"] in found:
            raise ValueError(f"example {m['name']!r} appears twice in the document")
        found[m["name"]] = m["body"]
    return found


def render(text: str, blocks: Mapping[str, str]) -> str:
    """The document with every example block replaced by its computed text.

    Raises:
        KeyError: the document names an example this script does not compute.
    """

    def replace(m: re.Match[str]) -> str:
        return f"<!-- example: {m['name']} -->\n```{m['lang']}\n{blocks[m['name']]}\n```"

    return _BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    """Print, check or write the examples; 1 if ``--check`` finds a difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--check", action="store_true", help="exit 1 if docs/protocol.md differs from the computed examples"
    )
    mode.add_argument("--write", action="store_true", help="rewrite the example blocks of docs/protocol.md")
    args = parser.parse_args(argv)
    computed = build().blocks
    if not (args.check or args.write):
        for name, text in computed.items():
            sys.stdout.write(f"<!-- example: {name} -->\n{text}\n\n")
        return 0
    text = DOC.read_text(encoding="utf-8")
    present = doc_blocks(text)
    missing, unknown = sorted(set(computed) - set(present)), sorted(set(present) - set(computed))
    if args.write:
        if unknown:
            sys.stderr.write(f"docs/protocol.md names examples this script does not compute: {', '.join(unknown)}\n")
            return 1
        DOC.write_text(render(text, computed), encoding="utf-8")
        if missing:
            sys.stderr.write(f"not in docs/protocol.md (add a marked block for each): {', '.join(missing)}\n")
            return 1
        return 0
    differ = sorted(name for name in set(computed) & set(present) if computed[name] != present[name])
    for what, names in (("missing", missing), ("unknown", unknown), ("different", differ)):
        if names:
            sys.stderr.write(f"{what} examples in docs/protocol.md: {', '.join(names)}\n")
    return 1 if missing or unknown or differ else 0


if __name__ == "__main__":
    sys.exit(main())
