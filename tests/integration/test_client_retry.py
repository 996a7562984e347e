"""Retrying ``gsomia client submit`` sends what was signed, and the exchange stores it once."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gsomia.cli import exchange as client_cli
from gsomia.cli import main
from gsomia.client.http import ExchangeClient
from tests.integration.exchange_support import Exchange, start_exchange

pytestmark = pytest.mark.slow

TRACK = b'{"launch": "2019-11-22T09:41+09:00", "apogee_km": 110}\n'


class LosesAnswers(httpx.HTTPTransport):
    """A real connection to the exchange on which submissions can go wrong: the first
    ``lose`` answers are lost after the exchange handled the request (a timeout), or the next
    ``refuse`` requests never leave (a refused connection)."""

    def __init__(self, *, lose: int = 0, refuse: int = 0) -> None:
        super().__init__()
        self.lose, self.refuse = lose, refuse
        self.sent: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or request.url.path != "/api/v1/reports":
            return super().handle_request(request)
        if self.refuse:
            self.refuse -= 1
            raise httpx.ConnectError("connection refused", request=request)
        request.read()
        self.sent.append(request.content)
        response = super().handle_request(request)
        if self.lose:
            self.lose -= 1
            response.read()
            response.close()
            raise httpx.ReadTimeout("timed out", request=request)
        return response


@pytest.fixture(scope="module")
def ex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exchange]:
    exchange = start_exchange(tmp_path_factory.mktemp("retry"))
    yield exchange
    exchange.stop()


@pytest.fixture
def transport(ex: Exchange, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[LosesAnswers]:
    """Each ``gsomia client`` command gets the next transport (a plain one when none is queued)."""
    queued: list[LosesAnswers] = []

    def exchange() -> ExchangeClient:
        t = queued.pop(0) if queued else LosesAnswers()
        return ExchangeClient(ex.url, token=ex.tokens["JPN"], transport=t, backoff=0.0)

    monkeypatch.setattr(client_cli, "_exchange", exchange)
    monkeypatch.setenv("GSOMIA_DATA_DIR", str(tmp_path / "client-data"))
    return queued


def submit(
    ex: Exchange, tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str, payload: bytes = TRACK
) -> tuple[int, str, str]:
    file = tmp_path / "track.json"
    file.write_bytes(payload)
    args = ["client", "submit", "--key", str(ex.client_dir / "JPN.keys"), "--topic", "dprk.missile.launch"]
    args += ["--level", "極秘", "--payload", str(file), "--recipient", "KOR", *extra]
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _submissions_of(ex: Exchange, report_id: str) -> list[dict[str, Any]]:
    found, start = [], 0
    while start is not None:
        page = ex.call("auditor", "GET", "/api/v1/ledger/entries", params={"start": start, "limit": 1000}).json()
        found += [e["entry"] for e in page["entries"] if e["entry"].get("report") == report_id]
        start = page["next"]
    return [e for e in found if e["type"] == "submission"]


def test_a_timed_out_submission_is_sent_again_and_stored_once(
    ex: Exchange, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: list[LosesAnswers]
) -> None:
    flaky = LosesAnswers(lose=1)
    transport.append(flaky)
    code, out, err = submit(ex, tmp_path, capsys, "--id", "timeout-1")
    assert code == 0, err
    assert len(flaky.sent) == 2 and flaky.sent[0] == flaky.sent[1]  # the same bytes, twice
    stored = ex.call("JPN", "GET", "/api/v1/reports/timeout-1").json()
    assert f"report timeout-1 (ledger entry {stored['leaf_index']})" in out  # the stored result
    assert "KOR" in out and "delivered" in out
    assert len(_submissions_of(ex, "timeout-1")) == 1
    assert not (tmp_path / "client-data" / "outbox" / "JPN" / "timeout-1.json").exists()


def test_a_report_kept_after_a_failed_run_is_resent_as_signed(
    ex: Exchange, tmp_path: Path, capsys: pytest.CaptureFixture[str], transport: list[LosesAnswers]
) -> None:
    transport.append(LosesAnswers(refuse=4))
    code, _out, err = submit(ex, tmp_path, capsys, "--id", "kept-1")
    kept = tmp_path / "client-data" / "outbox" / "JPN" / "kept-1.json"
    assert code == 10
    assert err.count("\n") == 1 and f"kept in {kept}" in err and "--id kept-1" in err
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    signed = json.loads(kept.read_bytes())
    assert set(signed) == {"report", "signature", "key"}  # never a private key
    assert ex.call("JPN", "GET", "/api/v1/reports/kept-1").status_code == 404

    # the same id for another payload is refused, and nothing is sent
    code, _out, err = submit(ex, tmp_path, capsys, "--id", "kept-1", payload=b"another track")
    assert code == 6 and "was used for another report (payload differ" in err
    assert ex.call("JPN", "GET", "/api/v1/reports/kept-1").status_code == 404

    as_signed = kept.read_bytes()
    later = LosesAnswers()
    transport.append(later)
    code, out, err = submit(ex, tmp_path, capsys, "--id", "kept-1", "--json")
    assert code == 0, err
    assert later.sent == [as_signed]  # not signed again
    assert f"exactly as signed at {signed['report']['created']}" in err
    assert json.loads(out) == ex.call("JPN", "GET", "/api/v1/reports/kept-1").json()
    assert len(_submissions_of(ex, "kept-1")) == 1
    assert not kept.exists()
