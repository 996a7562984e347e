"""The exchange's checkpoint key: a 0600 file written once and read back only if it is intact,
and its public half read in every published form (JSON, vkey, bare base64) or refused with the
form it should have had; and the key-encryption key file refused when it is not a plain 0600
file of base64."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gsomia.crypto.kek import load_or_create_kek
from gsomia.crypto.ledger_key import (
    LedgerKey,
    load_or_create_ledger_key,
    read_ledger_keyfile,
    write_ledger_keyfile,
)
from gsomia.crypto.signing import ExchangeSigner
from gsomia.errors import InvalidInput

CREATED = datetime(2019, 11, 22, 1, 0, tzinfo=UTC)
NAME = "gsomia.local/ledger"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def test_the_key_file_is_written_once_0600_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.key"
    signer = load_or_create_ledger_key(path, created=CREATED)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_ledger_key(path, created=CREATED).public_key_raw() == signer.public_key_raw()
    assert json.loads(path.read_text(encoding="utf-8"))["created"] == "2019-11-22T01:00:00Z"
    with pytest.raises(InvalidInput, match="already exists; refusing to overwrite it"):
        write_ledger_keyfile(path, ExchangeSigner.generate(), created=CREATED)
    assert read_ledger_keyfile(path).public_key_raw() == signer.public_key_raw()


def test_a_key_file_needs_an_aware_time_and_a_place_to_go(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        write_ledger_keyfile(tmp_path / "k", ExchangeSigner.generate(), created=datetime(2019, 11, 22))  # noqa: DTZ001
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(InvalidInput, match="cannot create the folder of the ledger key"):
        write_ledger_keyfile(blocker / "ledger.key", ExchangeSigner.generate(), created=CREATED)
    with pytest.raises(InvalidInput, match="cannot create the folder of the ledger key"):
        load_or_create_ledger_key(blocker / "ledger.key", created=CREATED)


def rewrite(path: Path, **members: object) -> None:
    doc = json.loads(path.read_text(encoding="utf-8")) | members
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}), encoding="utf-8")


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"created": None}, "expected exactly the members"),
        ({"extra": 1}, "expected exactly the members"),
        ({"format": "v0"}, "unsupported format 'v0'"),
        ({"algorithm": "rsa"}, "unsupported format"),
        ({"private_key": "***"}, "private_key"),
        ({"private_key": b64(bytes(5))}, "ledger key file"),
        ({"public_key": b64(bytes(32))}, "the public key does not match the private key; the file is corrupt"),
    ],
)
def test_a_damaged_key_file_is_refused(tmp_path: Path, members: dict[str, object], message: str) -> None:
    path = tmp_path / "ledger.key"
    load_or_create_ledger_key(path, created=CREATED)
    rewrite(path, **members)
    with pytest.raises(InvalidInput, match=message):
        read_ledger_keyfile(path)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    load_or_create_ledger_key(path, created=CREATED)
    path.chmod(0o640)
    with pytest.raises(InvalidInput, match="chmod 600"):
        read_ledger_keyfile(path)


# --- the public half --------------------------------------------------------------------------------


def key() -> LedgerKey:
    return LedgerKey(name=NAME, public_key=ExchangeSigner.generate().public_key_raw())


def test_every_published_form_reads_back_as_the_same_key() -> None:
    k = key()
    assert LedgerKey.parse(json.dumps(k.to_dict())) == k
    assert LedgerKey.parse(f"  {k.vkey()}\n") == k
    assert LedgerKey.parse(b64(k.public_key), name=NAME) == k
    assert LedgerKey.parse(json.dumps({"name": NAME, "public_key": b64(k.public_key)})) == k


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": 1, "public_key": "AAAA"}', "expected a JSON object with name and base64 public_key"),
        ('{"name": "x"}', "expected a JSON object with name and base64 public_key"),
        ('{"public_key": "AAAA"}', "expected a JSON object with name and base64 public_key"),
        ("gsomia.local/ledger+00000000+AAAA", r"a vkey is NAME\+KEYID\+base64"),
        ("gsomia.local/ledger+00", r"a vkey is NAME\+KEYID\+base64"),
        ("not a key at all", "give the JSON from 'gsomia ledger key --json', a vkey, or base64 of 32 bytes"),
        (b64(bytes(16)), "base64 of 32 bytes"),
    ],
)
def test_malformed_keys_say_which_form_to_give(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        LedgerKey.parse(text)


def test_a_key_whose_id_or_algorithm_does_not_match_is_refused() -> None:
    k = key()
    with pytest.raises(InvalidInput, match="unsupported algorithm 'rsa'"):
        LedgerKey.parse(json.dumps({**k.to_dict(), "algorithm": "rsa"}))
    with pytest.raises(InvalidInput, match="key_id does not match"):
        LedgerKey.parse(json.dumps({**k.to_dict(), "key_id": "00000000"}))
    name, _, rest = k.vkey().partition("+")
    with pytest.raises(InvalidInput, match="key ID does not match"):
        LedgerKey.parse(f"{name}+00000000+{rest.partition('+')[2]}")
    with pytest.raises(InvalidInput, match="needs the log's origin as its name"):
        LedgerKey.parse(b64(k.public_key))
    with pytest.raises(InvalidInput, match="32 bytes"):
        LedgerKey(name=NAME, public_key=bytes(31))


# --- the key-encryption key file --------------------------------------------------------------------


def test_a_kek_that_is_not_a_plain_file_of_base64_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "exchange.kek"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InvalidInput, match="not a regular file"):
        load_or_create_kek(fifo)
    binary = tmp_path / "binary.kek"
    binary.write_bytes(b"\xff" * 44)
    binary.chmod(0o600)
    with pytest.raises(InvalidInput, match="not base64 text"):
        load_or_create_kek(binary)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(InvalidInput, match="cannot create the key-encryption key"):
        load_or_create_kek(blocker / "exchange.kek")
    dangling = tmp_path / "dangling.kek"
    os.symlink(tmp_path / "nowhere", dangling)
    with pytest.raises(InvalidInput, match="key-encryption key"):
        load_or_create_kek(dangling)
