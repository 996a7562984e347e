"""Principals, tokens and parties' public keys: a token is shown once and works until revoked;
keys register idempotently, rotate, and are never registered by another party; demo credentials
are issued once and kept."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest

from gsomia.crypto import PartyKeys, Profile, read_private_keyfile
from gsomia.crypto.keyfile import replace_private_file
from gsomia.errors import InvalidInput, NotAuthenticated, NotPermitted, UnknownEntity
from gsomia.services.exchange.access import Principal, Role
from gsomia.services.exchange.identity import (
    TOKEN_PREFIX,
    issue_demo_credentials,
    token_hash,
)
from tests.harness import Harness

# --- principals and tokens --------------------------------------------------------------------------


def who(principal: Principal) -> tuple[str, str, Role, str | None]:
    """A principal as its holder knows it (not the stored version it was read at)."""
    return principal.id, principal.name, principal.role, principal.party


def test_a_token_authenticates_its_principal(harness: Harness) -> None:
    identity = harness.exchange.identity
    for name, principal in harness.principals.items():
        assert who(identity.authenticate(harness.tokens[name])) == who(principal)
    assert harness.tokens["JPN"].startswith(TOKEN_PREFIX)


@pytest.mark.parametrize("token", [None, "", "gsm_unknown", "Bearer gsm_x"])
def test_missing_and_unknown_tokens_are_not_authenticated(harness: Harness, token: str | None) -> None:
    with pytest.raises(NotAuthenticated):
        harness.exchange.identity.authenticate(token)


def test_a_revoked_token_stops_working_at_once_and_revoking_is_idempotent(harness: Harness) -> None:
    identity = harness.exchange.identity
    kor = harness.principals["KOR"]
    assert who(identity.authenticate(harness.tokens["KOR"])) == who(kor)  # cached as valid
    info = identity.revoke(kor.id)
    assert who(info.principal) == who(kor) and info.revoked_at == harness.clock()
    with pytest.raises(NotAuthenticated, match="unknown or revoked"):
        identity.authenticate(harness.tokens["KOR"])
    assert identity.revoke(kor.id).revoked_at == info.revoked_at
    assert who(identity.authenticate(harness.tokens["JPN"])) == who(harness.principals["JPN"])
    with pytest.raises(UnknownEntity, match="no principal"):
        identity.revoke("p-missing")


def test_the_store_keeps_only_a_hash_of_each_token(harness: Harness) -> None:
    listed = harness.exchange.identity.principals()
    assert {who(p.principal) for p in listed} == {who(p) for p in harness.principals.values()}
    assert all(p.revoked_at is None for p in listed)
    text = repr(listed)
    assert all(token not in text for token in harness.tokens.values())
    assert token_hash("gsm_x") == token_hash("gsm_x") != token_hash("gsm_y")


@pytest.mark.parametrize(
    ("role", "name", "party", "error", "message"),
    [
        ("admin", "x", None, InvalidInput, "unknown role 'admin'"),
        (Role.PARTY, "   ", "JPN", InvalidInput, "needs a name"),
        (Role.PARTY, "x" * 129, "JPN", InvalidInput, "needs a name"),
        (Role.PARTY, "desk", None, InvalidInput, "needs a party id"),
        (Role.PARTY, "desk", "jpn", InvalidInput, "needs a party id"),
        (Role.OPERATOR, "ops", "JPN", InvalidInput, "acts for no party"),
        (Role.PARTY, "desk", "XYZ", UnknownEntity, "unknown party 'XYZ'"),
        (Role.PARTY, "desk\x1b[2J", "JPN", InvalidInput, "no control or format characters"),  # clears a screen
        (Role.PARTY, "JPN desk\nKOR desk", "JPN", InvalidInput, "no control or format characters"),
        (Role.PARTY, "desk \u202eKOR", "JPN", InvalidInput, "no control or format characters"),
    ],
)
def test_bad_principals_are_refused(
    harness: Harness, role: Role | str, name: str, party: str | None, error: type[Exception], message: str
) -> None:
    before = len(harness.exchange.identity.principals())
    with pytest.raises(error, match=message):
        harness.exchange.identity.add_principal(role=role, name=name, party=party)
    assert len(harness.exchange.identity.principals()) == before


def test_a_new_principal_is_described_by_its_role(harness: Harness) -> None:
    issued = harness.exchange.identity.add_principal(role="party", name="  GBR desk ", party="GBR")
    assert (issued.principal.name, issued.principal.describe()) == ("GBR desk", "party GBR (GBR desk)")
    assert harness.principals["operator"].describe() == "operator (the operator)"
    assert issued.token not in repr(issued)
    assert who(harness.exchange.identity.authenticate(issued.token)) == who(issued.principal)


# --- keys -------------------------------------------------------------------------------------------


def test_registering_the_current_keys_again_changes_nothing(harness: Harness) -> None:
    identity = harness.exchange.identity
    keys = harness.exchange.keys
    public = harness.keys["JPN"].public_keys()
    (current,) = keys.history(harness.principals["KOR"], "JPN")
    reg, new = keys.register(harness.principals["JPN"], "JPN", public)
    assert new is False
    assert reg.as_dict() == current.as_dict()
    assert reg.as_dict()["current"] is True
    assert identity.current_keys("JPN") == public


def test_rotating_keys_retires_the_old_ones_for_good(harness: Harness) -> None:
    identity = harness.exchange.identity
    keys = harness.exchange.keys
    old = harness.keys["JPN"].public_keys()
    rotated = PartyKeys.generate("JPN", Profile.CLASSIC)
    reg, new = keys.register(harness.principals["JPN"], "JPN", rotated.public_keys())
    assert new and reg.keys == rotated.public_keys() and reg.registered_by == harness.principals["JPN"].id
    assert identity.current_keys("JPN") == rotated.public_keys()
    assert identity.signing_key(old.fingerprint(), "JPN") is None
    assert identity.signing_key(rotated.fingerprint().upper(), "JPN") == rotated.public_keys()
    with pytest.raises(InvalidInput, match="registered before and retired"):
        keys.register(harness.principals["JPN"], "JPN", old)
    assert identity.current_keys("JPN") == rotated.public_keys()
    # new deliveries are wrapped to the new key
    harness.keys["JPN"] = rotated
    harness.submit("KOR", recipients=["JPN"], level="군사II급비밀", payload=b"to the new key")
    (item,) = harness.deliveries("JPN")
    assert harness.open("JPN", item["id"]) == b"to the new key"


def test_a_party_cannot_register_another_partys_keys_but_an_operator_can(harness: Harness) -> None:
    identity = harness.exchange.identity
    keys = harness.exchange.keys
    theirs = PartyKeys.generate("JPN", Profile.CLASSIC).public_keys()
    with pytest.raises(NotPermitted, match="only for its own party"):
        keys.register(harness.principals["KOR"], "JPN", theirs)
    # nor its own keys relabelled as another party's
    kor = harness.keys["KOR"].public_keys()
    with pytest.raises(InvalidInput, match="these keys are KOR's, not JPN's"):
        keys.register(harness.principals["operator"], "JPN", kor)
    with pytest.raises(NotPermitted):
        keys.register(harness.principals["auditor"], "JPN", theirs)
    assert identity.current_keys("JPN") == harness.keys["JPN"].public_keys()
    _, new = keys.register(harness.principals["operator"], "JPN", theirs)
    assert new and identity.current_keys("JPN") == theirs


def test_keys_of_parties_the_scenario_does_not_know_are_refused(harness: Harness) -> None:
    stranger = PartyKeys.generate("XYZ", Profile.CLASSIC).public_keys()
    with pytest.raises(UnknownEntity, match="unknown party 'XYZ'"):
        harness.exchange.keys.register(harness.principals["operator"], "XYZ", stranger)


def test_public_keys_are_readable_by_every_role_and_never_private(harness: Harness) -> None:
    private = harness.keys["JPN"].to_private_dict()
    for who in ("KOR", "operator", "auditor"):
        (reg,) = harness.exchange.keys.history(harness.principals[who], "JPN")
        shown = reg.as_dict()
        assert set(shown) == {
            "party",
            "profile",
            "signing_key",
            "encryption_key",
            "fingerprint",
            "registered_at",
            "retired_at",
            "current",
        }
        for part in (cast(dict[str, str], private["signing"]), cast(dict[str, str], private["encryption"])):
            assert all(value not in str(shown) for value in part.values())
    with pytest.raises(UnknownEntity, match="NATO has registered no public keys"):
        harness.exchange.keys.history(harness.principals["KOR"], "NATO")


# --- demo credentials -------------------------------------------------------------------------------


def test_demo_credentials_are_issued_once_and_kept(harness: Harness, tmp_path: Path) -> None:
    identity = harness.exchange.identity
    data_dir = tmp_path / "demo-data"
    first = issue_demo_credentials(identity, harness.exchange.keys, data_dir, url="http://127.0.0.1:9999")
    assert set(first.tokens) == {"JPN", "KOR", "USA", "operator", "auditor"}
    assert stat.S_IMODE(first.tokens_file.stat().st_mode) == 0o600
    assert json.loads(first.tokens_file.read_text(encoding="utf-8")) == first.tokens
    for party, path in first.key_files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert identity.current_keys(party) == read_private_keyfile(path).public_keys()
        assert identity.authenticate(first.tokens[party]).party == party
    assert identity.authenticate(first.tokens["operator"]).role is Role.OPERATOR
    lines = "\n".join(first.instructions())
    assert "export GSOMIA_URL=http://127.0.0.1:9999" in lines
    assert first.tokens["KOR"] in lines and str(first.key_files["JPN"]) in lines
    assert first.tokens["JPN"] not in repr(first)

    count = len(identity.principals())
    again = issue_demo_credentials(identity, harness.exchange.keys, data_dir, url="http://127.0.0.1:9999")
    assert again.tokens == first.tokens
    assert len(identity.principals()) == count
    assert identity.current_keys("JPN") == read_private_keyfile(first.key_files["JPN"]).public_keys()


def test_demo_credentials_replace_tokens_that_no_longer_work(harness: Harness, tmp_path: Path) -> None:
    identity = harness.exchange.identity
    first = issue_demo_credentials(identity, harness.exchange.keys, tmp_path)
    identity.revoke(identity.authenticate(first.tokens["KOR"]).id)
    again = issue_demo_credentials(identity, harness.exchange.keys, tmp_path)
    assert again.tokens["KOR"] != first.tokens["KOR"]
    assert identity.authenticate(again.tokens["KOR"]).party == "KOR"
    assert {k: v for k, v in again.tokens.items() if k != "KOR"} == {
        k: v for k, v in first.tokens.items() if k != "KOR"
    }
    # an unreadable tokens file is replaced too
    first.tokens_file.write_text("{not json", encoding="utf-8")
    third = issue_demo_credentials(identity, harness.exchange.keys, tmp_path)
    assert set(third.tokens) == set(first.tokens)
    assert json.loads(third.tokens_file.read_text(encoding="utf-8")) == third.tokens


def test_secret_files_are_written_0600_and_a_failure_is_one_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "secret.txt"
    replace_private_file(target, b"s3cret")
    assert target.read_bytes() == b"s3cret"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    replace_private_file(target, b"replaced")
    assert target.read_bytes() == b"replaced"
    occupied = tmp_path / "nested" / "a-directory"
    occupied.mkdir()
    with pytest.raises(InvalidInput, match="cannot write"):
        replace_private_file(occupied, b"x")
    assert sorted(p.name for p in target.parent.iterdir()) == ["a-directory", "secret.txt"]  # no temporary left


def test_a_delivery_still_verifies_after_the_originator_rotates_its_keys(harness: Harness) -> None:
    harness.submit("JPN", recipients=["KOR"], payload=b"track")
    (item,) = harness.deliveries("KOR")
    harness.clock.advance(timedelta(days=30))
    rotated = PartyKeys.generate("JPN", Profile.CLASSIC)
    harness.exchange.keys.register(harness.principals["JPN"], "JPN", rotated.public_keys())
    history = harness.exchange.keys.history(harness.principals["KOR"], "JPN")
    assert [k.keys.fingerprint() for k in history] == [rotated.fingerprint(), harness.keys["JPN"].fingerprint()]
    assert [k.as_dict()["current"] for k in history] == [True, False]
    # signed with the key valid when the exchange received it (the retired one): still verifies
    assert harness.open("KOR", item["id"]) == b"track"


def test_demo_credentials_in_an_unusable_directory_are_one_clear_error(harness: Harness, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").write_bytes(b"")  # where the demo directory should be
    with pytest.raises(InvalidInput):
        issue_demo_credentials(harness.exchange.identity, harness.exchange.keys, tmp_path / "data")


def test_demo_credentials_run_again_keep_the_keys_a_party_registered_since(harness: Harness, tmp_path: Path) -> None:
    # the README's tour: the demo, then KOR's own node registers KOR's keys; 'make demo' run
    # again registered fresh demo keys for KOR over the node's, which could then open nothing
    identity = harness.exchange.identity
    first = issue_demo_credentials(identity, harness.exchange.keys, tmp_path)
    node_keys = PartyKeys.generate("KOR", Profile.CLASSIC)
    kor = identity.authenticate(first.tokens["KOR"])
    harness.exchange.keys.register(kor, "KOR", node_keys.public_keys())
    again = issue_demo_credentials(identity, harness.exchange.keys, tmp_path)
    assert identity.current_keys("KOR") == node_keys.public_keys()
    assert again.kept == {"KOR": node_keys.fingerprint()} and "KOR" not in again.key_files
    lines = "\n".join(again.instructions())
    assert f"keeps the keys it registered since ({node_keys.fingerprint()})" in lines
    # the other parties' demo keys are as they were
    for party in ("JPN", "USA"):
        assert again.key_files[party] == first.key_files[party]
        assert identity.current_keys(party) == read_private_keyfile(first.key_files[party]).public_keys()
