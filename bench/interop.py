"""TAXII 2.1 and Cursor-on-Target through two live party nodes and the exchange, with medallion
(the OASIS TAXII 2.1 reference server, memory backend) measured beside them in the same run.

Run: ``.venv/bin/python bench/interop.py [--runs 3] [--inbox 1000000]``

Each run (a fresh exchange, JPN's and KOR's nodes, and a fresh medallion) measures:

1. TAXII ingest: envelopes of 100 objects (two topics under one national marking, so two
   reports each) POSTed to JPN's outbox by 4 clients at once; objects/s from the first POST to
   the last status ``complete`` (every report signed, decided, encrypted and ledgered by the
   exchange); medallion: the same envelopes to its collection. Goal: ≥ 3× medallion. Measured
   twice: with KOR's node receiving meanwhile on the same two cores, and with KOR's node paused
   (SIGSTOP; in any deployment it runs on KOR's own machine), after which every indicator must
   reach KOR's inbox.
2. One object per POST, 200 in a row: p50 of POST → ``complete``. Goal: ≤ ½ medallion's p50.
3. The first page of 100 from KOR's inbox holding ``--inbox`` objects (bulk-loaded into the
   node's encrypted store), p50 of 30 reads; medallion's first page of 100 after 2,500 objects
   (it keeps everything in one list). Goal: ≤ 50 ms.
4. CoT: 200 tracks/s for 10 s into JPN's node (TCP, XML); each track signed, submitted, decided,
   delivered to KOR, fetched, decrypted and verified by KOR's node and emitted as marked CoT to a
   local TAK listener; latency from the send to the arrival, p50/p99. Goal: p99 ≤ 100 ms.

Prints a table per run and the medians over runs, with MET / NOT MET. Speed is measured here,
never asserted in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.integration.medallion_support import Medallion

# The bench starts its exchange, nodes and medallion with the live tests' helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TAXII = "application/taxii+json;version=2.1"
KEEP = bool(os.environ.get("GSOMIA_BENCH_KEEP"))
ENVELOPES = 20
SINGLES = 200
COT_RATE = 200
COT_SECONDS = 10


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def indicator(marking: str, topic: str) -> dict[str, Any]:
    t = _now()
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{uuid.uuid4()}",
        "created": t,
        "modified": t,
        "name": "launch site activity",
        "description": "TEL movement near the launch site",
        "indicator_types": ["malicious-activity"],
        "pattern": "[ipv4-addr:value = '198.51.100.7']",
        "pattern_type": "stix",
        "valid_from": t,
        "object_marking_refs": [marking],
        "x_gsomia_topic": topic,
    }


def envelope(marking: dict[str, Any], n: int) -> dict[str, Any]:
    topics = ("dprk.missile.launch", "dprk.nuclear.test")
    return {"objects": [marking, *[indicator(marking["id"], topics[i % 2]) for i in range(n - 1)]]}


def post_until_complete(client: httpx.Client, url: str, status_url: str, body: dict[str, Any]) -> None:
    r = client.post(url, json=body, headers={"Accept": TAXII, "Content-Type": TAXII})
    assert r.status_code == 202, r.text
    status = r.json()
    while status["status"] != "complete":
        status = client.get(status_url + status["id"] + "/", headers={"Accept": TAXII}).json()
    # medallion reports a marking definition it already holds as a failure ("Unable to process
    # object"), where TAXII 2.1 §5.5 says an exact duplicate is no error: those are not counted.
    real = [f for f in status.get("failures", []) if not f["id"].startswith("marking-definition--")]
    assert not real, real[:2]


def ingest(url: str, status_url: str, auth: tuple[str, str], marking: dict[str, Any]) -> tuple[float, list[str]]:
    """Objects/s over ENVELOPES envelopes of 100, 4 clients at once, and the ids of the
    indicators sent."""
    bodies = [envelope(marking, 100) for _ in range(ENVELOPES)]
    with httpx.Client(auth=auth, timeout=120) as warm:
        post_until_complete(warm, url, status_url, envelope(marking, 100))
    clients = [httpx.Client(auth=auth, timeout=120) for _ in range(4)]
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: post_until_complete(clients[i % 4], url, status_url, bodies[i]), range(ENVELOPES)))
    elapsed = time.perf_counter() - start
    for c in clients:
        c.close()
    ids = [str(o["id"]) for b in bodies for o in b["objects"] if o["type"] == "indicator"]
    return ENVELOPES * 100 / elapsed, ids


def ingest_other_node_paused(
    url: str, status_url: str, auth: tuple[str, str], marking: dict[str, Any], kor: Any, inbox_url: str
) -> float:
    """:func:`ingest` with KOR's node stopped (SIGSTOP) while JPN's envelopes go in: in any
    deployment KOR's node runs on KOR's own machine, not on the two cores JPN's node and the
    exchange share here. The figure is still POST → status complete (signed, decided, encrypted,
    ledgered by the exchange). KOR's node is then let go on, and every indicator must reach its
    inbox: nothing is measured that was not delivered."""
    os.kill(kor.proc.pid, signal.SIGSTOP)
    try:
        rate, ids = ingest(url, status_url, auth, marking)
    finally:
        os.kill(kor.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 300
    missing = set(ids)
    with httpx.Client(auth=auth, timeout=60) as c:
        while missing and time.monotonic() < deadline:
            for start in range(0, len(ids), 100):
                chunk = [i for i in ids[start : start + 100] if i in missing]
                if not chunk:
                    continue
                r = c.get(inbox_url, params={"match[id]": ",".join(chunk)}, headers={"Accept": TAXII})
                if r.status_code == 200:
                    missing -= {o["id"] for o in r.json().get("objects", [])}
            if missing:
                time.sleep(0.5)
    assert not missing, f"{len(missing)} of {len(ids)} indicators never reached KOR's inbox"
    return rate


def singles(url: str, status_url: str, auth: tuple[str, str], marking: dict[str, Any]) -> list[float]:
    """Milliseconds of POST → complete, one object each."""
    out = []
    with httpx.Client(auth=auth, timeout=60) as c:
        post_until_complete(c, url, status_url, {"objects": [marking, indicator(marking["id"], "dprk.missile.launch")]})
        for _ in range(SINGLES):
            body = {"objects": [indicator(marking["id"], "dprk.missile.launch")]}
            t = time.perf_counter()
            post_until_complete(c, url, status_url, body)
            out.append((time.perf_counter() - t) * 1000)
    return out


def first_page(url: str, auth: tuple[str, str], times: int) -> list[float]:
    out = []
    with httpx.Client(auth=auth, timeout=600) as c:
        for _ in range(times):
            t = time.perf_counter()
            r = c.get(url, params={"limit": "100"}, headers={"Accept": TAXII})
            out.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, r.text[:300]
            assert len(r.json()["objects"]) == 100, r.text[:300]
    return out


def bulk_inbox(node_dir: Path, count: int) -> float:
    """Load ``count`` objects into a node's TAXII inbox, as deliveries would leave them."""
    from gsomia.node.config import NodeConfig, read_node_key
    from gsomia.node.store import NodeStore
    from gsomia.node.taxii.store import TaxiiStore

    config = NodeConfig.read(node_dir)
    store = NodeStore(config.db_path, read_node_key(config.key_path))
    taxii = TaxiiStore(store)
    start = time.perf_counter()
    # after every object the inbox holds already: a client that read up to them sees these too
    base = taxii.next_added("inbox", now=datetime.now(UTC))
    chunk = 20_000
    for first in range(0, count, chunk):
        rows = []
        for i in range(first, min(count, first + chunk)):
            sid = f"indicator--{uuid.UUID(int=i, version=4)}"
            version = "2019-11-22T00:58:00.000Z"
            body = (
                f'{{"type":"indicator","spec_version":"2.1","id":"{sid}","created":"{version}","modified":"{version}",'
                f'"name":"bulk {i}","pattern":"[ipv4-addr:value = \'198.51.100.7\']","pattern_type":"stix",'
                f'"valid_from":"2019-11-22T00:58:00Z","object_marking_refs":["marking-definition--{uuid.UUID(int=7, version=4)}"]}}'
            )
            rows.append((sid, "indicator", version, base + i, "dprk.missile.launch", body))
        taxii.bulk_load("inbox", rows)
    store.close()
    return time.perf_counter() - start


class Collector:
    """A local TAK listener: arrival time of each event, by uid."""

    def __init__(self) -> None:
        self.arrivals: queue.Queue[tuple[str, float]] = queue.Queue()
        collector = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                buffer = b""
                while data := self.request.recv(65536):
                    now = time.perf_counter()
                    buffer += data
                    while b"</event>" in buffer:
                        chunk, _, buffer = buffer.partition(b"</event>")
                        start = chunk.find(b' uid="') + 6
                        collector.arrivals.put((chunk[start : chunk.find(b'"', start)].decode(), now))

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def cot_event(uid: str) -> bytes:
    now = datetime.now(UTC)
    t = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stale = (now + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        f'<event version="2.0" uid="{uid}" type="a-h-A-M-B" how="m-r" time="{t}" start="{t}" stale="{stale}">'
        f'<point lat="39.04" lon="125.76" hae="950.0" ce="50.0" le="50.0"/><detail/></event>'
    ).encode()


def cot(port: int, collector: Collector) -> list[float]:
    """Milliseconds from each track's send at JPN's listener to its arrival from KOR's node."""
    total = COT_RATE * COT_SECONDS
    sent: dict[str, float] = {}
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.perf_counter()
        for i in range(total):
            due = start + i / COT_RATE
            while (lag := due - time.perf_counter()) > 0:
                time.sleep(min(lag, 0.002))  # pacing the offered load, not waiting for a result
            uid = f"bench-{i}"
            sent[uid] = time.perf_counter()
            s.sendall(cot_event(uid))
    latencies: list[float] = []
    deadline = time.perf_counter() + 120
    while len(latencies) < total and time.perf_counter() < deadline:
        try:
            uid, at = collector.arrivals.get(timeout=max(0.1, deadline - time.perf_counter()))
        except queue.Empty:
            break
        if uid in sent:
            latencies.append((at - sent[uid]) * 1000)
    return latencies


@contextmanager
def medallion_process(directory: Path, max_page: int) -> Iterator[Medallion]:
    """medallion in a process of its own (its ``medallion`` command: Flask, threaded), so that
    it shares no interpreter with the clients measuring it, as the nodes do not either."""
    from tests.integration.conftest import free_port
    from tests.integration.medallion_support import COLLECTION, Medallion, write_config

    config = write_config(directory, max_page)
    port = free_port()
    command = [str(Path(sys.executable).with_name("medallion")), "--port", str(port), str(config)]
    log = (directory / "medallion.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603 - our own venv's script
    try:
        deadline = time.monotonic() + 60
        while True:  # readiness poll: the port accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"medallion did not start: {(directory / 'medallion.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        yield Medallion(f"http://127.0.0.1:{port}", COLLECTION)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def one_run(inbox_size: int) -> dict[str, Any]:
    from gsomia.interop.stix import NationalMarking, national_marking_definition
    from tests.integration.conftest import free_port
    from tests.integration.exchange_support import start_exchange
    from tests.integration.medallion_support import PASSWORD as MED_PASSWORD
    from tests.integration.medallion_support import USER as MED_USER
    from tests.integration.node_support import PASSWORD, start_node

    marking = national_marking_definition(NationalMarking(party="JPN", level="極秘"))
    tmp = Path(tempfile.mkdtemp(prefix="gsomia-interop-bench-"))
    ex = start_exchange(tmp / "ex")
    collector = Collector()
    cot_port = free_port()
    out: dict[str, Any] = {}
    nodes = []
    try:
        jpn = start_node(
            ex,
            "JPN",
            tmp,
            {
                "taxii": {"recipients": ["KOR"]},
                "cot": {
                    "listen": [{"proto": "tcp", "host": "127.0.0.1", "port": cot_port}],
                    "rules": [
                        {
                            "type_prefix": "a-h-A-M",
                            "topic": "dprk.missile.launch",
                            "level": "極秘",
                            "recipients": ["KOR"],
                        }
                    ],
                },
            },
        )
        nodes.append(jpn)
        kor = start_node(
            ex,
            "KOR",
            tmp,
            {
                "cot": {
                    "outputs": [
                        {
                            "name": "ops",
                            "url": f"tcp://127.0.0.1:{collector.port}",
                            "cleared_to": "군사II급비밀",
                            "audience": ["KOR"],
                        }
                    ]
                }
            },
        )
        nodes.append(kor)
        auth = ("analyst", PASSWORD)
        with httpx.Client(auth=auth) as c:
            cols = c.get(jpn.taxii + "api/collections/", headers={"Accept": TAXII}).json()["collections"]
            outbox = next(x["id"] for x in cols if x["alias"] == "outbox")
            kcols = c.get(kor.taxii + "api/collections/", headers={"Accept": TAXII}).json()["collections"]
            inbox = next(x["id"] for x in kcols if x["alias"] == "inbox")
        ours_url = f"{jpn.taxii}api/collections/{outbox}/objects/"
        ours_status = f"{jpn.taxii}api/status/"

        progress(f"CoT: {COT_RATE * COT_SECONDS} tracks at {COT_RATE}/s")
        lat = cot(cot_port, collector)
        out["cot_received"] = len(lat)
        out["cot_p50_ms"], out["cot_p99_ms"] = pct(lat, 50), pct(lat, 99)

        with medallion_process(tmp, max_page=100) as med:
            med_auth = (MED_USER, MED_PASSWORD)
            med_status = med.url + "/api/status/"
            progress("TAXII ingest: the node, then medallion")
            out["ingest_ours"] = ingest(ours_url, ours_status, auth, marking)[0]
            out["ingest_medallion"] = ingest(med.objects, med_status, med_auth, marking)[0]
            progress("TAXII ingest with KOR's node paused, then every indicator in KOR's inbox")
            inbox_url = f"{kor.taxii}api/collections/{inbox}/objects/"
            out["ingest_paused"] = ingest_other_node_paused(ours_url, ours_status, auth, marking, kor, inbox_url)
            progress("one object per POST")
            ours_single = singles(ours_url, ours_status, auth, marking)
            med_single = singles(med.objects, med_status, med_auth, marking)
            out["single_p50_ours"], out["single_p50_medallion"] = pct(ours_single, 50), pct(med_single, 50)
            with httpx.Client(auth=med_auth, timeout=600) as c:
                # Held so far: 99 indicators per envelope of 100 (the warm-up's too), one marking
                # definition, and one indicator per single POST (the warm-up's too).
                have = 99 * (ENVELOPES + 1) + 1 + SINGLES + 1
                while have < 2500:
                    post_until_complete(c, med.objects, med_status, envelope(marking, 100))
                    have += 99
            progress(f"medallion first page at {have} objects")
            med_page = first_page(med.objects, med_auth, 3)
            out["page_medallion_ms"] = pct(med_page, 50)
            out["medallion_objects"] = have

        progress(f"loading {inbox_size:,} objects into the inbox")
        out["inbox_load_s"] = bulk_inbox(kor.dir, inbox_size)
        page = first_page(f"{kor.taxii}api/collections/{inbox}/objects/", auth, 30)
        out["page_ours_p50_ms"], out["page_ours_p99_ms"] = pct(page, 50), pct(page, 99)
        out["inbox_objects"] = inbox_size
    finally:
        for n in nodes:
            n.stop()
        ex.stop()
        if not KEEP:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


ROWS: list[tuple[str, Callable[[dict[str, Any]], str], Callable[[dict[str, Any]], bool]]] = [
    (
        "TAXII ingest, envelopes of 100 (objects/s)",
        lambda r: (
            f"{r['ingest_ours']:.0f} vs medallion {r['ingest_medallion']:.0f} ({r['ingest_ours'] / r['ingest_medallion']:.1f}×)"
        ),
        lambda r: r["ingest_ours"] >= 3 * r["ingest_medallion"],
    ),
    (
        "the same, KOR's node paused meanwhile (objects/s)",
        lambda r: (
            f"{r['ingest_paused']:.0f} vs medallion {r['ingest_medallion']:.0f} ({r['ingest_paused'] / r['ingest_medallion']:.1f}×)"
        ),
        lambda r: r["ingest_paused"] >= 3 * r["ingest_medallion"],
    ),
    (
        "One object per POST, p50 (ms)",
        lambda r: f"{r['single_p50_ours']:.1f} vs medallion {r['single_p50_medallion']:.1f}",
        lambda r: r["single_p50_ours"] <= r["single_p50_medallion"] / 2,
    ),
    (
        "First inbox page of 100, p50 (ms)",
        lambda r: (
            f"{r['page_ours_p50_ms']:.1f} at {r['inbox_objects']:,} objects (medallion {r['page_medallion_ms']:.0f} at {r['medallion_objects']:,})"
        ),
        lambda r: r["page_ours_p50_ms"] <= 50,
    ),
    (
        "CoT JPN in → KOR out, 200 tracks/s, p99 (ms)",
        lambda r: (
            f"{r['cot_p99_ms']:.0f} (p50 {r['cot_p50_ms']:.0f}; {r['cot_received']}/{COT_RATE * COT_SECONDS} arrived)"
        ),
        lambda r: r["cot_p99_ms"] <= 100 and r["cot_received"] == COT_RATE * COT_SECONDS,
    ),
]


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| measure | " + " | ".join(f"run {i + 1}" for i in range(len(results))) + " | goal |",
        "|---|" + "---|" * (len(results) + 1),
    ]
    for name, show, met in ROWS:
        cells = [f"{show(r)} {'MET' if met(r) else 'NOT MET'}" for r in results]
        count = sum(1 for r in results if met(r))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | MET in {count} of {len(results)} runs |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inbox", type=int, default=1_000_000)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.inbox)))
        return
    results = []
    for i in range(args.runs):
        # A process per run: medallion's application is one per process.
        done = subprocess.run(  # noqa: S603 - this very script, by the interpreter running it
            [sys.executable, __file__, "--one", "--inbox", str(args.inbox)],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.exit(f"run {i + 1} failed (its output is above)")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"run {i + 1}: {json.dumps(results[-1])}", flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
