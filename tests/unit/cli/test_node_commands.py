"""``gsomia node status`` in this process: what it says of the party's key sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gsomia.crypto import PartyKeys
from tests.unit.cli.cli_support import Gsomia, node_folder


def test_status_says_when_the_keys_are_not_registered(gsomia: Gsomia, tmp_path: Path) -> None:
    keys = PartyKeys.generate("KOR")
    node_folder(tmp_path / "kor", keys, state="pending").close()
    run = gsomia("node", "status", "--dir", str(tmp_path / "kor"))
    assert run.code == 0, run.err
    assert f"keys NOT registered with the exchange (set {keys.fingerprint()} pending)" in run.out
    json_run = gsomia("node", "status", "--dir", str(tmp_path / "kor"), "--json")
    assert json.loads(json_run.out)["keys"] | {"current": None} == {
        "current": None,
        "registered": False,
        "pending": keys.fingerprint(),
        "missing": None,
        "error": None,
    }


def test_status_names_the_exchange_s_current_key_set_the_node_does_not_hold(gsomia: Gsomia, tmp_path: Path) -> None:
    store = node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current")
    lost = PartyKeys.generate("KOR").fingerprint()
    store.put_json("keys.missing", {"fingerprint": lost, "registered_at": None, "node_current": None})
    store.close()
    run = gsomia("node", "status", "--dir", str(tmp_path / "kor"))
    assert run.code == 0, run.err
    line = next(line for line in run.out.splitlines() if lost in line)
    assert "cannot open new deliveries" in line and "gsomia node keys rotate" in line


def test_a_revoked_user_s_taxii_tokens_are_listed_as_dead(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tokens authenticate nobody once their user is revoked: "live" misled the admin
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    where = ("--dir", str(tmp_path / "kor"))
    monkeypatch.setenv("GSOMIA_NODE_PASSWORD", "a long enough password for the feed")
    assert gsomia("node", "users", "add", "feed", "--role", "officer", *where).code == 0
    assert gsomia("node", "taxii-tokens", "add", "feed", "--name", "opencti", *where).code == 0
    assert gsomia("node", "users", "revoke", "feed", *where).code == 0
    run = gsomia("node", "taxii-tokens", "list", *where)
    assert run.code == 0, run.err
    (line,) = [line for line in run.out.splitlines() if "opencti" in line]
    assert "dead: user revoked" in line and "live" not in line
    (row,) = json.loads(gsomia("node", "taxii-tokens", "list", *where, "--json").out)["tokens"]
    assert row["revoked"] is None and row["user_revoked"]
    # and none is issued for a revoked user: it was printed as if it worked
    late = gsomia("node", "taxii-tokens", "add", "feed", "--name", "late", *where)
    assert late.code != 0 and "gtx_" not in late.out and "revoked" in late.err, late.out + late.err
    assert len(json.loads(gsomia("node", "taxii-tokens", "list", *where, "--json").out)["tokens"]) == 1


def test_node_serve_runs_the_guarded_http_protocol(
    gsomia: Gsomia, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn's own httptools protocol takes request headers of any size (a 40 MB Authorization
    # header was read whole and decoded) and waits for ever for headers sent a byte at a time
    node_folder(tmp_path / "kor", PartyKeys.generate("KOR"), state="current").close()
    given: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda _app, **options: given.update(options))
    run = gsomia("node", "serve", "--dir", str(tmp_path / "kor"), "--witness-interval", "3600")
    assert run.code == 0, run.err
    protocol = given.get("http")
    assert isinstance(protocol, type) and issubclass(protocol, HttpToolsProtocol), protocol
    assert (getattr(protocol, "header_timeout", None), getattr(protocol, "body_timeout", None)) == (10.0, 300.0)
    assert (
        callable(getattr(protocol, "data_received", None))
        and protocol.data_received is not HttpToolsProtocol.data_received
    )
