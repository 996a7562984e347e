"""A live exchange for the exchange tests: a served database with the bundled scenario,
principals for JPN, KOR, USA, an operator and an auditor, and the parties' key files kept on
the *client* side (a folder the server never sees), registered over the API."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import rfc8785

from gsomia.bootstrap import Settings, build
from gsomia.crypto import PartyKeys, sign, write_private_keyfile
from gsomia.services.exchange.access import Role
from tests.integration.conftest import TLS, Server, start_server

PARTIES = ("JPN", "KOR", "USA")
SCENARIO_PARTIES = ("JPN", "KOR", "USA", "NATO", "AUS", "GBR", "FRA", "IND", "ITA", "DEU", "UKR")
"""Every party of the bundled scenario: a report names its recipients, and "every eligible
party" is this list without the originator."""
_EVERY = object()
STORY_TOPIC = "dprk.missile.launch"


@dataclass
class Exchange:
    """A running exchange and the credentials of its users."""

    server: Server
    db: str
    data_dir: Path
    client_dir: Path
    tokens: dict[str, str]
    keys: dict[str, PartyKeys]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, verify=TLS)

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.client(who) as c:
            return c.request(method, path, **kwargs)

    def submit(self, who: str = "JPN", **fields: Any) -> httpx.Response:
        """Sign (with ``who``'s key unless ``signer`` is given) and submit a report."""
        return self.call(who, "POST", "/api/v1/reports", json=self.signed(who, **fields))

    def signed(self, who: str = "JPN", *, signer: str | None = None, **fields: Any) -> dict[str, Any]:
        keys = self.keys[signer or who]
        report = report_doc(originator=who, **fields)
        return {
            "report": report,
            "signature": base64.b64encode(sign(keys, bytes(rfc8785.dumps(report)))).decode(),
            "key": keys.fingerprint(),
        }

    def inbox(self, who: str) -> list[dict[str, Any]]:
        r = self.call(who, "GET", "/api/v1/inbox", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def counts(self) -> tuple[dict[str, Any], int]:
        """What exists: the auditor's statistics and the ledger size (for "nothing half-written")."""
        stats = self.call("auditor", "GET", "/api/v1/exchange/stats").json()
        cp = self.call("auditor", "GET", "/api/v1/ledger/checkpoint").text
        return stats, int(cp.splitlines()[1])

    def stop(self) -> None:
        self.server.stop()


def report_doc(
    *,
    originator: str = "JPN",
    report_id: str | None = None,
    topic: str = STORY_TOPIC,
    level: str = "極秘",
    recipients: list[str] | object | None = _EVERY,
    rel_to: list[str] | None = None,
    orcon: bool = False,
    payload: bytes = b'{"track": [[39.0, 125.7, 0], [40.1, 133.2, 950]]}',
    created: str = "2019-11-22T09:58:00+09:00",
) -> dict[str, Any]:
    return {
        "id": report_id or f"r-{secrets.token_hex(6)}",
        "originator": originator,
        "topic": topic,
        "level": level,
        "caveats": {"rel_to": rel_to, "noforn": False, "orcon": orcon},
        "created": created,
        "recipients": [p for p in SCENARIO_PARTIES if p != originator] if recipients is _EVERY else recipients,
        "content_type": "application/json",
        "payload": base64.b64encode(payload).decode(),
    }


def start_exchange(
    workdir: Path,
    *,
    exercise_clock: str | None = None,
    whatif: str | None = None,
    extra_env: dict[str, str] | None = None,
    db: str | None = None,
) -> Exchange:
    """Load the scenario, create principals and client-side keys, start the server, register keys."""
    data_dir = workdir / "server"
    client_dir = workdir / "client"
    data_dir.mkdir(parents=True, exist_ok=True)
    client_dir.mkdir(parents=True, exist_ok=True)
    db = db or f"sqlite:///{data_dir / 'gsomia.db'}"
    app = build(Settings(db=db, data_dir=data_dir))
    try:
        app.scenarios.load("japan-korea-2019")
        identity = app.exchange.identity
        tokens = {p: identity.add_principal(role=Role.PARTY, name=f"{p} desk", party=p).token for p in PARTIES}
        tokens["operator"] = identity.add_principal(role=Role.OPERATOR, name="duty operator").token
        tokens["auditor"] = identity.add_principal(role=Role.AUDITOR, name="inspector").token
    finally:
        app.close()
    keys = {}
    for p in PARTIES:
        keys[p] = PartyKeys.generate(p)
        write_private_keyfile(client_dir / f"{p}.keys", keys[p])
    env = dict(extra_env or {})
    if exercise_clock:
        env["GSOMIA_EXERCISE_CLOCK"] = exercise_clock
    if whatif:
        path = workdir / "exercise-whatif.yaml"
        path.write_text(whatif, encoding="utf-8")
        env["GSOMIA_EXERCISE_WHATIF"] = str(path)
    server = start_server(db, data_dir, env)
    ex = Exchange(server, db, data_dir, client_dir, tokens, keys, env)
    for p in PARTIES:
        r = ex.call(p, "PUT", f"/api/v1/parties/{p}/keys", json=keys[p].public_keys().to_dict())
        assert r.status_code == 201, r.text
    return ex


def wait_for(check: Callable[[], Any], *, timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # poll interval, not a wait for a result


@contextmanager
def sse(
    ex: Exchange, who: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> Iterator[Iterator[dict[str, Any]]]:
    """An open event stream of ``who``'s inbox, as an iterator of ``{"id", "event", "data"}``."""
    import json

    with (
        ex.client(who) as c,
        c.stream(
            "GET", "/api/v1/inbox/stream", headers=headers or {}, params=params, timeout=httpx.Timeout(30.0)
        ) as response,
    ):
        assert response.status_code == 200, response.read()

        def events() -> Iterator[dict[str, Any]]:
            current: dict[str, Any] = {}
            for line in response.iter_lines():
                if line.startswith(":"):
                    continue
                if not line:
                    if "data" in current:
                        current["data"] = json.loads(current["data"])
                        yield current
                    current = {}
                    continue
                name, _, value = line.partition(":")
                current[name] = value.lstrip()

        yield events()
