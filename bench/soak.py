"""Soak test: ``kill -9`` the exchange under load, again and again, and check that nothing it
acknowledged was lost and nothing was half-written.

Run: ``.venv/bin/python bench/soak.py [--rounds 20] [--submitters 4] [--seed N]``

Each round starts ``gsomia serve`` (SQLite, the default settings) on a fresh copy of a database
holding the bundled scenario, principals for JPN, KOR, USA and an auditor, and registered keys.
Client threads put it under load: JPN's submit signed reports of 1 KB to KOR and USA; KOR's and
USA's read their inboxes and acknowledge each delivery. Every answer the exchange gave (2xx) is
recorded. After a minimum of answered requests, at a random moment, the server is killed with
SIGKILL; then it is started again on the same database and the round checks that:

- every acknowledged submission is stored, answered exactly as before, with its decisions and
  deliveries and their ledger entries;
- every acknowledged acknowledgement is stored (the delivery is acknowledged, its ``ack`` entry
  is in the ledger);
- nothing is half-written: the ledger's indices run 0..n-1; every report, decision, delivery
  and acknowledgement row points at its ledger entry, and every ledger entry of those kinds
  has its row;
- the exchange goes on (a new submission is accepted), and ``gsomia ledger verify`` passes.

It prints one line per round and a summary, and exits 1 if anything acknowledged was lost,
anything was half-written, or a ledger did not verify. Takes about ten seconds per round. It
is not part of the test suite (``tests/integration/test_exchange_crash.py`` is one round of it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gsomia.bootstrap import Settings, build
from gsomia.client.reports import ReportDraft, sign_report
from gsomia.crypto import PartyKeys
from gsomia.services.exchange.access import Role

PARTIES = ("JPN", "KOR", "USA")
RECIPIENTS = ["KOR", "USA"]


# --- the database every round starts from ---------------------------------------------------------


@dataclass
class Template:
    """A database with the scenario, principals and keys, and the data directory's key files."""

    folder: Path
    tokens: dict[str, str]
    keys: dict[str, PartyKeys]


def make_template(folder: Path) -> Template:
    folder.mkdir(parents=True)
    app = build(Settings(db=f"sqlite:///{folder / 'gsomia.db'}", data_dir=folder))
    try:
        app.scenarios.load("japan-korea-2019")
        identity = app.exchange.identity
        tokens = {p: identity.add_principal(role=Role.PARTY, name=f"soak {p}", party=p).token for p in PARTIES}
        tokens["auditor"] = identity.add_principal(role=Role.AUDITOR, name="soak auditor").token
        keys = {p: PartyKeys.generate(p) for p in PARTIES}
        for p in PARTIES:
            app.exchange.keys.register(identity.authenticate(tokens[p]), p, keys[p].public_keys())
        app.ledger.open()  # creates the ledger key file beside the database
    finally:
        app.close()
    return Template(folder, tokens, keys)


def fresh_copy(template: Template, folder: Path) -> str:
    """A copy of the template's database and key files in ``folder``; its URL."""
    folder.mkdir(parents=True)
    for name in ("gsomia.db", "exchange-ledger.key"):
        shutil.copy2(template.folder / name, folder / name)
    return f"sqlite:///{folder / 'gsomia.db'}"


# --- the server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str


def start_server(db: str, folder: Path) -> Server:
    port = free_port()
    env = {**os.environ, "GSOMIA_DB": db, "GSOMIA_DATA_DIR": str(folder)}
    with (folder / "server.log").open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gsomia", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited at start; see {folder / 'server.log'}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Server(proc, url)
        except httpx.TransportError:
            time.sleep(0.05)  # readiness poll
    proc.kill()
    raise SystemExit(f"the server did not start; see {folder / 'server.log'}")


# --- load ---------------------------------------------------------------------------------------------


@dataclass
class Acknowledged:
    """Every answer the exchange gave before it was killed."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        with self.lock:
            return len(self.reports) + len(self.acks)


def submitter(server: Server, template: Template, prefix: str, done: Acknowledged, stop: threading.Event) -> None:
    keys = template.keys["JPN"]
    headers = {"Authorization": f"Bearer {template.tokens['JPN']}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            draft = ReportDraft(
                id=f"{prefix}-{n:05d}",
                topic="dprk.missile.launch",
                level="極秘",
                payload=os.urandom(1024),
                created=datetime.now(UTC),
                recipients=RECIPIENTS,
            )
            try:
                r = client.post("/api/v1/reports", json=sign_report(keys, draft))
            except httpx.TransportError:
                return  # the server is gone
            if r.is_success:
                with done.lock:
                    done.reports[draft.id] = r.json()


def acker(server: Server, template: Template, party: str, done: Acknowledged, stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {template.tokens[party]}"}
    cursor: str | None = None
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        while not stop.is_set():
            try:
                params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
                page = client.get("/api/v1/inbox", params=params)
                if not page.is_success:
                    continue
                body = page.json()
                for item in body["items"]:
                    if item["type"] != "delivery":
                        continue
                    r = client.post(f"/api/v1/deliveries/{item['id']}/ack", json={"need_to_know": True})
                    if r.is_success:
                        with done.lock:
                            done.acks[item["id"]] = r.json()
                cursor = body.get("next_cursor") or body.get("cursor") or cursor
                if not body["items"]:
                    time.sleep(0.02)  # poll interval while the inbox is empty
            except httpx.TransportError:
                return  # the server is gone


# --- checks -------------------------------------------------------------------------------------------


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    verified: bool = False
    entries: int = 0


def check_answers(server: Server, template: Template, done: Acknowledged, found: Findings) -> None:
    """Every acknowledged submission and acknowledgement is there, as answered."""
    jpn = {"Authorization": f"Bearer {template.tokens['JPN']}"}
    with httpx.Client(base_url=server.url, headers=jpn, timeout=30) as client:
        for report_id, answer in done.reports.items():
            stored = client.get(f"/api/v1/reports/{report_id}")
            if stored.status_code != 200 or stored.json() != answer:
                found.lost.append(f"report {report_id} (HTTP {stored.status_code})")
        fresh = ReportDraft(
            id=f"after-restart-{os.getpid()}-{time.monotonic_ns()}",
            topic="dprk.missile.launch",
            level="極秘",
            payload=b"after the restart",
            created=datetime.now(UTC),
            recipients=RECIPIENTS,
        )
        if client.post("/api/v1/reports", json=sign_report(template.keys["JPN"], fresh)).status_code != 201:
            found.lost.append("the exchange refused a submission after the restart")


def check_store(db_file: Path, done: Acknowledged, found: Findings) -> None:
    """Rows and ledger entries match one to one (the server is stopped; read the file)."""
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        entries: dict[int, dict[str, Any]] = {}
        for idx, body in conn.execute("SELECT idx, body FROM ledger_entries ORDER BY idx"):
            entries[int(idx)] = json.loads(bytes(body))
        found.entries = len(entries)
        if sorted(entries) != list(range(len(entries))):
            found.half_written.append("ledger indices have a gap")
        half = found.half_written

        def entry_is(index: int | None, kind: str, **fields: Any) -> bool:
            e = entries.get(index) if index is not None else None
            return e is not None and e.get("type") == kind and all(e.get(k) == v for k, v in fields.items())

        reports = {str(i): int(leaf) for i, leaf in conn.execute("SELECT id, leaf_index FROM exchange_reports")}
        for key, leaf in reports.items():
            originator, _, rid = key.partition("/")
            if not entry_is(leaf, "submission", report=rid, originator=originator):
                half.append(f"report {key} without its submission entry")
        decisions = {
            (str(r), str(p)): int(leaf)
            for r, p, leaf in conn.execute("SELECT report_id, recipient, leaf_index FROM exchange_decisions")
        }
        for (key, recipient), leaf in decisions.items():
            if not entry_is(leaf, "decision", report=key.partition("/")[2], recipient=recipient):
                half.append(f"decision {key} -> {recipient} without its entry")
        deliveries = {
            str(d): (int(leaf), None if ack is None else int(ack))
            for d, leaf, ack in conn.execute("SELECT id, leaf_index, ack_leaf_index FROM deliveries")
        }
        for d, (leaf, ack) in deliveries.items():
            if not entry_is(leaf, "delivery", delivery=d):
                half.append(f"delivery {d} without its entry")
            if ack is not None and not entry_is(ack, "ack", delivery=d):
                half.append(f"acknowledgement of {d} without its entry")
        for index, e in entries.items():
            kind = e.get("type")
            key = f"{e.get('originator')}/{e.get('report')}"
            if kind == "submission" and reports.get(key) != index:
                half.append(f"submission entry {index} without its report")
            elif kind == "decision" and decisions.get((key, str(e.get("recipient")))) is None:
                half.append(f"decision entry {index} without its decision")
            elif kind == "delivery" and deliveries.get(str(e.get("delivery")), (None, None))[0] != index:
                half.append(f"delivery entry {index} without its delivery")
            elif kind == "ack" and deliveries.get(str(e.get("delivery")), (None, None))[1] != index:
                half.append(f"ack entry {index} without its acknowledgement")
        for d, answer in done.acks.items():
            if deliveries.get(d, (None, None))[1] != answer["leaf_index"]:
                found.lost.append(f"acknowledgement of {d}")
        for rid, answer in done.reports.items():
            for recipient in answer["recipients"]:
                for delivery in recipient["deliveries"]:
                    if delivery["id"] not in deliveries:
                        found.lost.append(f"delivery {delivery['id']} of {rid}")
    finally:
        conn.close()


def ledger_verifies(db: str, folder: Path) -> bool:
    env = {**os.environ, "GSOMIA_DB": db, "GSOMIA_DATA_DIR": str(folder)}
    p = subprocess.run(
        [sys.executable, "-m", "gsomia", "ledger", "verify"], env=env, capture_output=True, text=True, check=False
    )
    if p.returncode != 0:
        sys.stdout.write(p.stdout + p.stderr)
    return p.returncode == 0


# --- a round ----------------------------------------------------------------------------------------


@dataclass
class Round:
    number: int
    reports: int
    acks: int
    killed_after: float
    found: Findings


def run_round(number: int, template: Template, folder: Path, args: argparse.Namespace, rng: random.Random) -> Round:
    db = fresh_copy(template, folder)
    server = start_server(db, folder)
    done = Acknowledged()
    stop = threading.Event()
    threads = [
        threading.Thread(target=submitter, args=(server, template, f"r{number}-s{i}", done, stop), daemon=True)
        for i in range(args.submitters)
    ]
    threads += [threading.Thread(target=acker, args=(server, template, p, done, stop), daemon=True) for p in RECIPIENTS]
    started = time.monotonic()
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while done.count() < args.min_answers and time.monotonic() < deadline:
        time.sleep(0.01)  # waiting for load to build up before choosing the moment
    time.sleep(rng.uniform(0, args.max_delay))  # the random moment of the kill
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    killed_after = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(30)

    found = Findings()
    restarted = start_server(db, folder)
    try:
        check_answers(restarted, template, done, found)
    finally:
        restarted.proc.send_signal(signal.SIGTERM)
        restarted.proc.wait(timeout=30)
    check_store(folder / "gsomia.db", done, found)
    found.verified = ledger_verifies(db, folder)
    return Round(number, len(done.reports), len(done.acks), killed_after, found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="how many kill -9 rounds")
    ap.add_argument("--submitters", type=int, default=4, help="threads submitting reports")
    ap.add_argument("--min-answers", type=int, default=100, help="answered requests before the kill may come")
    ap.add_argument("--max-delay", type=float, default=3.0, help="then the kill comes within this many seconds")
    ap.add_argument("--seed", type=int, default=None, help="random seed (printed; default: a fresh one)")
    ap.add_argument("--keep", action="store_true", help="keep the databases and logs (default: removed)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)

    base = Path(tempfile.mkdtemp(prefix="gsomia-soak-"))
    print(f"gsomia soak: {args.rounds} rounds of kill -9 under load, seed {seed}, in {base}", flush=True)
    template = make_template(base / "template")
    rounds: list[Round] = []
    for n in range(1, args.rounds + 1):
        r = run_round(n, template, base / f"round-{n:02d}", args, rng)
        rounds.append(r)
        f = r.found
        status = "ok" if not f.lost and not f.half_written and f.verified else "FAILED"
        print(
            f"round {n:2d}: killed at {r.killed_after:5.2f} s after {r.reports:5d} submissions and {r.acks:5d} "
            f"acknowledgements were answered; lost {len(f.lost)}, half-written {len(f.half_written)}, "
            f"ledger {'verified' if f.verified else 'NOT VERIFIED'} ({f.entries:,} entries): {status}",
            flush=True,
        )
        for problem in (f.lost + f.half_written)[:10]:
            print(f"    {problem}")

    acknowledged = sum(r.reports + r.acks for r in rounds)
    lost = sum(len(r.found.lost) for r in rounds)
    half = sum(len(r.found.half_written) for r in rounds)
    verified = sum(r.found.verified for r in rounds)
    print()
    print(f"rounds: {len(rounds)}")
    print(
        f"acknowledged: {acknowledged:,} ({sum(r.reports for r in rounds):,} submissions, "
        f"{sum(r.acks for r in rounds):,} acknowledgements)"
    )
    print(f"lost: {lost}")
    print(f"half-written: {half}")
    print(f"ledger verified: {verified}/{len(rounds)} rounds")
    if args.keep:
        print(f"data in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)
    if lost or half or verified != len(rounds):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
