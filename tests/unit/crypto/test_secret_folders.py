"""The exchange's secrets and its database live in a folder no other user may change: a data
directory another user may write to (or owns) is refused, and so is a key file another user
put there (a ledger key they chose would sign the exchange's checkpoints, a KEK they chose would
seal every report's content key under a key they know)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gsomia.bootstrap import Settings, build
from gsomia.crypto.kek import load_or_create_kek
from gsomia.crypto.ledger_key import load_or_create_ledger_key
from gsomia.domain.instants import parse_instant
from gsomia.errors import InvalidInput

CREATED = parse_instant("2026-01-01T00:00Z", "UTC")


def _as_another_user(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``path`` another user's: handed to another uid when the tests run as root, else
    this process made to run as another uid (the file stays its creator's)."""
    if os.geteuid() == 0:
        os.chown(path, 65534, -1)
    else:
        me = os.geteuid()
        monkeypatch.setattr(os, "geteuid", lambda: me + 1)


def test_a_data_directory_others_may_write_to_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o777)
    with pytest.raises(InvalidInput, match=r"may be written by group or others \(mode 0777\).*chmod 700"):
        build(Settings(data_dir=data))
    assert list(data.iterdir()) == []  # no database, no key made there


def test_a_new_data_directory_is_made_for_its_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "new" / "gsomia"
    app = build(Settings(data_dir=data))
    try:
        app.ledger.key()
    finally:
        app.close()
    assert (data.stat().st_mode & 0o777) == 0o700


def test_a_planted_ledger_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exchange-ledger.key"
    load_or_create_ledger_key(path, created=CREATED)
    _as_another_user(path, monkeypatch)
    with pytest.raises(InvalidInput, match="owned by another user"):
        load_or_create_ledger_key(path, created=CREATED)


def test_a_planted_kek_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "exchange.kek"
    load_or_create_kek(path)
    _as_another_user(path, monkeypatch)
    with pytest.raises(InvalidInput, match="owned by another user"):
        load_or_create_kek(path)


@pytest.mark.parametrize("name", ["exchange.kek", "exchange-ledger.key"])
def test_a_key_folder_others_may_write_to_is_refused(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    folder.chmod(0o770)
    load = load_or_create_kek if name == "exchange.kek" else lambda p: load_or_create_ledger_key(p, created=CREATED)
    with pytest.raises(InvalidInput, match="may be written by group or others"):
        load(folder / name)
    assert list(folder.iterdir()) == []


def test_a_key_folder_another_user_owns_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    _as_another_user(folder, monkeypatch)
    with pytest.raises(InvalidInput, match="owned by another user"):
        load_or_create_kek(folder / "exchange.kek")


def test_a_ledger_key_may_live_in_a_sticky_folder_but_not_be_planted_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a mounted secret volume is sticky and world-writable: nobody else may replace the file in it
    folder = tmp_path / "secrets"
    folder.mkdir()
    folder.chmod(0o1777)
    path = folder / "exchange-ledger.key"
    signer = load_or_create_ledger_key(path, created=CREATED)
    assert load_or_create_ledger_key(path, created=CREATED).public_key_raw() == signer.public_key_raw()
    _as_another_user(path, monkeypatch)
    with pytest.raises(InvalidInput, match="owned by another user"):
        load_or_create_ledger_key(path, created=CREATED)


def test_a_shared_data_directory_is_refused_at_start_when_it_holds_only_the_keys(tmp_path: Path) -> None:
    # PostgreSQL: the database is elsewhere, the KEK and the ledger key are the data directory's
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o775)
    with pytest.raises(InvalidInput, match=r"data directory .* may be written by group or others"):
        build(Settings(db=f"sqlite:///{tmp_path / 'elsewhere.db'}", data_dir=data))
