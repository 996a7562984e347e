"""``gsomia client``, ``keys`` and ``principals`` in process: a party signs and submits with its
key file, the recipient fetches, decrypts and verifies, consents and incidents are answered, the
inbox is watched; keys are generated 0600 and shown without their private half; tokens are
issued once and revoked. The client talks to the exchange's API in this process."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest

from gsomia.cli import exchange as client_commands
from gsomia.client.http import ExchangeClient
from gsomia.crypto import PartyKeys, read_private_keyfile, write_private_keyfile
from gsomia.services.exchange.operator import EventSpec
from tests.harness import Harness, InProcessTransport
from tests.unit.cli.cli_support import Gsomia, Run

URL = "http://exchange.test"


def connect(monkeypatch: pytest.MonkeyPatch, h: Harness) -> None:
    """Make ``gsomia client`` reach ``h``'s API in this process."""

    def factory(url: str, *, token: str | None = None, **_: Any) -> ExchangeClient:
        return ExchangeClient(url, token=token, transport=InProcessTransport(h.api))

    monkeypatch.setattr(client_commands, "ExchangeClient", factory)


def key_file(h: Harness, party: str, tmp_path: Path) -> str:
    path = tmp_path / f"{party}.keys"
    if not path.exists():
        write_private_keyfile(path, h.keys[party])
    return str(path)


def as_party(gsomia: Gsomia, h: Harness, who: str, *args: str) -> Run:
    return gsomia("client", "--url", URL, "--token", h.tokens[who], *args)


def test_a_party_submits_and_the_recipient_fetches_decrypts_and_acknowledges(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, harness)
    track = tmp_path / "track.json"
    track.write_bytes(b'{"track": "example"}')
    jpn, kor = key_file(harness, "JPN", tmp_path), key_file(harness, "KOR", tmp_path)
    next_entry = harness.app.ledger.size()
    submitted = as_party(
        gsomia,
        harness,
        "JPN",
        "submit",
        "--key",
        jpn,
        "--topic",
        "dprk.missile.launch",
        "--level",
        "極秘",
        "--payload",
        str(track),
        "--recipient",
        "KOR",
        "--recipient",
        "NATO",
        "--id",
        "cli-1",
    )
    assert submitted.code == 0, submitted.err
    assert submitted.out.startswith(f"report cli-1 (ledger entry {next_entry})")
    (kor_row,) = [line for line in submitted.out.splitlines() if line.lstrip().startswith("KOR")]
    assert "delivered" in kor_row and "JPN → KOR" in kor_row and "군사II급비밀 (JPN 極秘)" in kor_row
    (nato_row,) = [line for line in submitted.out.splitlines() if line.lstrip().startswith("NATO")]
    assert "no_key" in nato_row and "NATO has registered no encryption key" in nato_row

    inbox = as_party(gsomia, harness, "KOR", "inbox")
    assert inbox.code == 0, inbox.err
    (item,) = harness.deliveries("KOR")
    assert item["id"] in inbox.out and "군사II급비밀 (JPN 極秘)" in inbox.out

    out_file = tmp_path / "received.json"
    fetched = as_party(gsomia, harness, "KOR", "fetch", item["id"], "--key", kor, "--out", str(out_file))
    assert fetched.code == 0, fetched.err
    assert fetched.out.splitlines()[0] == "군사II급비밀 (JPN 極秘)"
    assert "originator's signature verified" in fetched.err
    assert out_file.read_bytes() == b'{"track": "example"}'
    printed = as_party(gsomia, harness, "KOR", "fetch", item["id"], "--key", kor)
    assert printed.out.endswith('{"track": "example"}\n')
    as_json = json.loads(as_party(gsomia, harness, "KOR", "fetch", item["id"], "--key", kor, "--json").out)
    assert (as_json["signature"], as_json["payload"], as_json["via"]) == ("verified", '{"track": "example"}', None)

    acked = as_party(gsomia, harness, "KOR", "ack", item["id"])
    assert acked.code == 0 and acked.out.startswith(f"acknowledged {item['id']} at 2019-11-22T01:00+00:00")
    assert json.loads(as_party(gsomia, harness, "KOR", "ack", item["id"], "--json").out)["state"] == "acknowledged"

    incident = as_party(gsomia, harness, "KOR", "incident", item["id"], "--kind", "loss", "--description", "lost")
    assert incident.code == 0 and incident.out.endswith("filed; JPN has been told\n")
    notices = as_party(gsomia, harness, "JPN", "inbox", "--json")
    assert [i["type"] for i in json.loads(notices.out)["items"]] == ["incident"]
    assert "incident" in as_party(gsomia, harness, "JPN", "inbox").out


def test_consents_are_listed_and_answered_from_the_command_line(
    gsomia: Gsomia, terminated: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, terminated)
    granted = terminated.decision(terminated.submit("JPN", recipients=["KOR"]), "KOR")["consent"]["id"]
    refused = terminated.decision(terminated.submit("JPN", recipients=["KOR"]), "KOR")["consent"]["id"]
    listed = as_party(gsomia, terminated, "JPN", "consents")
    assert listed.code == 0, listed.err
    assert granted in listed.out and refused in listed.out and "→ USA → KOR (TISA)" in listed.out
    inbox = as_party(gsomia, terminated, "JPN", "inbox")
    assert "relay to KOR via USA (dprk.missile.launch, 極秘)" in inbox.out

    yes = as_party(gsomia, terminated, "JPN", "consent", granted, "grant")
    assert yes.code == 0 and yes.out.startswith("granted: relayed, deliveries d-")
    no = as_party(gsomia, terminated, "JPN", "consent", refused, "refuse", "--reason", "source protection")
    assert (no.code, no.out) == (0, "refused\n")
    again = as_party(gsomia, terminated, "JPN", "consent", refused, "grant")
    assert again.code == 6 and again.err == f"error: consent request {refused} is already refused (HTTP 409)\n"
    maybe = as_party(gsomia, terminated, "JPN", "consent", refused, "maybe")
    assert (maybe.code, maybe.err) == (4, "error: decision must be grant or refuse\n")
    states = json.loads(as_party(gsomia, terminated, "JPN", "consents", "--state", "all", "--json").out)
    assert sorted(c["state"] for c in states["consents"]) == ["granted", "refused"]
    (onward,) = terminated.deliveries("KOR")
    kor = as_party(gsomia, terminated, "KOR", "inbox")
    assert onward["id"] in kor.out and " USA " in kor.out


def test_a_grant_the_exchange_cannot_honour_says_why(
    gsomia: Gsomia, terminated: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, terminated)
    consent = terminated.decision(terminated.submit("JPN", recipients=["KOR"]), "KOR")["consent"]["id"]
    terminated.exchange.operator.record_event(terminated.principals["operator"], "TISA", EventSpec(kind="termination"))
    run = as_party(gsomia, terminated, "JPN", "consent", consent, "grant")
    assert run.code == 0, run.err
    assert run.out.startswith("granted, but the relay was refused: ")
    assert "at consent the route is deny, not a relay via USA" in run.out


def test_registering_keys_from_a_key_file(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, harness)
    path = key_file(harness, "USA", tmp_path)
    run = as_party(gsomia, harness, "USA", "register", "--key", path)
    assert (run.code, run.out) == (0, f"registered USA classic keys {harness.keys['USA'].fingerprint()}\n")
    refused = as_party(gsomia, harness, "KOR", "register", "--key", path)
    assert refused.code == 9 and refused.err.startswith("error: party KOR (KOR desk) may act only for its own party")


def test_client_errors_are_one_line_with_their_exit_code(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, harness)
    jpn = key_file(harness, "JPN", tmp_path)
    missing = as_party(
        gsomia, harness, "JPN", "submit", "--key", jpn, "--topic", "t", "--level", "極秘", "--payload", "/no/such/file"
    )
    assert missing.code == 4 and missing.err.startswith("error: cannot read the payload file /no/such/file")
    unknown = as_party(gsomia, harness, "KOR", "fetch", "d-missing", "--key", jpn)
    assert unknown.code == 5 and unknown.err == "error: no delivery 'd-missing' (HTTP 404)\n"
    anonymous = gsomia("client", "--url", URL, "inbox")
    assert anonymous.code == 9 and "bearer token" in anonymous.err
    operator = gsomia("client", "--url", URL, "--token", harness.tokens["operator"], "consents")
    assert operator.code == 9
    not_http = gsomia("client", "--url", "exchange.test", "--token", "x", "inbox")
    assert not_http.code == 4 and "give an http:// or https:// address" in not_http.err


def test_a_batch_line_nested_deeper_than_the_stack_is_a_one_line_error(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(monkeypatch, harness)
    batch = tmp_path / "batch.jsonl"
    batch.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    run = as_party(gsomia, harness, "JPN", "submit-batch", str(batch), "--key", key_file(harness, "JPN", tmp_path))
    assert run.code == 4 and run.err.startswith(f"error: {batch}:1: not a report line"), run.err


def test_node_files_that_are_not_utf8_are_one_line_errors(gsomia: Gsomia, tmp_path: Path) -> None:
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00secret")
    init = gsomia(
        "node", "init", "--dir", str(tmp_path / "n"), "--party", "JPN", "--exchange", URL,
        "--key", str(tmp_path / "k"), "--token-file", str(binary),
    )  # fmt: skip
    assert init.code == 4 and init.err == f"error: cannot read the token file {binary}: not UTF-8 text\n"
    user = gsomia(
        "node",
        "users",
        "add",
        "duty",
        "--role",
        "officer",
        "--dir",
        str(tmp_path / "n"),
        "--password-file",
        str(binary),
    )
    assert user.code == 4 and f"cannot read the password file {binary}: not UTF-8 text" in user.err, user.err


def test_watch_prints_each_item_and_reconnects_when_the_stream_breaks(
    gsomia: Gsomia, monkeypatch: pytest.MonkeyPatch
) -> None:
    connections: list[httpx.Request] = []

    class Stream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b": gsomia inbox stream\n\n"
            yield b'event: delivery\nid: 4\ndata: {"seq": 4, "type": "delivery", "id": "d-4", "report": "r-1", '
            yield b'"originator": "JPN", "marking": {"banner": "SECRET (JPN \xe6\xa5\xb5\xe7\xa7\x98)"}, "via": null}\n\n'
            raise KeyboardInterrupt  # the user stops it

    def handler(request: httpx.Request) -> httpx.Response:
        connections.append(request)
        if len(connections) == 1:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, stream=Stream(), headers={"content-type": "text/event-stream"})

    def factory(url: str, *, token: str | None = None, **_: Any) -> ExchangeClient:
        return ExchangeClient(url, token=token, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(client_commands, "ExchangeClient", factory)
    monkeypatch.setattr(client_commands, "time", SimpleNamespace(sleep=lambda _s: None))
    run = gsomia("client", "--url", URL, "--token", "gsm_x", "watch", "--cursor", "3")
    assert run.code == 0, run.err
    assert run.out == "4  delivery  d-4  r-1  JPN  SECRET (JPN 極秘)  -  \n"
    assert "(connection refused); reconnecting" in run.err
    assert [r.headers.get("last-event-id") for r in connections] == ["3", "3"]


# --- keys -------------------------------------------------------------------------------------------


def test_keys_are_generated_0600_and_shown_without_their_private_half(gsomia: Gsomia, tmp_path: Path) -> None:
    path = tmp_path / "kor.keys"
    made = gsomia("keys", "generate", "KOR", "--out", str(path))
    assert made.code == 0, made.err
    keys = read_private_keyfile(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert made.out == f"wrote {path} (mode 0600): KOR classic keys {keys.fingerprint()}\n"
    assert f"gsomia client register --key {path}" in made.err
    again = gsomia("keys", "generate", "KOR", "--out", str(path))
    assert again.code == 4 and read_private_keyfile(path).fingerprint() == keys.fingerprint()
    assert "or --force to replace it" in again.err and "overwrite/" not in again.err, again.err  # an option named
    shown = gsomia("keys", "show", str(path))
    assert shown.code == 0 and f"fingerprint     {keys.fingerprint()}" in shown.out
    private = keys.to_private_dict()
    for part in (cast(dict[str, str], private["signing"]), cast(dict[str, str], private["encryption"])):
        assert all(value not in shown.out for value in part.values())
    as_json = json.loads(gsomia("keys", "show", str(path), "--json").out)
    assert as_json == {**keys.public_keys().to_dict(), "fingerprint": keys.fingerprint()}
    cnsa2 = json.loads(
        gsomia("keys", "generate", "KOR", "--out", str(path), "--profile", "cnsa2", "--force", "--json").out
    )
    assert cnsa2["public"]["profile"] == "cnsa2" and cnsa2["file"] == str(path)
    bad = gsomia("keys", "generate", "KOR", "--out", str(tmp_path / "x.keys"), "--profile", "rot13")
    assert bad.code == 4


# --- principals -------------------------------------------------------------------------------------


def test_principals_are_added_listed_and_revoked_on_the_local_database(gsomia: Gsomia) -> None:
    added = gsomia("principals", "add", "--role", "party", "--name", "GBR liaison desk", "--party", "GBR")
    assert added.code == 0, added.err
    token = added.out.strip()
    assert token.startswith("gsm_") and "the token is shown only now" in added.err
    principal_id = added.err.split(" as ")[1].split(";")[0]
    listed = gsomia("principals", "list")
    (row,) = [line for line in listed.out.splitlines() if principal_id in line]
    assert "GBR liaison desk" in row and token not in listed.out
    as_json = {p["id"]: p for p in json.loads(gsomia("principals", "list", "--json").out)}
    assert as_json[principal_id]["revoked_at"] is None
    revoked = gsomia("principals", "revoke", principal_id)
    assert revoked.out == f"revoked party GBR (GBR liaison desk) ({principal_id})\n"
    assert json.loads(gsomia("principals", "list", "--json").out)[-1]["revoked_at"] is not None
    operator = json.loads(gsomia("principals", "add", "--role", "operator", "--name", "ops", "--json").out)
    assert (operator["role"], operator["party"], operator["token"][:4]) == ("operator", None, "gsm_")
    bad = gsomia("principals", "add", "--role", "king", "--name", "x")
    assert (bad.code, bad.err) == (4, "error: unknown role 'king': use party, operator or auditor\n")
    assert gsomia("principals", "revoke", "p-missing").code == 5


def test_fetch_with_another_key_file_names_the_key_set_the_delivery_is_sealed_to(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it said "error: decryption failed" (exit 1; the help promised 7 or 8): nothing said
    # that the file was the wrong one, nor which key set the delivery needs
    connect(monkeypatch, harness)
    harness.submit("JPN", recipients=["KOR"], id="cli-sealed")
    (item,) = harness.deliveries("KOR")
    other = tmp_path / "other.keys"
    write_private_keyfile(other, PartyKeys.generate("KOR"))
    run = as_party(gsomia, harness, "KOR", "fetch", item["id"], "--key", str(other))
    assert run.code == 4, run.err
    sealed_to = harness.keys["KOR"].fingerprint()
    assert f"is sealed to the key set {sealed_to}" in run.err and str(other) in run.err, run.err
    assert read_private_keyfile(other).fingerprint() in run.err and run.out == ""
