"""The key-encryption key: from the setting, or a 0600 file created on first use."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from gsomia.crypto.kek import load_or_create_kek, parse_kek
from gsomia.errors import InvalidInput


def test_the_setting_must_be_32_bytes_of_base64() -> None:
    key = os.urandom(32)
    assert parse_kek(base64.b64encode(key).decode()) == key
    with pytest.raises(InvalidInput, match="32 bytes"):
        parse_kek(base64.b64encode(b"short").decode())
    with pytest.raises(InvalidInput, match="not valid base64") as e:
        parse_kek("not base64!")
    assert "not base64!" not in str(e.value)  # never echo a secret


def test_the_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "data" / "exchange.kek"
    first = load_or_create_kek(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_kek(path) == first


def test_a_readable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exchange.kek"
    load_or_create_kek(path)
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        load_or_create_kek(path)


def test_a_kek_path_that_is_a_directory_is_one_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "exchange.kek"
    directory.mkdir()
    with pytest.raises(InvalidInput, match="not a regular file"):
        load_or_create_kek(directory)
