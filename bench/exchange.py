"""End-to-end exchange benchmark through HTTP: submissions, latency, and push latency.

Run: ``.venv/bin/python bench/exchange.py [--seconds 12] [--concurrency 64]``

Starts ``gsomia serve`` (SQLite, the default settings: WAL, ``synchronous=FULL``) on a free port
with the bundled scenario, principals and registered keys, then measures, from a separate process:

1. sustained submissions/s (closed loop, ``--concurrency`` requests in flight), reports of
   1 KB to 3 recipients (KOR, USA, AUS), each signed by JPN beforehand;
2. latency p50/p99 at 1,000 reports/s offered (open loop: each request is timed from its
   scheduled send time, so queueing is counted);
3. push latency of the inbox event stream at 200 tracks/s: from the delivery's ledger entry
   (``recorded_at``, written inside the transaction, just before its commit) to the event's
   arrival at the client: commit → event, plus the rest of the commit; also from the decision
   instant stamped on the item (before the writer's queue), and from the submission's answer;
4. the cost of durability: a second server on a fresh database with
   ``GSOMIA_SQLITE_SYNCHRONOUS=NORMAL`` (which may lose the latest commits on power loss)
   takes the same sustained load and the same offered rate as the default server
   (``FULL``: the WAL is synced at every commit); sustained submissions/s and latency p50/p99
   under each, and FULL's share of NORMAL's;
5. from the same run, the machine's limits: single-row commits/s of SQLite in WAL mode with
   ``synchronous=FULL`` (a sync per commit, the server's default) and ``NORMAL``, and
   per-recipient HPKE wraps/s (X25519, the classic profile).

Beside them, for context: the server's CPU time per report and the cores it kept busy in the
sustained phase (from ``/proc``), the load generator's own CPU (so it is seen not to be the
bottleneck), and latency at half the sustained rate (what a client sees below saturation).

The client is a minimal asyncio HTTP/1.1 client in this process, separate from the server's,
so that the load generator costs little of the two cores it shares with the server. Takes
about two minutes (``--seconds 4`` for a shorter run). Speed is measured here, never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import rfc8785

from gsomia.bootstrap import Settings, build
from gsomia.crypto import PartyKeys, delivery_info, new_content_key, sign, wrap_key
from gsomia.services.exchange.access import Role

GOAL_RATE = 2500.0
GOAL_P99_MS = 50.0
GOAL_SSE_P99_MS = 20.0
RECIPIENTS = ["KOR", "USA", "AUS"]
PARTIES = ["JPN", *RECIPIENTS]


# --- machine limits ----------------------------------------------------------------------------


def sqlite_commits_per_s(folder: Path, synchronous: str, seconds: float) -> float:
    """Single-row transactions per second (WAL, like the server), one connection."""
    path = folder / f"commits-{synchronous}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    row = os.urandom(200)
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (row,))
        conn.execute("COMMIT")
        n += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def wraps_per_s(seconds: float) -> float:
    """Per-recipient HPKE wraps of a content key (classic: X25519, HKDF-SHA256, AES-256-GCM)."""
    public = PartyKeys.generate("KOR").public_keys()
    key = new_content_key()
    info = delivery_info("d-0123456789abcdef0123", "KOR")
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            wrap_key(public, key, info)
        n += 100
    return n / (time.perf_counter() - start)


# --- the server ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(folder: Path) -> tuple[str, dict[str, str], dict[str, PartyKeys]]:
    db = f"sqlite:///{folder / 'gsomia.db'}"
    app = build(Settings(db=db, data_dir=folder))
    try:
        app.scenarios.load("japan-korea-2019")
        identity = app.exchange.identity
        tokens = {p: identity.add_principal(role=Role.PARTY, name=f"bench {p}", party=p).token for p in PARTIES}
        tokens["auditor"] = identity.add_principal(role=Role.AUDITOR, name="bench auditor").token
        keys = {p: PartyKeys.generate(p) for p in PARTIES}
        for p in PARTIES:
            principal = identity.authenticate(tokens[p])
            app.exchange.keys.register(principal, p, keys[p].public_keys())
    finally:
        app.close()
    return db, tokens, keys


def start_server(db: str, folder: Path, synchronous: str = "FULL") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "GSOMIA_DB": db, "GSOMIA_DATA_DIR": str(folder), "GSOMIA_SQLITE_SYNCHRONOUS": synchronous}
    log = (folder / f"server-{synchronous}.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gsomia", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start; see " + str(folder / "server.log"))


# --- load -------------------------------------------------------------------------------------------


class Bodies:
    """Pre-signed submissions as raw HTTP/1.1 requests (signing is the client's cost, not the exchange's)."""

    def __init__(self, token: str, keys: PartyKeys, prefix: str) -> None:
        self.token = token
        self.keys = keys
        self.prefix = prefix
        self.n = 0

    def make(self, count: int, recipients: list[str]) -> list[bytes]:
        out = []
        for _ in range(count):
            self.n += 1
            report: dict[str, Any] = {
                "id": f"{self.prefix}-{self.n:07d}",
                "originator": "JPN",
                "topic": "dprk.missile.launch",
                "level": "極秘",
                "caveats": {"rel_to": None, "noforn": False, "orcon": False},
                "created": datetime.now(UTC).isoformat(),
                "recipients": recipients,
                "content_type": "application/octet-stream",
                "payload": base64.b64encode(os.urandom(1024)).decode(),
            }
            signature = base64.b64encode(sign(self.keys, bytes(rfc8785.dumps(report)))).decode()
            body = json.dumps({"report": report, "signature": signature, "key": self.keys.fingerprint()}).encode()
            out.append(
                b"POST /api/v1/reports HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
                + self.token.encode()
                + b"\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
        return out


class Conn:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    port: int, requests: list[bytes], concurrency: int, seconds: float, latencies: list[float] | None = None
) -> tuple[float, int, int]:
    """Keep ``concurrency`` requests in flight for ``seconds``; reports/s, successes, failures
    (and each request's latency in ``latencies``, if given)."""
    conns = [await Conn.open(port) for _ in range(concurrency)]
    it = iter(requests)
    ok = failed = 0
    stop = time.perf_counter() + seconds
    start = time.perf_counter()

    async def run(c: Conn) -> None:
        nonlocal ok, failed
        while time.perf_counter() < stop:
            raw = next(it, None)
            if raw is None:
                return
            sent = time.perf_counter()
            status, _ = await c.request(raw)
            if latencies is not None:
                latencies.append(time.perf_counter() - sent)
            if 200 <= status < 300:
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return ok / elapsed, ok, failed


async def open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, on_answer: Callable[[int, bytes], None] | None = None
) -> tuple[list[float], int, float]:
    """Send at ``rate``/s on a pool of connections; latency from each request's scheduled time."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(256):
        pool.put_nowait(await Conn.open(port))
    latencies: list[float] = []
    failed = 0
    n = min(len(requests), int(rate * seconds))
    interval = 1.0 / rate
    start = time.perf_counter() + 0.05

    async def one(i: int, raw: bytes) -> None:
        nonlocal failed
        scheduled = start + i * interval
        conn = await pool.get()
        status, body = await conn.request(raw)
        done = time.perf_counter()
        pool.put_nowait(conn)
        latencies.append(done - scheduled)
        if not 200 <= status < 300:
            failed += 1
        if on_answer is not None:
            on_answer(i, body)

    tasks = []
    for i, raw in enumerate(requests[:n]):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, raw)))
    await asyncio.gather(*tasks)
    achieved = n / (time.perf_counter() - start)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, failed, achieved


async def push_latency(
    port: int, token: str, requests: list[bytes], rate: float, seconds: float
) -> tuple[list[float], list[float], dict[int, float], list[float], int]:
    """Open KOR's event stream, submit at ``rate``; per event: decision→arrival and answer→arrival."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/inbox/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    arrivals: dict[str, tuple[float, float, float, int]] = {}
    answered: dict[str, float] = {}
    expected = min(len(requests), int(rate * seconds))

    async def read_events() -> None:
        # chunked transfer encoding: chunk-size lines interleave with the event lines; only
        # "data:" lines matter here.
        while len(arrivals) < expected:
            line = await reader.readline()
            if line.startswith(b"data:"):
                wall, mono = time.time(), time.perf_counter()
                item = json.loads(line[5:])
                if item.get("type") == "delivery":
                    decided = datetime.fromisoformat(item["created_at"]).timestamp()
                    arrivals[item["report"]] = (wall - decided, mono, wall, item["leaf_index"])

    def on_answer(_i: int, body: bytes) -> None:
        answered[json.loads(body)["report"]] = time.perf_counter()

    events = asyncio.create_task(read_events())
    await asyncio.sleep(0.2)
    latencies, _failed, _achieved = await open_loop(port, requests, rate, seconds, on_answer)
    try:
        await asyncio.wait_for(events, timeout=15)
    except TimeoutError:
        events.cancel()
    writer.close()
    from_decision = [v[0] for v in arrivals.values()]
    from_answer = [arrivals[r][1] - t for r, t in answered.items() if r in arrivals]
    arrived_at = {v[3]: v[2] for v in arrivals.values()}
    return from_decision, from_answer, arrived_at, latencies, expected - len(arrivals)


def from_ledger(port: int, token: str, arrived_at: dict[int, float]) -> list[float]:
    """Event arrival minus the ``recorded_at`` of the delivery's ledger entry (same wall clock)."""
    out = []
    leaves = sorted(arrived_at)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as c:
        start = leaves[0] if leaves else 0
        while leaves and start <= leaves[-1]:
            page = c.get("/api/v1/ledger/entries", params={"start": start, "limit": 1000}).json()
            for e in page["entries"]:
                if e["index"] in arrived_at:
                    recorded = datetime.fromisoformat(e["recorded_at"].replace("Z", "+00:00")).timestamp()
                    out.append(arrived_at[e["index"]] - recorded)
            if page["next"] is None:
                break
            start = page["next"]
    return out


@dataclass(frozen=True)
class Durability:
    """One server's sustained rate and latencies, for the FULL / NORMAL comparison."""

    rate: float
    sustained: list[float]
    offered: list[float]
    offered_achieved: float
    ok: int
    failed: int


def durability_run(folder: Path, args: argparse.Namespace, offered: float) -> Durability:
    """The sustained phase and the latency at ``offered``/s on a fresh server with
    ``synchronous=NORMAL``, as measured on the default server."""
    print("durability: the same load on a fresh server with synchronous=NORMAL ...", flush=True)
    folder.mkdir()
    db, tokens, keys = setup(folder)
    proc, port = start_server(db, folder, "NORMAL")
    try:
        bodies = Bodies(tokens["JPN"], keys["JPN"], "bench-normal")
        warm = bodies.make(1000, RECIPIENTS)
        sustained_bodies = bodies.make(int(args.seconds * 1200), RECIPIENTS)
        offered_bodies = bodies.make(int(offered * args.seconds / 2), RECIPIENTS)
        asyncio.run(closed_loop(port, warm, args.concurrency, 3))
        sustained: list[float] = []
        rate, ok, failed = asyncio.run(closed_loop(port, sustained_bodies, args.concurrency, args.seconds, sustained))
        at_offered, _, achieved = asyncio.run(open_loop(port, offered_bodies, offered, args.seconds / 2))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return Durability(rate, sustained, at_offered, achieved, ok, failed)


def print_durability(full: Durability, normal: Durability, concurrency: int, offered: float) -> None:
    def lat(values: list[float]) -> str:
        return f"p50 {pct(values, 0.5):.1f} ms, p99 {pct(values, 0.99):.1f} ms"

    def ratio(a: list[float], b: list[float]) -> str:
        return f"p50 {pct(a, 0.5) / pct(b, 0.5):.2f}, p99 {pct(a, 0.99) / pct(b, 0.99):.2f}"

    rows = [
        ("", "FULL (default)", "NORMAL", "FULL / NORMAL"),
        (
            f"sustained submissions ({concurrency} in flight)",
            f"{full.rate:,.0f} reports/s",
            f"{normal.rate:,.0f} reports/s",
            f"{full.rate / normal.rate:.2f}",
        ),
        (
            "  latency of those submissions",
            lat(full.sustained),
            lat(normal.sustained),
            ratio(full.sustained, normal.sustained),
        ),
        (
            f"latency at {offered:,.0f}/s offered",
            lat(full.offered) + f" ({full.offered_achieved:,.0f}/s)",
            lat(normal.offered) + f" ({normal.offered_achieved:,.0f}/s)",
            ratio(full.offered, normal.offered),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    print("durability: SQLite synchronous=FULL (a sync at every commit: answered commits survive power loss)")
    print("against NORMAL (may lose the latest commits on power loss), same load, fresh servers, this run:")
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())
    print(
        f"refused: FULL {full.failed} of {full.ok + full.failed:,}, NORMAL {normal.failed} of "
        f"{normal.ok + normal.failed:,} in the sustained phase"
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="duration of each load phase")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight in the closed loop")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered rate for the latency phase")
    ap.add_argument("--sse-rate", type=float, default=200.0, help="offered rate for the push phase")
    ap.add_argument("--keep", action="store_true", help="keep the database and logs (default: removed)")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="gsomia-bench-"))
    print(f"gsomia exchange bench on {platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    print("machine limits ...", flush=True)
    normal = sqlite_commits_per_s(folder, "NORMAL", 3)
    full = sqlite_commits_per_s(folder, "FULL", 3)
    wraps = wraps_per_s(3)

    db, tokens, keys = setup(folder)
    proc, port = start_server(db, folder)
    try:
        bodies = Bodies(tokens["JPN"], keys["JPN"], "bench")
        print("signing the submissions ...", flush=True)
        warm = bodies.make(1000, RECIPIENTS)
        sustained_bodies = bodies.make(int(args.seconds * 1200), RECIPIENTS)
        latency_bodies = bodies.make(int(args.seconds * args.rate), RECIPIENTS)
        push_bodies = bodies.make(int(args.seconds * args.sse_rate), RECIPIENTS)

        print("warm-up, then sustained load ...", flush=True)
        asyncio.run(closed_loop(port, warm, args.concurrency, 3))
        server0, client0, wall0 = cpu_seconds(proc.pid), time.process_time(), time.perf_counter()
        sustained_latencies: list[float] = []
        rate, ok, failed = asyncio.run(
            closed_loop(port, sustained_bodies, args.concurrency, args.seconds, sustained_latencies)
        )
        server_cpu, client_cpu = cpu_seconds(proc.pid) - server0, time.process_time() - client0
        wall = time.perf_counter() - wall0
        half = max(rate / 2, 1.0)
        print(f"latency at {half:.0f}/s offered (half the sustained rate) ...", flush=True)
        half_latencies, _, half_achieved = asyncio.run(
            open_loop(port, bodies.make(int(half * args.seconds / 2), RECIPIENTS), half, args.seconds / 2)
        )
        print(f"latency at {args.rate:.0f}/s offered ...", flush=True)
        latencies, lat_failed, achieved = asyncio.run(open_loop(port, latency_bodies, args.rate, args.seconds))
        print(f"push latency at {args.sse_rate:.0f}/s ...", flush=True)
        from_decision, from_answer, arrived_at, push_latencies, missing = asyncio.run(
            push_latency(port, tokens["KOR"], push_bodies, args.sse_rate, args.seconds)
        )
        from_commit = from_ledger(port, tokens["auditor"], arrived_at)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    normal_run = durability_run(folder / "normal", args, half)
    full_run = Durability(rate, sustained_latencies, half_latencies, half_achieved, ok, failed)

    p50, p99 = pct(latencies, 0.50), pct(latencies, 0.99)
    c50, c99 = pct(from_commit, 0.50), pct(from_commit, 0.99)
    s50, s99 = pct(from_decision, 0.50), pct(from_decision, 0.99)
    a50, a99 = pct(from_answer, 0.50), pct(from_answer, 0.99)
    rows = [
        (
            "sustained submissions (1 KB, 3 recipients)",
            f"{rate:,.0f} reports/s",
            f">= {GOAL_RATE:,.0f}",
            verdict(rate >= GOAL_RATE),
        ),
        (
            f"latency at {args.rate:,.0f}/s offered ({achieved:,.0f}/s achieved)",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
            f"p99 <= {GOAL_P99_MS:.0f} ms",
            verdict(p99 <= GOAL_P99_MS),
        ),
        (
            f"latency at {half:,.0f}/s offered ({half_achieved:,.0f}/s achieved)",
            f"p50 {pct(half_latencies, 0.5):.1f} ms, p99 {pct(half_latencies, 0.99):.1f} ms",
            "(context: half the sustained rate)",
            "",
        ),
        (
            f"push: commit -> event at {args.sse_rate:.0f}/s (from the ledger entry)",
            f"p50 {c50:.1f} ms, p99 {c99:.1f} ms",
            f"p99 <= {GOAL_SSE_P99_MS:.0f} ms",
            verdict(c99 <= GOAL_SSE_P99_MS),
        ),
        (
            f"latency at {args.sse_rate:.0f}/s offered (push phase)",
            f"p50 {pct(push_latencies, 0.5):.1f} ms, p99 {pct(push_latencies, 0.99):.1f} ms",
            "(context)",
            "",
        ),
        ("push: decision -> event (same events)", f"p50 {s50:.1f} ms, p99 {s99:.1f} ms", "(context)", ""),
        ("push: answer -> event (same events)", f"p50 {a50:.1f} ms, p99 {a99:.1f} ms", "(context)", ""),
        (
            "server CPU in the sustained phase",
            f"{1000 * server_cpu / max(ok, 1):.2f} ms/report",
            f"({server_cpu / wall:.2f} cores busy)",
            "",
        ),
        ("load generator CPU in the sustained phase", f"{client_cpu / wall:.2f} cores", "(context)", ""),
        (
            "machine: single-row commits, WAL FULL (a sync each; server default)",
            f"{full:,.0f} commits/s",
            "(ceiling)",
            "",
        ),
        ("machine: single-row commits, WAL NORMAL", f"{normal:,.0f} commits/s", "(ceiling)", ""),
        (
            "machine: per-recipient HPKE wraps (X25519)",
            f"{wraps:,.0f} wraps/s",
            f"= {wraps / 3:,.0f} reports/s of wraps",
            "",
        ),
    ]
    width, value_width, goal_width = (max(len(r[i]) for r in rows) for i in range(3))
    print()
    for name, value, goal, v in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  {goal:<{goal_width}}  {v}")
    print()
    print(
        f"sustained: {ok:,} accepted, {failed} refused; latency phase: {len(latencies):,} sent, {lat_failed} refused; "
        f"push phase: {len(from_decision):,} events, {missing} missing"
    )
    print_durability(full_run, normal_run, args.concurrency, half)
    if args.keep:
        print(f"data in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
