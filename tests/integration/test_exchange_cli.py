"""``gsomia client`` and ``gsomia keys`` as a party would use them: subprocesses against a live
exchange, with the private keys only on the client side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow

TRACK = '{"launch": "2019-11-22T09:41+09:00", "apogee_km": 110}\n'


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    exchange = start_exchange(
        tmp_path_factory.mktemp("cli"),
        exercise_clock="2019-12-01T10:00+09:00",
        whatif="drop: [jpn-kor-2019-suspension]\n",
    )
    yield exchange
    exchange.stop()


def client(ex: Exchange, who: str, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    # the client's data directory (its outbox) is on the client side, never the user's own
    env = {**os.environ, "GSOMIA_URL": ex.url, "GSOMIA_TOKEN": ex.tokens[who], "GSOMIA_DATA_DIR": str(ex.client_dir)}
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "client", *args], env=env, capture_output=True, text=True, check=False
    )
    assert p.returncode == code, p.stdout + p.stderr
    return p


def test_a_party_submits_consents_and_the_recipient_fetches_and_decrypts(ex: Exchange, tmp_path: Path) -> None:
    payload = tmp_path / "track.json"
    payload.write_text(TRACK, encoding="utf-8")
    jpn_keys, kor_keys = ex.client_dir / "JPN.keys", ex.client_dir / "KOR.keys"
    sub = client(
        ex,
        "JPN",
        "submit",
        "--key",
        str(jpn_keys),
        "--topic",
        "dprk.missile.launch",
        "--level",
        "極秘",
        "--payload",
        str(payload),
        "--recipient",
        "KOR",
        "--id",
        "cli-1",
        "--json",
    )
    (kor,) = json.loads(sub.stdout)["recipients"]
    assert (kor["decision"], kor["outcome"]) == ("relay", "pending_consent")
    assert json.loads(client(ex, "KOR", "inbox", "--json").stdout)["items"] == []

    consents = json.loads(client(ex, "JPN", "consents", "--json").stdout)["consents"]
    granted = client(ex, "JPN", "consent", consents[0]["id"], "grant")
    assert "relayed" in granted.stdout

    items = json.loads(client(ex, "KOR", "inbox", "--json").stdout)["items"]
    (delivery,) = [i for i in items if i["type"] == "delivery"]
    fetched = client(ex, "KOR", "fetch", delivery["id"], "--key", str(kor_keys))
    banner, body = fetched.stdout.split("\n", 1)
    assert banner == "EXERCISE 군사II급비밀 (JPN 極秘) via USA"  # the exchange runs an exercise
    assert body == TRACK
    assert "signature verified" in fetched.stderr
    # USA's key cannot open it, and USA cannot even fetch it
    client(ex, "USA", "fetch", delivery["id"], "--key", str(ex.client_dir / "USA.keys"), code=5)
    acked = json.loads(client(ex, "KOR", "ack", delivery["id"], "--json").stdout)
    assert acked["state"] == "acknowledged"
    filed = client(ex, "KOR", "incident", delivery["id"], "--kind", "loss", "--description", "courier bag lost")
    assert "JPN has been told" in filed.stdout


def test_errors_are_one_line_with_the_exit_code_of_their_cause(ex: Exchange, tmp_path: Path) -> None:
    payload = tmp_path / "p"
    payload.write_text("x", encoding="utf-8")
    args = [
        "submit",
        "--key",
        str(ex.client_dir / "JPN.keys"),
        "--topic",
        "dprk.missile.launch",
        "--payload",
        str(payload),
        "--recipient",
        "KOR",
    ]
    p = client(ex, "JPN", *args, "--level", "TOP SECRET", code=4)
    assert p.stderr.startswith("error: report.level: 'TOP SECRET' is not a level of JPN")
    assert p.stderr.count("\n") == 1
    client(ex, "KOR", *args, "--level", "極秘", code=9)  # KOR cannot submit as JPN
    client(ex, "JPN", "ack", "d-00000000000000000000", code=5)


def test_keys_generate_writes_a_private_file_and_shows_only_the_public_half(tmp_path: Path) -> None:
    out = tmp_path / "nato.keys"
    gen = subprocess.run(
        [sys.executable, "-m", "gsomia", "keys", "generate", "NATO", "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stat().st_mode & 0o777 == 0o600
    public = json.loads(gen.stdout)["public"]
    shown = subprocess.run(
        [sys.executable, "-m", "gsomia", "keys", "show", str(out), "--json"], capture_output=True, text=True, check=True
    )
    assert json.loads(shown.stdout) == public
    private = json.loads(out.read_text())
    assert private["signing"]["ed25519"] not in shown.stdout
    again = subprocess.run(
        [sys.executable, "-m", "gsomia", "keys", "generate", "NATO", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 4
