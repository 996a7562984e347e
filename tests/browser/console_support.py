"""Live party nodes for the console's browser tests, and guarded pages sized like the screens
officers use (1440 × 900 on a desk, 390 × 844 on a phone).

The world is real: the exchange (``gsomia serve``) in exercise mode over the bundled 2019
scenario, under the what-if in which the Japan–Korea GSOMIA ended on 2019-11-23, and the
parties' nodes made by ``gsomia node init`` and served by ``gsomia node serve``, each a
subprocess on its own port. Reports are sent through JPN's node, as an officer would; KOR's
node receives, decrypts and verifies them on its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

from gsomia.node.app import COOKIE
from gsomia.node.service import NodeService
from tests.browser.conftest import REPORT_CSP, Guard
from tests.integration.conftest import TLS, Server, free_port, start_server
from tests.integration.exchange_support import Exchange, start_exchange, wait_for

PASSWORD = "correct horse battery staple"
CLOCK = "2019-11-22T10:00+09:00"
"""The exercise clock at the start: the Japan–Korea GSOMIA is in force (direct releases)."""
AFTER = "2019-12-01T10:00+09:00"
"""Under the what-if the GSOMIA ended on 2019-11-23: JPN reaches KOR only through the US."""
WHATIF = "name: termination-took-effect\ndrop: [jpn-kor-2019-suspension]\n"
USERS = {"duty": "officer", "approver": "approver", "chief": "admin"}
SIZES: dict[str, ViewportSize] = {"desk": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
SCREENS = Path(
    os.environ.get("GSOMIA_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
)
"""Where screenshots go (``GSOMIA_SCREENSHOTS`` overrides the test artifacts folder)."""


def track(samples: int = 11, *, start: str = "2019-11-22T00:51:00Z", apogee_km: float = 400.0) -> dict[str, Any]:
    """A missile track in the node's contract shape: one sample a minute, a parabola in height
    over a straight path east-north-east from the launch point."""
    t0 = datetime.fromisoformat(start)
    mid = (samples - 1) / 2
    return {
        "kind": "missile-track",
        "track": [
            {
                "t": (t0 + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
                "lat": round(39.5 + 0.3 * i, 3),
                "lon": round(125.0 + 0.8 * i, 3),
                "alt_km": round(max(0.0, apogee_km * (1 - ((i - mid) / mid) ** 2)), 1),
                "speed_mps": 1500 + 100 * i,
            }
            for i in range(samples)
        ],
    }


@dataclass
class Node:
    """A party's node: its folder, its server, and officers' API sessions."""

    party: str
    dir: Path
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    sessions: dict[str, httpx.Client] = field(default_factory=dict)

    def start(self) -> None:
        """Start ``gsomia node serve`` (see :meth:`ready`)."""
        port = free_port()
        log = (self.dir.parent / f"{self.party}-node.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gsomia", "node", "serve", "--dir", str(self.dir), "--port", str(port)),
                *("--witness-interval", "1", "--log-level", "warning"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{port}"

    def ready(self) -> None:
        """Wait until the node answers (an unauthenticated status is a 401)."""

        def listening() -> bool:
            try:
                return httpx.get(self.url + "/api/status", timeout=1, verify=TLS).status_code == 401
            except httpx.TransportError:
                return False

        wait_for(listening, timeout=60, what=f"{self.party}'s node to listen")

    def api(self, user: str) -> httpx.Client:
        """An API session of ``user`` (made once), sending its CSRF token on every change."""
        if user not in self.sessions:
            client = httpx.Client(base_url=self.url, timeout=30, verify=TLS)
            r = client.post("/api/session", json={"username": user, "password": PASSWORD})
            assert r.status_code == 200, r.text
            client.headers["X-CSRF-Token"] = r.json()["csrf"]
            self.sessions[user] = client
        return self.sessions[user]

    def inbox(self, user: str = "chief", **params: str) -> list[dict[str, Any]]:
        r = self.api(user).get("/api/inbox", params={"limit": "200", **params})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def arrived(self, report: str, *, state: str | None = None) -> dict[str, Any]:
        """The node's item for ``report`` once it is no longer pending (or in ``state``)."""

        def found() -> dict[str, Any] | None:
            for item in self.inbox():
                if item["report_id"] == report and item["state"] != "pending" and state in (None, item["state"]):
                    return item
            return None

        item: dict[str, Any] = wait_for(found, timeout=60, what=f"{self.party}'s node to verify {report}")
        return item

    def stop(self) -> None:
        for client in self.sessions.values():
            client.close()
        self.sessions.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)


@dataclass
class World:
    """The exchange and the parties' nodes."""

    ex: Exchange
    nodes: dict[str, Node]
    base: Path

    @property
    def jpn(self) -> Node:
        return self.nodes["JPN"]

    @property
    def kor(self) -> Node:
        return self.nodes["KOR"]

    def send(
        self,
        payload: Any,
        *,
        recipients: tuple[str, ...] = ("KOR",),
        topic: str = "dprk.missile.launch",
        level: str = "極秘",
        content_type: str = "application/json",
        rel_to: list[str] | None = None,
        user: str = "duty",
    ) -> dict[str, Any]:
        """Submit a report through JPN's node (signed there); the exchange's result."""
        spec = {
            "topic": topic,
            "level": level,
            "recipients": list(recipients),
            "caveats": {"rel_to": rel_to, "orcon": False, "noforn": False},
            "content_type": content_type,
            "payload": payload if isinstance(payload, str) else json.dumps(payload),
        }
        r = self.jpn.api(user).post("/api/submit", json=spec)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def deliver(self, payload: Any, **kwargs: Any) -> dict[str, Any]:
        """Send a report from JPN to KOR and return KOR's verified inbox item."""
        report = self.send(payload, **kwargs)["report"]
        return self.kor.arrived(report, state="verified")

    def advance(self, at: str) -> None:
        """Move the exercise clock to ``at`` (never backwards: a later instant only)."""
        now = self.ex.call("operator", "GET", "/api/v1/exercise").json()["clock"]
        if datetime.fromisoformat(now) < datetime.fromisoformat(at):
            r = self.ex.call("operator", "POST", "/api/v1/exercise/clock", json={"at": at})
            assert r.status_code == 200, r.text

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        self.ex.stop()


def gsomia_started(*args: str) -> subprocess.Popen[str]:
    """The CLI as a user runs it, started (the caller collects its output)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gsomia", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def start_world(
    base: Path,
    *,
    parties: tuple[str, ...] = ("JPN", "KOR"),
    before_serving: Callable[[Exchange], None] | None = None,
) -> World:
    """The exchange and a node per party, each with a duty officer, an approver and a chief
    (admin). ``before_serving`` runs once the nodes exist and before they serve (and so before
    they follow the exchange)."""
    ex = start_exchange(base / "exchange", exercise_clock=CLOCK, whatif=WHATIF)
    nodes = {party: Node(party, base / party.lower()) for party in parties}
    world = World(ex, nodes, base)
    try:
        # the nodes are made, and then served, side by side: each is its own process
        inits = {}
        for party, node in nodes.items():
            token = base / f"{party}.token"
            token.write_text(ex.tokens[party] + "\n")
            inits[party] = gsomia_started(
                "node", "init", "--party", party, "--exchange", ex.url, "--key", str(ex.client_dir / f"{party}.keys"),
                "--token-file", str(token), "--dir", str(node.dir), "--json",
            )  # fmt: skip
        for party, proc in inits.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert json.loads(out)["registered"] is True, party
        for node in nodes.values():
            service = NodeService.open(node.dir)
            try:
                for user, role in USERS.items():
                    service.add_user(user, PASSWORD, role, "test")
            finally:
                service.close()
        if before_serving is not None:
            before_serving(ex)
        for node in nodes.values():
            node.start()
        for node in nodes.values():
            node.ready()
    except BaseException:
        world.stop()
        raise
    return world


def snapshot(ex: Exchange, into: Path) -> Path:
    """A consistent copy of the exchange's database (SQLite's online backup) and secrets."""
    into.mkdir()
    source = sqlite3.connect(ex.db.removeprefix("sqlite:///"))
    with sqlite3.connect(into / "gsomia.db") as target:
        source.backup(target)
    source.close()
    for name in ("exchange.kek", "exchange-ledger.key"):
        if (ex.data_dir / name).exists():
            shutil.copy2(ex.data_dir / name, into / name)
    return into


def serve_exchange_from(ex: Exchange, data_dir: Path) -> Server:
    """Serve the exchange again on its own port, from ``data_dir`` (a snapshot): the nodes
    find the same address with an older ledger behind it."""
    port = int(ex.url.rsplit(":", 1)[1])
    return start_server(f"sqlite:///{data_dir / 'gsomia.db'}", data_dir, ex.env, port=port)


def alter_signature(ex: Exchange, report_id: str, recipients: list[str]) -> None:
    """Submit a report from JPN straight to the exchange, then alter its stored signature in
    the exchange's database, as a compromised exchange could: a node must quarantine it."""
    r = ex.submit("JPN", report_id=report_id, recipients=recipients)
    assert r.status_code == 201, r.text
    with sqlite3.connect(ex.db.removeprefix("sqlite:///")) as db:
        changed = db.execute(
            "UPDATE exchange_reports SET signature = ? WHERE id = ?", ("A" * 86 + "==", f"JPN/{report_id}")
        ).rowcount
    assert changed == 1


# --- pages --------------------------------------------------------------------------------------------------


def guarded(browser: Browser, size: str) -> Iterator[tuple[BrowserContext, Guard]]:
    """A browser context of the named size whose pages are all guarded: a request to any host
    but 127.0.0.1 is refused, and it, a console error, an uncaught exception or a CSP violation
    fails the test when the context ends."""
    guard = Guard()
    ctx = browser.new_context(viewport=SIZES[size], service_workers="block")
    ctx.route("**/*", guard.route)
    ctx.expose_function("gsomiaCspViolation", guard.violation)
    ctx.add_init_script(REPORT_CSP)

    def watch(page: Page) -> None:
        page.on("console", guard.console)
        page.on("pageerror", lambda exc: guard.errors.append(f"pageerror: {exc}"))

    ctx.on("page", watch)
    yield ctx, guard
    ctx.close()
    guard.check()


def sign_in(ctx: BrowserContext, node: Node, user: str) -> None:
    """Give the browser a session of ``user`` (signed in over the API; the sign-in form has its
    own test), as the session cookie the node set."""
    client = httpx.Client(base_url=node.url, timeout=30, verify=TLS)
    with client:
        r = client.post("/api/session", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = client.cookies.get(COOKIE)
    assert token
    ctx.clear_cookies()
    ctx.add_cookies([{"name": COOKIE, "value": token, "url": node.url, "httpOnly": True, "sameSite": "Strict"}])


# The elements reaching past the screen's right edge, innermost first (for the failure message).
WIDEST = """(limit) => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const r = n.nodeType === Node.TEXT_NODE ? (() => { const g = document.createRange(); g.selectNodeContents(n); return g.getBoundingClientRect(); })() : n.getBoundingClientRect();
    if (r.right > limit + 1) out.push(`${n.nodeType === Node.TEXT_NODE ? 'text "' + n.textContent.slice(0, 40) + '"' : n.tagName.toLowerCase() + '.' + (n.getAttribute('class') ?? '')} → ${Math.round(r.right)}px`);
  }
  return out.slice(-5);
}"""


def fits(page: Page, size: str) -> None:
    """Nothing on the page is wider than the screen (tables scroll inside their cards)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > SIZES[size]["width"]:
        wide = page.evaluate(WIDEST, SIZES[size]["width"])
        raise AssertionError(f"the page is {width}px wide on a {SIZES[size]['width']}px screen: {wide}")


def shot(page: Page, name: str, size: str) -> Path:
    """A full-page screenshot, ``console-NAME-SIZE.png``."""
    SCREENS.mkdir(parents=True, exist_ok=True)
    path = SCREENS / f"console-{name}-{size}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
