"""``gsomia ledger`` in process, on an exchange's ledger: checkpoints, keys, exports and proofs a
user keeps, verification of the local store, an export, proofs alone and a server's API, and
the one-line errors for files that cannot be read or written and options that do not go
together."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.cli import ledger as ledger_commands
from gsomia.client.http import ExchangeClient
from tests.harness import Harness, InProcessTransport
from tests.unit.cli.cli_support import Gsomia, Run

URL = "http://exchange.test"


@pytest.fixture
def ledger(gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gsomia:
    """``gsomia ledger …`` on the harness's database (three reports submitted)."""
    for _ in range(3):
        harness.submit("JPN", recipients=["KOR"])
    monkeypatch.setenv("GSOMIA_DATA_DIR", str(tmp_path))  # the harness's data directory: its ledger key

    def run(*args: str) -> Run:
        return gsomia("--db", str(harness.app.settings.db), "ledger", *args)

    return run


def serve(monkeypatch: pytest.MonkeyPatch, h: Harness) -> None:
    """Make ``ledger verify --url`` reach ``h``'s API in this process."""

    def factory(url: str, *, token: str | None = None, **_: Any) -> ExchangeClient:
        return ExchangeClient(url, token=token, transport=InProcessTransport(h.api))

    monkeypatch.setattr(ledger_commands, "ExchangeClient", factory)


def test_checkpoint_key_export_and_verify_as_a_user_keeps_them(
    ledger: Gsomia, harness: Harness, tmp_path: Path
) -> None:
    size = harness.app.ledger.size()
    note = ledger("checkpoint")
    assert note.code == 0, note.err
    assert note.out.splitlines()[1] == str(size)  # the tree size line of the signed note
    saved = tmp_path / "kept.cp"
    assert ledger("checkpoint", "--out", str(saved)).err == f"saved the checkpoint to {saved}\n"
    assert saved.read_text(encoding="utf-8") == note.out
    cp = json.loads(ledger("checkpoint", "--json").out)
    assert (cp["size"], cp["note"], cp["file"]) == (size, note.out, None)

    key_file = tmp_path / "key.json"
    key = json.loads(ledger("key", "--json", "--out", str(key_file)).out)
    assert json.loads(key_file.read_text(encoding="utf-8")) == key
    assert ledger("key").out == f"{key['vkey']}\n"

    export = tmp_path / "ledger.jsonl"
    exported = json.loads(ledger("export", "--out", str(export), "--json").out)
    assert (exported["entries"], exported["file"]) == (size, str(export))
    assert ledger("export", "--out", str(export)).err == f"wrote {size} entries and their checkpoint to {export}\n"

    local = ledger("verify", "--key", str(key_file), "--since", str(saved))
    assert local.code == 0, local.err
    assert local.out.startswith("ledger verified (") and f"size {size}" in local.out
    assert "not pinned" not in local.out
    offline = ledger("verify", "--export", str(export), "--key-b64", key["public_key"])
    assert offline.code == 0, offline.err
    unpinned = ledger("verify", "--export", str(export), "--json")
    assert json.loads(unpinned.out)["ok"] is True
    assert "warning: the key comes from the export" in unpinned.err


def test_proofs_are_printed_saved_and_verified_offline(ledger: Gsomia, harness: Harness, tmp_path: Path) -> None:
    key = json.loads(ledger("key", "--json").out)
    kept = tmp_path / "kept.cp"
    ledger("checkpoint", "--out", str(kept))
    old = harness.app.ledger.size()
    harness.submit("JPN", recipients=["KOR"])
    inclusion = json.loads(ledger("proof", "--index", "4").out)
    assert inclusion["entry"]["type"] in {"submission", "decision", "delivery"}
    consistency = tmp_path / "consistency.json"
    assert ledger("proof", "--old", str(old), "--out", str(consistency)).err == f"saved the proof to {consistency}\n"
    inclusion_file = tmp_path / "inclusion.json"
    inclusion_file.write_text(json.dumps(inclusion), encoding="utf-8")
    checked = ledger(
        "verify",
        "--proof",
        str(inclusion_file),
        "--proof",
        str(consistency),
        "--since",
        str(kept),
        "--key-b64",
        key["public_key"],
    )
    assert checked.code == 0, checked.err
    assert checked.out.startswith("ledger verified")
    tampered = {**inclusion, "entry": {**inclusion["entry"], "recipient": "USA"}}
    inclusion_file.write_text(json.dumps(tampered), encoding="utf-8")
    refused = ledger("verify", "--proof", str(inclusion_file), "--key-b64", key["public_key"])
    assert refused.code == 8 and refused.err.startswith("error: ")
    unpinned = ledger("verify", "--proof", str(consistency))
    assert unpinned.code == 4 and "a proof alone cannot tell which key to trust" in unpinned.err


def test_a_servers_ledger_is_verified_over_its_api(
    ledger: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(monkeypatch, harness)
    key_file = tmp_path / "key.json"
    ledger("key", "--json", "--out", str(key_file))
    pinned = ledger("verify", "--url", URL, "--token", harness.tokens["auditor"], "--key", str(key_file))
    assert pinned.code == 0, pinned.err
    size = harness.app.ledger.size()
    assert pinned.out.startswith(f"ledger verified ({URL})") and f"size {size}" in pinned.out
    unpinned = ledger("verify", "--url", URL, "--token", harness.tokens["KOR"])
    assert unpinned.code == 0 and f"warning: the key comes from {URL} itself" in unpinned.err
    anonymous = ledger("verify", "--url", URL)
    assert anonymous.code == 9 and "refused to serve the ledger" in anonymous.err and "pass --token" in anonymous.err


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("proof",), 4, "give exactly one of --index N (inclusion) or --old M (consistency)"),
        (("proof", "--index", "1", "--old", "1"), 4, "give exactly one of"),
        (("proof", "--index", "99"), 5, "99"),
        (("verify", "--export", "x", "--url", URL), 4, "give at most one of --export FILE and --url URL"),
        (("verify", "--key", "k", "--key-b64", "k"), 4, "give at most one of --key FILE and --key-b64 KEY"),
        (("verify", "--checkpoint", "/no/such.cp"), 4, "cannot read the checkpoint file /no/such.cp"),
        (("export", "--out", "/no/such/dir/ledger.jsonl"), 4, "cannot write /no/such/dir/ledger.jsonl"),
        (("checkpoint", "--out", "/no/such/dir/cp"), 4, "cannot write /no/such/dir/cp"),
    ],
)
def test_usage_and_file_errors_are_one_line(ledger: Gsomia, args: tuple[str, ...], code: int, fragment: str) -> None:
    run = ledger(*args)
    assert run.code == code, run.err
    assert fragment in run.err and run.err.count("\n") == 1


def test_proof_files_that_are_not_json_or_not_text_are_refused(ledger: Gsomia, tmp_path: Path) -> None:
    not_json = tmp_path / "proof.json"
    not_json.write_text("{oops", encoding="utf-8")
    run = ledger("verify", "--proof", str(not_json), "--key-b64", "AAAA")
    assert run.code == 4 and f"proof file {not_json} is not JSON" in run.err
    binary = tmp_path / "proof.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    run = ledger("verify", "--proof", str(binary), "--key-b64", "AAAA")
    assert run.code == 4 and "not UTF-8 text" in run.err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    run = ledger("verify", "--proof", str(deep), "--key-b64", "AAAA")
    assert run.code == 4 and f"proof file {deep} is not JSON" in run.err, run.err


# --- a server that misbehaves -----------------------------------------------------------------------


def misbehaving(
    monkeypatch: pytest.MonkeyPatch, h: Harness, alter: Callable[[str, httpx.Response], httpx.Response]
) -> None:
    """Make ``ledger verify --url`` reach ``h``'s API through ``alter(path, response)``."""
    honest = InProcessTransport(h.api)

    def handler(request: httpx.Request) -> httpx.Response:
        return alter(request.url.path.removeprefix("/api/v1/ledger"), honest.handle_request(request))

    def factory(url: str, *, token: str | None = None, **_: Any) -> ExchangeClient:
        return ExchangeClient(url, token=token, transport=httpx.MockTransport(handler))

    monkeypatch.setattr(ledger_commands, "ExchangeClient", factory)


def replace_json(response: httpx.Response, edit: Callable[[Any], Any]) -> httpx.Response:
    return httpx.Response(response.status_code, json=edit(response.json()))


SERVED: list[tuple[str, Callable[[str, httpx.Response], httpx.Response], str]] = [
    (
        "a checkpoint it cannot serve",
        lambda p, r: httpx.Response(500, json={"type": "urn:gsomia:problem:internal"}) if p == "/checkpoint" else r,
        "GET /checkpoint",
    ),
    (
        "a key that is not JSON",
        lambda p, r: httpx.Response(200, text="<html>") if p == "/key" else r,
        "GET /key did not answer JSON",
    ),
    (
        "an entry without its leaf hash",
        lambda p, r: (
            replace_json(
                r, lambda d: {**d, "entries": [{k: v for k, v in d["entries"][0].items() if k != "leaf_hash"}]}
            )
            if p == "/entries"
            else r
        ),
        "entry 0 is malformed",
    ),
    (
        "no entries at all",
        lambda p, r: replace_json(r, lambda d: {**d, "entries": []}) if p == "/entries" else r,
        "holds 0 entries but the checkpoint commits to 12: entries 0..11 are missing",
    ),
]


@pytest.mark.parametrize(("alter", "fragment"), [pytest.param(a, f, id=n) for n, a, f in SERVED])
def test_a_server_that_misbehaves_is_named(
    ledger: Gsomia,
    harness: Harness,
    monkeypatch: pytest.MonkeyPatch,
    alter: Callable[[str, httpx.Response], httpx.Response],
    fragment: str,
) -> None:
    misbehaving(monkeypatch, harness, alter)
    run = ledger("verify", "--url", URL, "--token", harness.tokens["auditor"])
    assert run.code == 8, run.err
    assert fragment in run.err


def test_a_malformed_consistency_proof_from_the_server_is_named(
    ledger: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "kept.cp"
    ledger("checkpoint", "--out", str(kept))
    old = harness.app.ledger.size()
    harness.submit("JPN", recipients=["KOR"])
    misbehaving(
        monkeypatch,
        harness,
        lambda p, r: replace_json(r, lambda d: {**d, "proof": "not a list"}) if p == "/proof/consistency" else r,
    )
    run = ledger("verify", "--url", URL, "--token", harness.tokens["auditor"], "--since", str(kept))
    assert run.code == 8, run.err
    assert f"the consistency proof {old} -> {harness.app.ledger.size()} is malformed" in run.err


def test_backup_prints_the_signed_checkpoint_to_keep_for_verify_since(
    gsomia: Gsomia, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the docs say to verify a restore against "the checkpoint printed at backup time"; the
    # text output printed none (only --json carried it)
    harness.submit("JPN", recipients=["KOR"])
    monkeypatch.setenv("GSOMIA_DATA_DIR", str(tmp_path))  # the harness's data directory: its ledger key
    db = str(harness.app.settings.db)
    run = gsomia("--db", db, "backup", "--out", str(tmp_path / "kept.db"))
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("keep this signed checkpoint"))
    kept = tmp_path / "kept.txt"
    kept.write_text("\n".join(lines[at + 1 :]) + "\n")
    size = harness.app.ledger.size()
    harness.submit("JPN", recipients=["KOR"])
    verified = gsomia("--db", db, "ledger", "verify", "--since", str(kept))
    assert verified.code == 0, verified.err
    assert f"consistent with your kept checkpoint (size {size})" in verified.out
