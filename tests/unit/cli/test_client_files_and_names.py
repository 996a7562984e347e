"""``gsomia client`` with what a party's user gives it: payload files that are devices or too
large, decrypted payloads written to disk (classified: never readable by others, never through
a link), binary payloads in ``--json``, names typed twice or in another Unicode form, a token in
a file, refused reports in the outbox, and a watch that reconnects before its first event."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gsomia.cli import common
from gsomia.cli import exchange as client_commands
from gsomia.client.http import ExchangeClient
from gsomia.errors import InvalidInput
from tests.harness import Harness
from tests.unit.cli.cli_support import Gsomia, Run
from tests.unit.cli.test_exchange_commands import URL, as_party, connect, key_file


def submit(gsomia: Gsomia, h: Harness, tmp_path: Path, who: str, payload: Path | str, *args: str) -> Run:
    keys = key_file(h, who, tmp_path)
    level = "極秘" if who == "JPN" else "군사II급비밀"
    base = ["submit", "--key", keys, "--topic", "dprk.missile.launch", "--level", level, "--payload", str(payload)]
    return as_party(gsomia, h, who, *base, *args)


def delivered(gsomia: Gsomia, h: Harness, tmp_path: Path, payload: bytes) -> str:
    """The id of a delivery to KOR of a report of JPN's carrying ``payload``."""
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    run = submit(gsomia, h, tmp_path, "JPN", path, "--recipient", "KOR", "--json")
    assert run.code == 0, run.err
    (kor,) = json.loads(run.out)["recipients"]
    return str(kor["deliveries"][0]["id"])


def fetch(gsomia: Gsomia, h: Harness, tmp_path: Path, delivery: str, *args: str) -> Run:
    return as_party(gsomia, h, "KOR", "fetch", delivery, "--key", key_file(h, "KOR", tmp_path), *args)


def test_a_fetched_payload_is_written_for_its_owner_only_and_never_through_a_link(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # it was written with the umask's mode (0644: readable by every user of the machine), through
    # a symbolic link to wherever it pointed, and a folder was a traceback
    connect(monkeypatch, harness)
    delivery = delivered(gsomia, harness, tmp_path, b"classified track")
    old_umask = os.umask(0o022)
    try:
        new = tmp_path / "new.txt"
        assert fetch(gsomia, harness, tmp_path, delivery, "--out", str(new)).code == 0
        assert (new.read_bytes(), stat.S_IMODE(new.stat().st_mode)) == (b"classified track", 0o600)

        there = tmp_path / "there.txt"
        there.write_bytes(b"an older file, readable by all")
        there.chmod(0o644)
        assert fetch(gsomia, harness, tmp_path, delivery, "--out", str(there)).code == 0
        assert (there.read_bytes(), stat.S_IMODE(there.stat().st_mode)) == (b"classified track", 0o600)
    finally:
        os.umask(old_umask)

    target = tmp_path / "someone-elses.txt"
    target.write_bytes(b"theirs")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    run = fetch(gsomia, harness, tmp_path, delivery, "--out", str(link))
    assert run.code == 4 and f"cannot write the payload to {link}: it is a symbolic link" in run.err, run.err
    assert target.read_bytes() == b"theirs" and link.is_symlink()

    run = fetch(gsomia, harness, tmp_path, delivery, "--out", str(tmp_path))
    assert (run.code, run.err.count("\n")) == (4, 1), run.err
    assert f"cannot write the payload to {tmp_path}: it is a folder; give a file name in it" in run.err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_binary_payload_in_json_is_given_exactly(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "payload" was the bytes decoded with every invalid one replaced by U+FFFD: not the payload
    connect(monkeypatch, harness)
    binary = b"\xff\xfe\x00\x89PNG"
    doc = json.loads(fetch(gsomia, harness, tmp_path, delivered(gsomia, harness, tmp_path, binary), "--json").out)
    assert doc["payload"] is None and base64.b64decode(doc["payload_base64"]) == binary
    text = json.loads(fetch(gsomia, harness, tmp_path, delivered(gsomia, harness, tmp_path, b"x\n"), "--json").out)
    assert (text["payload"], text["payload_base64"]) == ("x\n", "eAo=")


def test_a_payload_file_that_is_a_device_or_too_large_is_refused_before_signing(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /dev/null was sent as an empty report; /dev/zero, or an endless pipe, was read until the
    # machine's memory ran out
    connect(monkeypatch, harness)
    run = submit(gsomia, harness, tmp_path, "JPN", "/dev/null", "--recipient", "KOR")
    assert run.code == 4 and "the payload file /dev/null is not a regular file" in run.err, run.err
    monkeypatch.setattr(client_commands, "MAX_PAYLOAD_FILE", 10, raising=False)
    large = tmp_path / "large.bin"
    large.write_bytes(b"x" * 11)
    run = submit(gsomia, harness, tmp_path, "JPN", large, "--recipient", "KOR")
    assert run.code == 4 and f"the payload file {large} is larger than 10 bytes" in run.err, run.err
    assert harness.deliveries("KOR") == []


def test_a_party_named_twice_is_named_once(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KOR and ROK, or KOR and kor, were sent as two entries, and the exchange refused the report
    # (422: lists a party twice) after it had been signed and kept
    connect(monkeypatch, harness)
    payload = tmp_path / "p"
    payload.write_bytes(b"x")
    args = ["--recipient", "KOR", "--recipient", "ROK", "--rel-to", "KOR,kor,USA", "--id", "twice", "--json"]
    run = submit(gsomia, harness, tmp_path, "JPN", payload, *args)
    assert run.code == 0, run.err
    assert [r["recipient"] for r in json.loads(run.out)["recipients"]] == ["KOR"]


def test_a_report_the_exchange_refuses_is_not_kept_in_the_outbox(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a refused report stayed in the outbox, and every later command with the same --id, however
    # corrected, was refused as "used for another report" or sent the refused bytes again
    connect(monkeypatch, harness)
    harness.submit("JPN", recipients=["KOR"], id="taken")
    payload = tmp_path / "p"
    payload.write_bytes(b"another report")
    run = submit(gsomia, harness, tmp_path, "JPN", payload, "--recipient", "KOR", "--id", "taken")
    assert run.code == 6, run.err
    assert list((tmp_path / "data" / "outbox" / "JPN").iterdir()) == []
    again = submit(gsomia, harness, tmp_path, "JPN", payload, "--recipient", "USA", "--id", "taken")
    assert again.code == 6 and "sending report taken again" not in again.err, again.err


def test_a_level_typed_in_decomposed_form_is_the_ladders_level(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 군사II급비밀 decomposed (NFD, as macOS names files) is the same text; it was "unknown level
    # of KOR '군사II급비밀'", naming a level that looks exactly like one of the ladder
    connect(monkeypatch, harness)
    payload = tmp_path / "p"
    payload.write_bytes(b"x")
    keys = key_file(harness, "KOR", tmp_path)
    decomposed = unicodedata.normalize("NFD", "군사II급비밀")
    args = ["--topic", "dprk.missile.launch", "--payload", str(payload), "--recipient", "JPN"]
    run = as_party(gsomia, harness, "KOR", "submit", "--key", keys, "--level", decomposed, *args)
    assert run.code == 0, run.err
    # a look-alike is another character: never guessed
    lookalike = as_party(gsomia, harness, "KOR", "submit", "--key", keys, "--level", "군사Ⅱ급비밀", *args)
    assert lookalike.code == 5, lookalike.err


def test_the_token_can_be_read_from_a_file(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --token puts it on the command line, which every user of the machine can read (ps)
    connect(monkeypatch, harness)
    token = tmp_path / "kor.token"
    token.write_text(harness.tokens["KOR"] + "\n")
    token.chmod(0o600)
    run = gsomia("client", "--url", URL, "--token-file", str(token), "inbox", "--json")
    assert run.code == 0 and json.loads(run.out)["items"] == [], run.err
    both = gsomia("client", "--url", URL, "--token", "gsm_x", "--token-file", str(token), "inbox")
    assert both.code == 4 and "give the token once" in both.err, both.err


def test_watch_from_now_misses_nothing_committed_while_it_reconnects(
    gsomia: Gsomia, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with no --cursor the stream was opened "from new items on"; when it broke before its first
    # event (the exchange restarting) it was opened so again, and what was committed meanwhile
    # was never printed
    streams: list[httpx.Request] = []

    def event(seq: int) -> bytes:
        item = {"seq": seq, "type": "delivery", "id": f"d-{seq}", "report": "r", "originator": "JPN"}
        item |= {"marking": {"banner": "SECRET"}, "via": None}
        return f"event: delivery\nid: {seq}\ndata: {json.dumps(item)}\n\n".encode()

    class Stream(httpx.SyncByteStream):
        def __init__(self, seqs: list[int], *, stop: bool) -> None:
            self.seqs, self.stop = seqs, stop

        def __iter__(self) -> Iterator[bytes]:
            yield b": gsomia inbox stream\n\n"
            for seq in self.seqs:
                yield event(seq)
            if self.stop:
                raise KeyboardInterrupt  # the user stops it

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/inbox":
            return httpx.Response(200, json={"items": [], "next_cursor": None, "cursor": "7", "head": "7"})
        streams.append(request)
        if len(streams) == 1:
            return httpx.Response(200, stream=Stream([], stop=False))  # ends: the exchange restarts
        # the item committed while it reconnected, and one replayed twice (at least once)
        return httpx.Response(200, stream=Stream([8, 8, 9], stop=True))

    def factory(url: str, *, token: str | None = None, **_: Any) -> ExchangeClient:
        return ExchangeClient(url, token=token, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(client_commands, "ExchangeClient", factory)
    monkeypatch.setattr(client_commands, "time", SimpleNamespace(sleep=lambda _s: None))
    run = gsomia("client", "--url", URL, "--token", "gsm_x", "watch", "--json")
    assert run.code == 0, run.err
    assert [json.loads(line)["seq"] for line in run.out.splitlines()] == [8, 9]
    assert [r.headers.get("last-event-id") for r in streams] == ["7", "7"]


def test_a_token_read_from_a_pipe_holds_for_every_reconnection_of_watch(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --token-file <(pass show …) was read again at each reconnection: the pipe, read once, was
    # empty, so watch went on without a token and stopped on the exchange's 401
    tokens: list[str | None] = []

    class Stream(httpx.SyncByteStream):
        def __init__(self, stop: bool) -> None:
            self.stop = stop

        def __iter__(self) -> Iterator[bytes]:
            yield b": gsomia inbox stream\n\n"
            if self.stop:
                raise KeyboardInterrupt  # the user stops it

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers.get("authorization"))
        if request.url.path == "/api/v1/inbox":
            return httpx.Response(200, json={"items": [], "next_cursor": None, "cursor": "0", "head": "0"})
        return httpx.Response(200, stream=Stream(stop=len(tokens) > 2))  # the first ends: a restart

    def factory(url: str, *, token: str | None = None, **_: Any) -> ExchangeClient:
        return ExchangeClient(url, token=token, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(client_commands, "ExchangeClient", factory)
    monkeypatch.setattr(client_commands, "time", SimpleNamespace(sleep=lambda _s: None))
    read, write = os.pipe()
    os.write(write, b"gsm_piped\n")
    os.close(write)
    try:
        run = gsomia("client", "--url", URL, "--token-file", f"/dev/fd/{read}", "watch")
    finally:
        os.close(read)
    assert run.code == 0, run.err
    assert tokens == ["Bearer gsm_piped"] * 3
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    run = gsomia("client", "--url", URL, "--token-file", str(empty), "inbox")
    assert run.code == 4 and f"the token file {empty} is empty" in run.err, run.err


def test_a_fetched_payload_is_never_written_into_another_users_named_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a named pipe made under the name given, in a folder anyone may write (/tmp), was written
    # into: its owner, reading the other end, got the plaintext that was to be only the user's
    fifo = tmp_path / "payload.bin"
    os.mkfifo(fifo)

    def read_all() -> bytes:
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
        reader.start()
        try:
            common.write_private_file(fifo, b"classified", "payload")
        finally:
            reader.join(timeout=10)
        return got[0]

    assert read_all() == b"classified"  # the user's own pipe, as >(command) makes it
    monkeypatch.setattr(os, "getuid", lambda: os.stat(fifo).st_uid + 1)  # another user's
    with pytest.raises(InvalidInput, match="a named pipe of another user") as refused:
        read_all()
    assert str(fifo) in str(refused.value)


def test_a_fetched_payload_to_dash_goes_to_standard_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    # as 'ledger export --out -': a file named "-" was made in the working folder
    monkeypatch.chdir(tmp_path)
    common.write_private_file(Path("-"), b"classified\x00\xff", "payload")
    assert capsysbinary.readouterr().out == b"classified\x00\xff"
    assert list(tmp_path.iterdir()) == []
