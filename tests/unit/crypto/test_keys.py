"""Party keys, public keys and private key files."""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from gsomia.crypto import (
    KEYFILE_FORMAT,
    PartyKeys,
    Profile,
    PublicKeys,
    read_private_keyfile,
    sign,
    spec,
    unwrap_key,
    verify,
    wrap_key,
    write_private_keyfile,
)
from gsomia.crypto.keyfile import replace_private_file
from gsomia.errors import InvalidInput

CREATED = datetime(2019, 8, 22, 6, 0, tzinfo=UTC)

# RFC 8032 §7.1 TEST 1 public key and RFC 7748 §6.1 Alice's public key.
ED25519_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
X25519_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")


@pytest.fixture(scope="module", params=list(Profile), ids=lambda p: p.value)
def keys(request: pytest.FixtureRequest) -> PartyKeys:
    return PartyKeys.generate("JPN", request.param, created=CREATED)


@pytest.fixture(scope="module")
def other(keys: PartyKeys) -> PartyKeys:
    return PartyKeys.generate("KOR", keys.profile, created=CREATED)


def _secrets(keys: PartyKeys) -> list[str]:
    """Every base64 private key string in the key set's private form."""
    doc = keys.to_private_dict()
    out: list[str] = []
    for member in ("signing", "encryption"):
        part = doc[member]
        assert isinstance(part, dict)
        out.extend(part.values())
    return out


# --- generation and public keys -------------------------------------------------------------


def test_generated_keys_have_the_profile_sizes(keys: PartyKeys) -> None:
    pub = keys.public_keys()
    sp = spec(keys.profile)
    assert pub.party == "JPN"
    assert pub.profile is keys.profile
    assert len(pub.signing_key) == sp.signing_public_length
    assert len(pub.encryption_key) == sp.encryption_public_length
    assert keys.created == CREATED


def test_generate_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    keys = PartyKeys.generate("USA")
    assert keys.profile is Profile.CLASSIC
    assert keys.created.tzinfo is UTC
    assert before <= keys.created <= datetime.now(UTC)


def test_created_is_normalised_to_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    keys = PartyKeys.generate("KOR", created=datetime(2019, 11, 22, 18, 0, tzinfo=seoul))
    assert keys.created == datetime(2019, 11, 22, 9, 0, tzinfo=UTC)
    assert keys.created.utcoffset() == timedelta(0)


def test_profile_may_be_given_by_name() -> None:
    assert PartyKeys.generate("NATO", "cnsa2").profile is Profile.CNSA2


@pytest.mark.parametrize("party", ["jpn", "J", "JPN\n", "JAPAN AND KOREA", "", "X" * 17])
def test_bad_party_ids_are_refused(party: str) -> None:
    with pytest.raises(InvalidInput, match="party id"):
        PartyKeys.generate(party)


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown crypto profile 'rsa'"):
        PartyKeys.generate("JPN", "rsa")


def test_naive_creation_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        PartyKeys.generate("JPN", created=datetime(2019, 8, 22))  # noqa: DTZ001 - the point of the test


def test_keys_of_the_wrong_profile_are_refused() -> None:
    classic = PartyKeys.generate("JPN", Profile.CLASSIC)
    cnsa2 = PartyKeys.generate("JPN", Profile.CNSA2)
    with pytest.raises(InvalidInput, match="cnsa2 key set needs ML-DSA-87"):
        PartyKeys(
            party="JPN",
            profile=Profile.CNSA2,
            created=CREATED,
            signing_key=classic.signing_key,
            encryption_key=cnsa2.encryption_key,
        )


def test_repr_shows_no_private_key(keys: PartyKeys) -> None:
    text = repr(keys)
    assert "JPN" in text
    for secret in _secrets(keys):
        assert secret not in text
    assert "signing_key" not in text
    assert "encryption_key" not in text


def test_public_keys_repr_is_short_and_names_the_fingerprint(keys: PartyKeys) -> None:
    pub = keys.public_keys()
    assert repr(pub) == f"PublicKeys(party='JPN', profile='{keys.profile.value}', fingerprint='{pub.fingerprint()}')"


def test_public_keys_round_trip(keys: PartyKeys) -> None:
    pub = keys.public_keys()
    data = pub.to_dict()
    assert set(data) == {"party", "profile", "signing_key", "encryption_key"}
    again = PublicKeys.from_dict(json.loads(json.dumps(data)))
    assert again == pub
    assert again.fingerprint() == pub.fingerprint()


def test_from_dict_checks_a_supplied_fingerprint(keys: PartyKeys, other: PartyKeys) -> None:
    data: dict[str, object] = dict(keys.public_keys().to_dict())
    data["fingerprint"] = keys.fingerprint().upper()
    assert PublicKeys.from_dict(data) == keys.public_keys()
    data["fingerprint"] = other.fingerprint()
    with pytest.raises(InvalidInput, match="fingerprint does not match"):
        PublicKeys.from_dict(data)


def test_fingerprint_is_a_fixed_function_of_party_profile_and_keys() -> None:
    # Test vector: a change here breaks every fingerprint users have already compared.
    pub = PublicKeys(party="JPN", profile=Profile.CLASSIC, signing_key=ED25519_PUBLIC, encryption_key=X25519_PUBLIC)
    canonical = (
        b'{"encryption_key":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=","party":"JPN",'
        b'"profile":"classic","signing_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}'
    )
    assert pub.fingerprint() == hashlib.sha256(canonical).hexdigest()
    assert pub.fingerprint() == "9fd29a16c556425463613865e1c91f25fab6282792c8026afe1e2291329a06cd"


def test_fingerprint_binds_the_party() -> None:
    a = PublicKeys(party="JPN", profile=Profile.CLASSIC, signing_key=ED25519_PUBLIC, encryption_key=X25519_PUBLIC)
    b = PublicKeys(party="KOR", profile=Profile.CLASSIC, signing_key=ED25519_PUBLIC, encryption_key=X25519_PUBLIC)
    assert a.fingerprint() != b.fingerprint()


def test_distinct_keys_have_distinct_fingerprints(keys: PartyKeys) -> None:
    again = PartyKeys.generate("JPN", keys.profile, created=CREATED)
    assert again.fingerprint() != keys.fingerprint()
    assert again != keys


def _public_dict(keys: PartyKeys, **changes: object) -> dict[str, object]:
    data: dict[str, object] = dict(keys.public_keys().to_dict())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signing_key": base64.b64encode(b"short").decode()}, "public key: expected"),
        ({"encryption_key": "not base64!"}, "not valid base64"),
        ({"signing_key": 42}, "expected a base64 string"),
        ({"profile": "rsa"}, "unknown crypto profile"),
        ({"party": "jpn"}, "party id"),
        ({"party": 7}, "party must be a string"),
        ({"extra": "x"}, "unknown \\['extra'\\]"),
    ],
)
def test_malformed_public_keys_are_refused(keys: PartyKeys, change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        PublicKeys.from_dict(_public_dict(keys, **change))


def test_missing_public_key_member_is_refused(keys: PartyKeys) -> None:
    data = _public_dict(keys)
    del data["encryption_key"]
    with pytest.raises(InvalidInput, match="missing \\['encryption_key'\\]"):
        PublicKeys.from_dict(data)


def test_keys_labelled_with_the_other_profile_are_refused(keys: PartyKeys) -> None:
    wrong = Profile.CNSA2 if keys.profile is Profile.CLASSIC else Profile.CLASSIC
    with pytest.raises(InvalidInput, match="expected"):
        PublicKeys.from_dict(_public_dict(keys, profile=wrong.value))


def test_cnsa2_public_key_with_an_invalid_p384_point_is_refused() -> None:
    pub = PartyKeys.generate("JPN", Profile.CNSA2).public_keys()
    broken = pub.encryption_key[:1568] + b"\x04" + bytes(96)
    with pytest.raises(InvalidInput, match="does not decode"):
        PublicKeys(party="JPN", profile=Profile.CNSA2, signing_key=pub.signing_key, encryption_key=broken)


def test_public_keys_must_be_bytes() -> None:
    with pytest.raises(InvalidInput, match="must be bytes"):
        PublicKeys(
            party="JPN",
            profile=Profile.CLASSIC,
            signing_key=ED25519_PUBLIC.hex(),  # type: ignore[arg-type]
            encryption_key=X25519_PUBLIC,
        )


# --- private form ---------------------------------------------------------------------------


def test_private_dict_round_trip_keeps_working_keys(keys: PartyKeys, other: PartyKeys) -> None:
    doc = json.loads(json.dumps(keys.to_private_dict()))
    restored = PartyKeys.from_private_dict(doc)
    assert restored == keys
    # The restored keys are the same keys, not just equal-looking ones.
    verify(keys.public_keys(), b"m", sign(restored, b"m"))
    info = b"gsomia/v1 delivery d-1 to JPN"
    assert unwrap_key(restored, wrap_key(keys.public_keys(), bytes(32), info), info) == bytes(32)
    assert restored != other


def _member_names(doc: dict[str, object], name: str) -> set[str]:
    part = doc[name]
    assert isinstance(part, dict)
    return set(part)


def test_private_dict_layout(keys: PartyKeys) -> None:
    doc = keys.to_private_dict()
    assert doc["format"] == KEYFILE_FORMAT
    assert doc["party"] == "JPN"
    assert doc["profile"] == keys.profile.value
    assert doc["created"] == "2019-08-22T06:00:00Z"
    assert doc["public_fingerprint"] == keys.fingerprint()
    if keys.profile is Profile.CLASSIC:
        assert _member_names(doc, "signing") == {"ed25519"}
        assert _member_names(doc, "encryption") == {"x25519"}
    else:
        assert _member_names(doc, "signing") == {"mldsa87_seed"}
        assert _member_names(doc, "encryption") == {"mlkem1024_seed", "p384_pkcs8"}


def test_edited_private_key_is_detected_by_the_fingerprint(keys: PartyKeys, other: PartyKeys) -> None:
    doc = keys.to_private_dict()
    doc["signing"] = other.to_private_dict()["signing"]
    with pytest.raises(InvalidInput, match="do not match the recorded public fingerprint"):
        PartyKeys.from_private_dict(doc)


def test_malformed_private_key_error_carries_no_key_material(keys: PartyKeys) -> None:
    doc = keys.to_private_dict()
    member = "ed25519" if keys.profile is Profile.CLASSIC else "mldsa87_seed"
    secret = _secrets(keys)[0]
    doc["signing"] = {member: secret[:-4]}  # truncated: wrong length or bad padding
    with pytest.raises(InvalidInput) as caught:
        PartyKeys.from_private_dict(doc)
    assert secret[:8] not in str(caught.value)


@pytest.mark.parametrize(
    ("member", "value", "message"),
    [
        ("format", "gsomia-private-keys/v0", "unsupported key file format"),
        ("created", "2019-08-22T06:00:00", "UTC offset"),
        ("created", "yesterday", "ISO 8601"),
        ("signing", {"rsa": "AAAA"}, "expected exactly the members"),
        ("encryption", "AAAA", "expected exactly the members"),
    ],
)
def test_malformed_private_dicts_are_refused(keys: PartyKeys, member: str, value: object, message: str) -> None:
    doc = keys.to_private_dict()
    doc[member] = value
    with pytest.raises(InvalidInput, match=message):
        PartyKeys.from_private_dict(doc)


# --- key files ------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_0600_and_reads_back(tmp_path: Path, keys: PartyKeys) -> None:
    path = write_private_keyfile(tmp_path / "jpn.key", keys)
    assert path == tmp_path / "jpn.key"
    assert _mode(path) == 0o600
    assert read_private_keyfile(path) == keys
    assert json.loads(path.read_text())["party"] == "JPN"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jpn.key"]  # no temporary file left


def test_key_file_is_0600_even_with_a_permissive_umask(tmp_path: Path, keys: PartyKeys) -> None:
    old = os.umask(0)
    try:
        path = write_private_keyfile(tmp_path / "jpn.key", keys)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_existing_key_file_is_not_overwritten(tmp_path: Path, keys: PartyKeys, other: PartyKeys) -> None:
    path = write_private_keyfile(tmp_path / "k.key", keys)
    before = path.read_bytes()
    with pytest.raises(InvalidInput, match=r"already exists .*: give another --out, or --force to replace it"):
        write_private_keyfile(path, other)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]


def test_any_existing_file_blocks_a_new_key_file(tmp_path: Path, keys: PartyKeys) -> None:
    target = tmp_path / "k.key"
    decoy = tmp_path / "decoy"
    decoy.write_text("not mine")
    target.symlink_to(decoy)
    with pytest.raises(InvalidInput, match="already exists"):
        write_private_keyfile(target, keys)
    assert decoy.read_text() == "not mine"


def test_overwrite_replaces_the_file_and_tightens_its_mode(tmp_path: Path, keys: PartyKeys, other: PartyKeys) -> None:
    path = tmp_path / "k.key"
    path.write_text("old")
    path.chmod(0o644)
    write_private_keyfile(path, other, overwrite=True)
    assert _mode(path) == 0o600
    assert read_private_keyfile(path) == other


def test_key_file_falls_back_when_hard_links_are_unsupported(
    tmp_path: Path, keys: PartyKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)  # the writer calls os.link at run time
    path = write_private_keyfile(tmp_path / "k.key", keys)
    assert _mode(path) == 0o600
    assert read_private_keyfile(path) == keys
    with pytest.raises(InvalidInput, match="already exists"):
        write_private_keyfile(path, keys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key"]


def test_key_file_in_a_missing_directory_is_an_input_error(tmp_path: Path, keys: PartyKeys) -> None:
    with pytest.raises(InvalidInput, match="cannot create key file"):
        write_private_keyfile(tmp_path / "nowhere" / "k.key", keys)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_key_file_open_to_group_or_others_is_refused(tmp_path: Path, keys: PartyKeys, mode: int) -> None:
    path = write_private_keyfile(tmp_path / "k.key", keys)
    path.chmod(mode)
    with pytest.raises(InvalidInput, match="chmod 600") as caught:
        read_private_keyfile(path)
    assert f"mode {mode:04o}" in str(caught.value)
    path.chmod(0o600)
    assert read_private_keyfile(path) == keys


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_private_keyfile(tmp_path / "absent.key")


def test_key_file_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "k.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_private_keyfile(fifo)
    with pytest.raises(InvalidInput, match="not a regular file"):  # an IsADirectoryError, before
        read_private_keyfile(tmp_path)


@pytest.mark.parametrize("data", [b"\xff\xfe", b"{oops", b"[" * 3000 + b"]" * 3000])
def test_a_key_file_that_is_not_json_is_an_input_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(InvalidInput, match="is not valid JSON"):
        read_private_keyfile(_write_0600(tmp_path / "k.key", data))


def _write_0600(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def test_key_file_that_is_not_json(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        read_private_keyfile(_write_0600(tmp_path / "k.key", b"\xff\xfe not json"))


def test_oversized_key_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="larger than"):
        read_private_keyfile(_write_0600(tmp_path / "k.key", b" " * (65 * 1024)))


def test_edited_key_file_names_the_file(tmp_path: Path, keys: PartyKeys) -> None:
    path = write_private_keyfile(tmp_path / "k.key", keys)
    doc = json.loads(path.read_text())
    doc["party"] = "KOR"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match=f"key file {path}: the keys do not match"):
        read_private_keyfile(path)


def test_a_secret_file_under_a_regular_file_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(InvalidInput, match="cannot write"):
        replace_private_file(blocker / "secret.txt", b"x")
