"""End-to-end exchange benchmark through HTTP: one and two workers, SQLite and PostgreSQL.

Run: ``.venv/bin/python bench/exchange.py [--seconds 8] [--stores sqlite,postgresql] [--workers 1,2]``

For each store (SQLite with the default settings: WAL, ``synchronous=FULL``; PostgreSQL in a
throwaway cluster that this bench starts with ``initdb``/``pg_ctl`` in a temporary folder, with
``fsync`` and ``synchronous_commit`` on as in production, and removes afterwards) and each number
of workers (``gsomia serve --workers N``), on a fresh database with the bundled scenario,
principals and registered keys, it measures from a separate process, with reports of 1 KB to
3 recipients (KOR, USA, AUS) signed by JPN beforehand:

1. sustained reports/s, one report per request (closed loop, ``--concurrency`` in flight), and
   the server's CPU per report (every gsomia process, and PostgreSQL's, from ``/proc``);
2. sustained reports/s in batches of ``--batch`` reports per request (``POST /api/v1/report-batches``,
   ``--batch-concurrency`` batches in flight), and CPU per report;
3. latency p50/p99 at 1,000 reports/s offered, one report per request (open loop: each request
   is timed from its scheduled send time, so queueing is counted), and at half the sustained rate;
4. push latency of the inbox event stream at 200 tracks/s: from the delivery's ledger entry
   (``recorded_at``, written inside the transaction, just before its commit) to the event's
   arrival: commit → event. With one worker the stream is on the process that commits; with
   two, on ANOTHER ``gsomia serve`` process over the same database (as on another host), so the
   wake-up crosses processes (PostgreSQL ``LISTEN/NOTIFY``; on SQLite the stream's re-read);
5. where the server's CPU goes: ``py-spy record`` of every gsomia process during a batched load,
   summed by the function on top of the stack (self time) and by component;
6. the machine's limits in the same run: per-recipient HPKE wraps/s (X25519, the classic profile)
   on one core, and single-row commits/s of SQLite in WAL mode (``FULL`` and ``NORMAL``).

The figures that compare across machines are ratios to the same run's ceiling: reports/s ÷
(HPKE wraps/s ÷ 3), since each report is wrapped for 3 recipients, and 2 workers ÷ 1 worker on
the same store. Each is printed with its goal and MET / NOT MET.

Then (unless ``--no-durability``) the cost of durability on SQLite: a fresh one-worker server with
``GSOMIA_SQLITE_SYNCHRONOUS=NORMAL`` (which may lose the latest commits on power loss) takes the
same sustained load and offered rate as the default (``FULL``: the WAL is synced at every commit).

The client is a minimal asyncio HTTP/1.1 client in this process, separate from the servers', so
that the load generator costs little of the cores it shares with them (its CPU is printed).
Takes about five minutes with the defaults. Speed is measured here, never asserted in the test suite.
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
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import rfc8785

from gsomia.bootstrap import Settings, build
from gsomia.crypto import PartyKeys, delivery_info, new_content_key, sign, wrap_key
from gsomia.services.exchange.access import Role

GOAL_BATCHED_RATIO = 0.60
GOAL_SINGLE_RATIO = 0.30
GOAL_SCALING = 1.7
GOAL_P99_MS = 50.0
GOAL_SSE_P99_MS = 20.0
RECIPIENTS = ["KOR", "USA", "AUS"]
PARTIES = ["JPN", *RECIPIENTS]
STORE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
GRACE_S = 5.0


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


def wraps_per_s(seconds: float) -> tuple[float, float]:
    """Per-recipient HPKE wraps of a content key (classic: X25519, HKDF-SHA256, AES-256-GCM) per
    second of wall time, and per second of this process's CPU time (what one core does when the
    machine is shared)."""
    public = PartyKeys.generate("KOR").public_keys()
    key = new_content_key()
    info = delivery_info("d-0123456789abcdef0123", "KOR")
    n = 0
    start, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            wrap_key(public, key, info)
        n += 100
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


# --- processes -----------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc``)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            out.extend(process_tree(int(child)))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants, living or reaped
    (Linux ``/proc``: utime, stime, and cutime, cstime of the children each has waited for,
    such as PostgreSQL's backends of closed connections)."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def worker_cpu(pid: int) -> dict[int, float]:
    """Each process's own CPU seconds (user + system) under ``pid``, the serving supervisor
    left out (with one worker, ``pid`` itself serves)."""
    tree = process_tree(pid)
    out: dict[int, float] = {}
    for p in tree[1:] or tree:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[p] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def busiest_share(before: dict[int, float], after: dict[int, float]) -> float:
    """The busiest worker's share of the workers' CPU between two :func:`worker_cpu` readings:
    1 / workers when the load is spread evenly, 1.00 when one worker served it all."""
    spent = [after[p] - before.get(p, 0.0) for p in after]
    return max(spent) / sum(spent) if spent and sum(spent) > 0 else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if not candidates:
        raise SystemExit(f"PostgreSQL's {name} not found: install PostgreSQL (scripts/system-packages.sh)")
    return str(candidates[0])


class PgCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 in a temporary folder (initdb, pg_ctl), with
    production's durability (``fsync``, ``synchronous_commit`` on); one database per measurement."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="gsomia-bench-pg-"))
        self.data = self.base / "data"
        self._prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as 'postgres'
            shutil.chown(self.base, "postgres", "postgres")
            self._prefix = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c max_connections=200"
        initdb = [pg_bin("initdb"), "-D", str(self.data), "-U", "gsomia", "--auth=trust", "-E", "UTF8"]
        subprocess.run([*self._prefix, *initdb, "--locale=C.UTF-8"], check=True, capture_output=True)  # noqa: S603
        log = str(self.base / "server.log")
        start = [pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", log, "-w", "-t", "60", "start"]
        subprocess.run([*self._prefix, *start], check=True, capture_output=True)  # noqa: S603
        self.count = 0

    def database(self) -> str:
        """A new empty database's URL."""
        import psycopg

        self.count += 1
        name = f"bench_{self.count}"
        with psycopg.connect(f"postgresql://gsomia@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://gsomia@127.0.0.1:{self.port}/{name}"

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def destroy(self) -> None:
        stop = [pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        subprocess.run([*self._prefix, *stop], check=False, capture_output=True)  # noqa: S603
        shutil.rmtree(self.base, ignore_errors=True)


def setup(folder: Path, db: str) -> tuple[dict[str, str], dict[str, PartyKeys]]:
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
    return tokens, keys


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def start_server(db: str, folder: Path, name: str, workers: int = 1, synchronous: str = "FULL") -> Server:
    port = free_port()
    env = {
        **os.environ,
        "GSOMIA_DB": db,
        "GSOMIA_DATA_DIR": str(folder),
        "GSOMIA_SQLITE_SYNCHRONOUS": synchronous,
        "GSOMIA_WORKERS": str(workers),
    }
    log_path = folder / f"server-{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "gsomia", "serve", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                # on PostgreSQL, ready means listening for the other processes' commits too
                if health.status_code == 200 and health.json().get("listening") is not False:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # readiness poll interval
    except BaseException:
        server.stop()
        raise
    server.stop()
    raise SystemExit(f"the server did not start or exited; see {log_path}")


# --- load -------------------------------------------------------------------------------------------


class Bodies:
    """Pre-signed submissions as raw HTTP/1.1 requests (signing is the client's cost, not the exchange's)."""

    def __init__(self, token: str, keys: PartyKeys, prefix: str) -> None:
        self.token = token
        self.keys = keys
        self.prefix = prefix
        self.n = 0

    def _signed(self, recipients: list[str]) -> bytes:
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
        return json.dumps({"report": report, "signature": signature, "key": self.keys.fingerprint()}).encode()

    def _request(self, path: str, body: bytes) -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer ".encode()
            + self.token.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )

    def make(self, count: int, recipients: list[str]) -> list[bytes]:
        """``count`` requests of one report each (``POST /api/v1/reports``)."""
        return [self._request("/api/v1/reports", self._signed(recipients)) for _ in range(count)]

    def batches(self, count: int, size: int, recipients: list[str]) -> list[bytes]:
        """``count`` requests of ``size`` reports each (``POST /api/v1/report-batches``)."""
        out = []
        for _ in range(count):
            body = b'{"reports":[' + b",".join(self._signed(recipients) for _ in range(size)) + b"]}"
            out.append(self._request("/api/v1/report-batches", body))
        return out


class Conn:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
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


def batch_counts(status: int, body: bytes) -> tuple[int, int]:
    """Reports accepted and refused in a batch's answer (its ``counts``, at the end of the body)."""
    if status != 200:
        return 0, 1
    counts = json.loads(body[body.rindex(b'"counts":') + 9 : -1])
    return counts["stored"] + counts["already_stored"], counts["refused"]


async def closed_loop(
    port: int,
    requests: list[bytes],
    concurrency: int,
    seconds: float,
    latencies: list[float] | None = None,
    batched: bool = False,
) -> tuple[float, int, int]:
    """Keep ``concurrency`` requests in flight for ``seconds``; reports/s, reports accepted,
    reports refused (and each request's latency in ``latencies``, if given)."""
    conns = [await Conn.open(port) for _ in range(concurrency)]
    it = iter(requests)
    ok = failed = 0
    stop = time.perf_counter() + seconds
    start = time.perf_counter()
    ran_out = False

    async def run(c: Conn) -> None:
        nonlocal ok, failed, ran_out
        while time.perf_counter() < stop:
            raw = next(it, None)
            if raw is None:
                ran_out = True  # the rate is then counted over the whole phase: an underestimate
                return
            sent = time.perf_counter()
            status, body = await c.request(raw)
            if latencies is not None:
                latencies.append(time.perf_counter() - sent)
            if batched:
                good, bad = batch_counts(status, body)
                ok, failed = ok + good, failed + bad
            elif 200 <= status < 300:
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    if ran_out and latencies is not None:  # the warm-up's requests are meant to run out
        print(f"  (the {len(requests):,} pre-signed requests ran out after {elapsed:.1f} s)", flush=True)
    return ok / elapsed, ok, failed


async def open_loop(
    port: int, requests: list[bytes], rate: float, seconds: float, on_answer: Callable[[int, bytes], None] | None = None
) -> tuple[list[float], int, float]:
    """Send at ``rate``/s on a pool of connections; latency from each request's scheduled time.

    A server slower than the offered rate would take minutes to work through the queue: a
    request not yet sent ``GRACE_S`` after the phase's last scheduled send is not sent, and its
    latency counts as infinite (so a p99 of ``inf`` means more than 1 % went unanswered)."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(256):
        pool.put_nowait(await Conn.open(port))
    latencies: list[float] = []
    failed = answered = 0
    n = min(len(requests), int(rate * seconds))
    interval = 1.0 / rate
    start = time.perf_counter() + 0.05
    deadline = start + seconds + GRACE_S

    async def one(i: int, raw: bytes) -> None:
        nonlocal failed, answered
        scheduled = start + i * interval
        conn = await pool.get()
        if time.perf_counter() > deadline:
            pool.put_nowait(conn)
            latencies.append(float("inf"))
            return
        status, body = await conn.request(raw)
        done = time.perf_counter()
        pool.put_nowait(conn)
        latencies.append(done - scheduled)
        answered += 1
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
    achieved = answered / (time.perf_counter() - start)
    while not pool.empty():
        pool.get_nowait().close()
    return latencies, failed, achieved


async def push_latency(
    submit_port: int, stream_port: int, token: str, requests: list[bytes], rate: float, seconds: float
) -> tuple[list[float], list[float], dict[int, float], list[float], int]:
    """Open KOR's event stream on ``stream_port``, submit to ``submit_port`` at ``rate``; per
    event: decision→arrival and answer→arrival."""
    reader, writer = await asyncio.open_connection("127.0.0.1", stream_port)
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
    await asyncio.sleep(0.2)  # the stream's first read is under way before the first commit
    latencies, _failed, _achieved = await open_loop(submit_port, requests, rate, seconds, on_answer)
    expected = len(answered)  # requests the open loop did not send cannot have an event
    if len(arrivals) < expected:
        try:
            await asyncio.wait_for(events, timeout=15)
        except TimeoutError:
            events.cancel()
    else:
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


# --- where the CPU goes (py-spy) -----------------------------------------------------------------

COMPONENTS = [
    ("crypto (HPKE, AES-GCM, signatures)", ("/cryptography/", "/gsomia/crypto/", "/nacl/")),
    ("database (SQLAlchemy, driver, storage)", ("/sqlalchemy/", "/psycopg", "/gsomia/storage/", "/alembic/")),
    ("canonical JSON (RFC 8785)", ("/rfc8785/",)),
    ("validation (pydantic)", ("/pydantic/", "/pydantic_core/")),
    ("HTTP (uvicorn, Starlette, FastAPI)", ("/uvicorn/", "/starlette/", "/fastapi/", "/anyio/", "/gsomia/api/")),
    ("decisions and ledger (pure core)", ("/gsomia/domain/", "/gsomia/ledger/")),
    ("exchange services", ("/gsomia/services/",)),
]


def _stdlib(frame: str) -> bool:
    return "site-packages" not in frame and "/gsomia/" not in frame


def component(stack: list[str]) -> str:
    """The component of the innermost frame outside the standard library (json, threading, …
    count for whoever called them)."""
    for frame in reversed(stack):
        if _stdlib(frame):
            continue
        for name, needles in COMPONENTS:
            if any(n in frame for n in needles):
                return name
        return "other"
    return "standard library (outside a component)"


def short(frame: str) -> str:
    """``func (path/to/module.py:line)`` → ``func (package/module.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[1]
            break
    return f"{name} ({path})"


@dataclass(frozen=True)
class Profile:
    samples: int
    top: list[tuple[str, int]]
    components: list[tuple[str, int]]


def profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` of ``pid`` and its subprocesses for ``seconds`` (raw stacks)."""
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy not found: make install-dev")
    command = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--full-filenames"]
    command += ["--duration", str(max(1, round(seconds))), "--format", "raw", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603


def read_profile(path: Path, top: int) -> Profile:
    """Self samples per function and per component from py-spy's raw (collapsed) stacks."""
    functions: Counter[str] = Counter()
    components: Counter[str] = Counter()
    total = 0
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        stacks, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        # py-spy names each process first ("process 123:\"python -m …\""): frames follow
        stack = [f for f in stacks.split(";") if " (" in f and not f.startswith("process ")]
        if not stack:
            continue
        n = int(count)
        total += n
        functions[short(stack[-1])] += n
        components[component(stack)] += n
    return Profile(total, functions.most_common(top), components.most_common())


# --- one configuration ---------------------------------------------------------------------------


@dataclass
class Result:
    """What one store with one number of workers measured."""

    store: str
    workers: int
    single_rate: float = 0.0
    single_ok: int = 0
    single_failed: int = 0
    single_cpu_ms: float = 0.0
    single_db_cpu_ms: float = float("nan")
    single_cores: float = 0.0
    single_latency: list[float] = field(default_factory=list)
    batched_rate: float = 0.0
    batched_ok: int = 0
    batched_failed: int = 0
    batched_cpu_ms: float = 0.0
    batched_db_cpu_ms: float = float("nan")
    batched_cores: float = 0.0
    single_busiest: float = float("nan")
    batched_busiest: float = float("nan")
    client_cores: float = 0.0
    offered: list[float] = field(default_factory=list)
    offered_achieved: float = 0.0
    offered_failed: int = 0
    half: list[float] = field(default_factory=list)
    half_rate: float = 0.0
    half_achieved: float = 0.0
    push_commit: list[float] = field(default_factory=list)
    push_decision: list[float] = field(default_factory=list)
    push_answer: list[float] = field(default_factory=list)
    push_missing: int = 0
    push_other_process: bool = False
    profile: Profile | None = None


def measure(
    store: str, workers: int, folder: Path, db: str, args: argparse.Namespace, db_pid: Callable[[], int] | None
) -> Result:
    """Every phase on a fresh database served by ``gsomia serve --workers N``."""
    label = f"{STORE_NAMES[store]}, {workers} worker{'s' if workers > 1 else ''}"
    print(f"{label}: setting up a fresh database, signing the submissions ...", flush=True)
    folder.mkdir()
    tokens, keys = setup(folder, db)
    bodies = Bodies(tokens["JPN"], keys["JPN"], f"bench-{store}-{workers}")
    seconds = args.seconds
    warm = bodies.make(500, RECIPIENTS)
    warm_batches = bodies.batches(4, args.batch, RECIPIENTS)
    offered = bodies.make(int(seconds * args.rate), RECIPIENTS)
    push = bodies.make(int(seconds * args.sse_rate), RECIPIENTS)
    result = Result(store, workers)
    server: Server | None = None
    try:
        server = start_server(db, folder, f"{store}-{workers}", workers)
        print(f"{label}: warm-up, sustained load (one report per request, then batches of {args.batch}) ...")
        warm_rate = asyncio.run(closed_loop(server.port, warm, args.concurrency, 2))[0]
        warm_batched = asyncio.run(closed_loop(server.port, warm_batches, 2, 2, batched=True))[0]
        # enough pre-signed reports for this machine: a few times the warm-up's rates (a batch
        # is cheaper per report than a request of one: its warm-up, of 4 batches, starts cold)
        single = bodies.make(int(seconds * max(warm_rate, 100) * 3), RECIPIENTS)
        batched_count = int(seconds * max(4 * warm_batched, 6 * warm_rate, 500) / args.batch) + 1
        batched = bodies.batches(batched_count, args.batch, RECIPIENTS)
        profiled = bodies.batches(batched_count // 2 + 1, args.batch, RECIPIENTS)

        shares: list[float] = []  # the busiest worker's share of each sustained phase

        def sustained(
            requests: list[bytes], concurrency: int, is_batched: bool
        ) -> tuple[float, int, int, float, float, float, float, list[float]]:
            lat: list[float] = []
            w0s = worker_cpu(server.proc.pid)
            s0, d0 = cpu_seconds(server.proc.pid), cpu_seconds(db_pid()) if db_pid else float("nan")
            c0, w0 = time.process_time(), time.perf_counter()
            rate, ok, failed = asyncio.run(closed_loop(server.port, requests, concurrency, seconds, lat, is_batched))
            wall = time.perf_counter() - w0
            s1, d1 = cpu_seconds(server.proc.pid), cpu_seconds(db_pid()) if db_pid else float("nan")
            shares.append(busiest_share(w0s, worker_cpu(server.proc.pid)))
            per = 1000 / max(ok, 1)
            return (
                rate,
                ok,
                failed,
                (s1 - s0) * per,
                (d1 - d0) * per,
                (s1 - s0) / wall,
                (time.process_time() - c0) / wall,
                lat,
            )

        r = sustained(single, args.concurrency, False)
        result.single_rate, result.single_ok, result.single_failed = r[0], r[1], r[2]
        result.single_cpu_ms, result.single_db_cpu_ms, result.single_cores, _, result.single_latency = r[3:]
        r = sustained(batched, args.batch_concurrency, True)
        result.batched_rate, result.batched_ok, result.batched_failed = r[0], r[1], r[2]
        result.batched_cpu_ms, result.batched_db_cpu_ms, result.batched_cores, result.client_cores, _ = r[3:]
        result.single_busiest, result.batched_busiest = shares

        result.half_rate = max(result.single_rate / 2, 1.0)
        print(f"{label}: latency at {result.half_rate:,.0f}/s and {args.rate:,.0f}/s offered ...", flush=True)
        half = bodies.make(int(result.half_rate * seconds / 2), RECIPIENTS)
        result.half, _, result.half_achieved = asyncio.run(open_loop(server.port, half, result.half_rate, seconds / 2))
        result.offered, result.offered_failed, result.offered_achieved = asyncio.run(
            open_loop(server.port, offered, args.rate, seconds)
        )

        push_phase(result, server, db, folder, tokens, push, args)
        if args.profile:
            print(f"{label}: where the CPU goes (py-spy, batched load) ...", flush=True)
            result.profile = profile_phase(server, profiled, folder, args)
    finally:
        if server is not None:
            server.stop()
    return result


def push_phase(
    result: Result,
    server: Server,
    db: str,
    folder: Path,
    tokens: dict[str, str],
    push: list[bytes],
    args: argparse.Namespace,
) -> None:
    """Push latency at ``--sse-rate``: with several workers, the stream on another process."""
    other: Server | None = None
    try:
        stream_port = server.port
        if result.workers > 1:
            # the stream on another process over the same database, as on another host
            other = start_server(db, folder, f"{result.store}-{result.workers}-stream", 1)
            stream_port = other.port
            result.push_other_process = True
        where = "another process" if result.push_other_process else "the same process"
        label = f"{STORE_NAMES[result.store]}, {result.workers} worker{'s' if result.workers > 1 else ''}"
        print(f"{label}: push latency at {args.sse_rate:,.0f}/s, the stream on {where} ...", flush=True)
        result.push_decision, result.push_answer, arrived_at, _, result.push_missing = asyncio.run(
            push_latency(server.port, stream_port, tokens["KOR"], push, args.sse_rate, args.seconds)
        )
        result.push_commit = from_ledger(server.port, tokens["auditor"], arrived_at)
    finally:
        if other is not None:
            other.stop()


def profile_phase(server: Server, profiled: list[bytes], folder: Path, args: argparse.Namespace) -> Profile:
    """py-spy over every gsomia process while batches keep the server busy."""
    out = folder / "py-spy.txt"
    spy = profile(server.proc.pid, args.seconds / 2, out)
    time.sleep(0.5)  # py-spy attaches to every process before the load starts
    asyncio.run(closed_loop(server.port, profiled, args.batch_concurrency, args.seconds / 2, batched=True))
    spy.wait(timeout=60)
    return read_profile(out, args.top)


# --- durability (SQLite FULL / NORMAL) -----------------------------------------------------------


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
    """The sustained phase and the latency at ``offered``/s on a fresh one-worker SQLite server
    with ``synchronous=NORMAL``, as measured on the default server."""
    print("durability: the same load on a fresh SQLite server with synchronous=NORMAL ...", flush=True)
    folder.mkdir()
    db = f"sqlite:///{folder / 'gsomia.db'}"
    tokens, keys = setup(folder, db)
    server = start_server(db, folder, "normal", 1, "NORMAL")
    try:
        bodies = Bodies(tokens["JPN"], keys["JPN"], "bench-normal")
        warm = bodies.make(500, RECIPIENTS)
        sustained_bodies = bodies.make(int(args.seconds * 1500), RECIPIENTS)
        offered_bodies = bodies.make(int(offered * args.seconds / 2), RECIPIENTS)
        asyncio.run(closed_loop(server.port, warm, args.concurrency, 2))
        sustained: list[float] = []
        rate, ok, failed = asyncio.run(
            closed_loop(server.port, sustained_bodies, args.concurrency, args.seconds, sustained)
        )
        at_offered, _, achieved = asyncio.run(open_loop(server.port, offered_bodies, offered, args.seconds / 2))
    finally:
        server.stop()
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
    print("against NORMAL (may lose the latest commits on power loss), one worker, same load, fresh servers:")
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())
    print(
        f"refused: FULL {full.failed} of {full.ok + full.failed:,}, NORMAL {normal.failed} of "
        f"{normal.ok + normal.failed:,} in the sustained phase"
    )


# --- the report ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile in ms; infinite when requests past it went unsent (see :func:`open_loop`)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def lat(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5):.1f} ms, p99 {pct(values, 0.99):.1f} ms"


def goal_rows(results: list[Result], ceiling: float, args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """The issue's table: each figure with its goal and verdict, per store and workers."""
    rows: list[tuple[str, str, str, str]] = []
    for r in results:
        label = f"{STORE_NAMES[r.store]}, {r.workers}w"
        batched, single = r.batched_rate / ceiling, r.single_rate / ceiling
        c99, o99 = pct(r.push_commit, 0.99), pct(r.offered, 0.99)
        where = "other process" if r.push_other_process else "same process"
        rows += [
            (
                f"{label}: batched ({args.batch}/request) reports/s ÷ (wraps/s ÷ 3)",
                f"{batched:.2f} ({r.batched_rate:,.0f}/s)",
                f">= {GOAL_BATCHED_RATIO:.2f}",
                verdict(batched >= GOAL_BATCHED_RATIO),
            ),
            (
                f"{label}: one report per request, same ratio",
                f"{single:.2f} ({r.single_rate:,.0f}/s)",
                f">= {GOAL_SINGLE_RATIO:.2f}",
                verdict(single >= GOAL_SINGLE_RATIO),
            ),
            (
                f"{label}: p99 at {args.rate:,.0f}/s offered ({r.offered_achieved:,.0f}/s sent)",
                f"{o99:,.1f} ms (p50 {pct(r.offered, 0.5):,.1f})"
                + (f", {unsent:,} of {len(r.offered):,} unsent" if (unsent := r.offered.count(float("inf"))) else ""),
                f"<= {GOAL_P99_MS:.0f} ms",
                verdict(o99 <= GOAL_P99_MS and r.offered_failed == 0),
            ),
            (
                f"{label}: push p99 commit -> event, {args.sse_rate:.0f}/s, stream on {where}",
                f"{c99:,.1f} ms (p50 {pct(r.push_commit, 0.5):,.1f})"
                + (f", {r.push_missing} missing" if r.push_missing else ""),
                f"<= {GOAL_SSE_P99_MS:.0f} ms",
                verdict(c99 <= GOAL_SSE_P99_MS and r.push_missing == 0),
            ),
            (
                f"{label}: server CPU per report, one per request / batched",
                f"{r.single_cpu_ms:.2f} / {r.batched_cpu_ms:.2f} ms",
                "report it"
                + (
                    f" (+ PostgreSQL {r.single_db_cpu_ms:.2f} / {r.batched_db_cpu_ms:.2f} ms)"
                    if r.store == "postgresql"
                    else ""
                ),
                "",
            ),
        ]
    for store, name in STORE_NAMES.items():
        by_workers = {r.workers: r for r in results if r.store == store}
        if 1 in by_workers and 2 in by_workers:
            one, two = by_workers[1], by_workers[2]
            rows += [
                (
                    f"{name}: 2 workers ÷ 1 worker, batched",
                    f"{two.batched_rate / one.batched_rate:.2f}×",
                    f">= {GOAL_SCALING:.1f}×",
                    verdict(two.batched_rate / one.batched_rate >= GOAL_SCALING),
                ),
                (
                    f"{name}: 2 workers ÷ 1 worker, one report per request",
                    f"{two.single_rate / one.single_rate:.2f}×",
                    f">= {GOAL_SCALING:.1f}×",
                    verdict(two.single_rate / one.single_rate >= GOAL_SCALING),
                ),
            ]
    return rows


def context_rows(results: list[Result], args: argparse.Namespace, wraps_cpu: float) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    wrap_ms = 3000 / wraps_cpu
    cores = os.cpu_count() or 1
    for r in results:
        label = f"{STORE_NAMES[r.store]}, {r.workers}w"
        server_ms = r.batched_cpu_ms + (r.batched_db_cpu_ms if r.store == "postgresql" else 0.0)
        rows += [
            (
                f"{label}: by CPU time, batched: 3 wraps' CPU ÷ CPU per report (gsomia + database)",
                f"{wrap_ms / server_ms:.2f} per core",
                f"{cores} cores busy would give {cores * wrap_ms / server_ms:.2f} of the ceiling",
            ),
            (
                f"{label}: latency of the sustained one-per-request phase ({args.concurrency} in flight)",
                lat(r.single_latency),
                "",
            ),
            (
                f"{label}: latency at {r.half_rate:,.0f}/s offered (half the sustained; {r.half_achieved:,.0f}/s sent)",
                lat(r.half),
                "",
            ),
            (
                f"{label}: push decision -> event / answer -> event (same events)",
                f"p99 {pct(r.push_decision, 0.99):,.1f} / {pct(r.push_answer, 0.99):,.1f} ms",
                "",
            ),
            (
                f"{label}: cores busy (server), one per request / batched; load generator",
                f"{r.single_cores:.2f} / {r.batched_cores:.2f}; {r.client_cores:.2f}",
                f"refused: {r.single_failed} / {r.batched_failed}",
            ),
            (
                f"{label}: busiest worker's share of the workers' CPU, one per request / batched",
                f"{r.single_busiest:.2f} / {r.batched_busiest:.2f}",
                f"even: {1 / r.workers:.2f}; 1.00: every connection on one worker (docs/deploy.md)",
            ),
        ]
    return rows


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(row, widths, strict=True)).rstrip())


def print_profiles(results: list[Result]) -> None:
    for r in results:
        if r.profile is None or r.profile.samples == 0:
            continue
        p = r.profile
        print()
        print(
            f"where the CPU goes, {STORE_NAMES[r.store]}, {r.workers} worker(s), batched load "
            f"(py-spy, {p.samples:,} samples of the gsomia processes; % of samples):"
        )
        print("  by component: " + "; ".join(f"{name} {100 * n / p.samples:.0f}%" for name, n in p.components))
        print("  top functions (self):")
        for name, n in p.top:
            print(f"    {100 * n / p.samples:5.1f}%  {name}")


def parse_list(text: str, allowed: set[str]) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    wrong = [t for t in items if t not in allowed]
    if wrong or not items:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(sorted(allowed))}")
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each load phase")
    ap.add_argument(
        "--stores",
        type=lambda t: parse_list(t, set(STORE_NAMES)),
        default=["sqlite", "postgresql"],
        help="comma-separated: sqlite,postgresql",
    )
    ap.add_argument(
        "--workers",
        type=lambda t: [int(w) for w in parse_list(t, {"1", "2", "3", "4"})],
        default=[1, 2],
        help="comma-separated worker counts, e.g. 1,2",
    )
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight, one report per request")
    ap.add_argument("--batch", type=int, default=100, help="reports per batch request (at most 1,000)")
    ap.add_argument("--batch-concurrency", type=int, default=4, help="batch requests in flight")
    ap.add_argument("--rate", type=float, default=1000.0, help="offered rate for the latency phase")
    ap.add_argument("--sse-rate", type=float, default=200.0, help="offered rate for the push phase")
    ap.add_argument("--top", type=int, default=12, help="functions listed per py-spy profile")
    ap.add_argument("--no-profile", dest="profile", action="store_false", help="skip the py-spy phase")
    ap.add_argument(
        "--no-durability", dest="durability", action="store_false", help="skip SQLite's FULL / NORMAL comparison"
    )
    ap.add_argument("--keep", action="store_true", help="keep the databases and logs (default: removed)")
    ap.add_argument("--json", type=Path, metavar="FILE", help="also write the goals' and context rows to FILE, as JSON")
    args = ap.parse_args()
    if not 1 <= args.batch <= 1000:
        ap.error("--batch must be between 1 and 1,000")

    # stopped by a signal, the servers, the cluster and the temporary folders go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    folder = Path(tempfile.mkdtemp(prefix="gsomia-bench-"))
    args.load_start = os.getloadavg()[0]
    print(
        f"gsomia exchange bench on {platform.node()} ({os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the start)"
    )
    print("machine limits ...", flush=True)
    normal = sqlite_commits_per_s(folder, "NORMAL", 3)
    full = sqlite_commits_per_s(folder, "FULL", 3)
    wraps, wraps_cpu = wraps_per_s(3)

    cluster: PgCluster | None = None
    results: list[Result] = []
    try:
        for store in args.stores:
            db_pid: Callable[[], int] | None = None
            if store == "postgresql":
                print("starting a throwaway PostgreSQL cluster (initdb, pg_ctl) ...", flush=True)
                cluster = PgCluster()
                db_pid = cluster.postmaster
            for workers in args.workers:
                sub = folder / f"{store}-{workers}"
                db = cluster.database() if store == "postgresql" and cluster else f"sqlite:///{sub / 'gsomia.db'}"
                results.append(measure(store, workers, sub, db, args, db_pid))
        durability: tuple[Durability, Durability, float] | None = None
        baseline = next((r for r in results if r.store == "sqlite" and r.workers == 1), None)
        if args.durability and baseline is not None:
            normal_run = durability_run(folder / "normal", args, baseline.half_rate)
            full_run = Durability(
                baseline.single_rate,
                baseline.single_latency,
                baseline.half,
                baseline.half_achieved,
                baseline.single_ok,
                baseline.single_failed,
            )
            durability = (full_run, normal_run, baseline.half_rate)
    finally:
        if cluster is not None:
            cluster.destroy()
        if args.keep:
            print(f"data in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    print_report(results, (wraps, wraps_cpu, full, normal), durability, args)
    if args.json is not None:
        write_json(args.json, results, (wraps, wraps_cpu), args)


def write_json(path: Path, results: list[Result], limits: tuple[float, float], args: argparse.Namespace) -> None:
    """The run's rows as JSON, for tables of several runs: ``goals`` (figure, value, goal,
    verdict), ``context`` (figure, value, note), the ceiling and the load average at the start
    and the end."""
    wraps, wraps_cpu = limits
    doc = {
        "wraps_per_s": wraps,
        "ceiling": wraps / 3,
        "load_average": [args.load_start, os.getloadavg()[0]],
        "goals": [list(row) for row in goal_rows(results, wraps / 3, args)],
        "context": [list(row) for row in context_rows(results, args, wraps_cpu)],
    }
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"rows written to {path}")


def print_report(
    results: list[Result],
    limits: tuple[float, float, float, float],
    durability: tuple[Durability, Durability, float] | None,
    args: argparse.Namespace,
) -> None:
    """The machine's limits, the goals' table, the context, the profiles and durability."""
    wraps, wraps_cpu, full, normal = limits
    ceiling = wraps / 3
    print()
    print(f"the machine's ceiling, this run: {wraps:,.0f} HPKE wraps/s on one core = {ceiling:,.0f} reports/s of wraps")
    print(
        f"(per second of CPU time: {wraps_cpu:,.0f} wraps, i.e. {3000 / wraps_cpu:.2f} ms of CPU per report's "
        "3 wraps; on a shared machine the wall-clock rate is lower)"
    )
    print(f"(SQLite single-row commits in WAL mode: {full:,.0f}/s with FULL, {normal:,.0f}/s with NORMAL)")
    print(f"reports of 1 KB to 3 recipients; {args.seconds:g} s per phase; load average now {os.getloadavg()[0]:.1f}")
    print()
    print_table(goal_rows(results, ceiling, args))
    print()
    print("context:")
    print_table(context_rows(results, args, wraps_cpu))
    print_profiles(results)
    if durability is not None:
        print_durability(durability[0], durability[1], args.concurrency, durability[2])


if __name__ == "__main__":
    main()
