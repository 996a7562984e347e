"""Shared fixtures: the bundled scenario, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from gsomia.domain.instants import parse_instant
from gsomia.domain.record import Network, Record, WhatIf, apply_whatif, compile_network
from gsomia.scenario.loader import bundled_scenarios, parse_scenario
from tests.harness import Harness, start_terminated
from tests.harness import start as start_harness

# No timing assertions: a property test's examples are judged by what they compute, never by
# how long a loaded machine took to run one (hypothesis' default deadline is 200 ms).
settings.register_profile("gsomia", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("gsomia")

# pytest-xdist's workers start with COLUMNS=80 and LINES=24 in their environment, where a
# serial run has none: a console created at import would then be pinned to 80 columns.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("COLUMNS", "LINES"):
        os.environ.pop(_name, None)

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = bundled_scenarios()["japan-korea-2019"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a slow test first, each file's tests kept together and in their order.

    pytest-xdist (``--dist loadfile``) hands files to its workers in this order as they free
    up: the long files started first leave only short ones for the end, so no worker runs a
    long file alone after the other has finished."""
    slow = {item.path for item in items if item.get_closest_marker("slow") is not None}
    order = {path: n for n, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (item.path not in slow, order[item.path]))


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """The exchange every ``harness`` starts as (built once, closed; see :meth:`Harness.clone`)."""
    h = start_harness(tmp_path_factory.mktemp("pristine"))
    h.close()
    return h


@pytest.fixture(scope="session")
def pristine_terminated(tmp_path_factory: pytest.TempPathFactory) -> Harness:
    """The exchange every ``terminated`` harness starts as (built once, closed)."""
    h = start_terminated(tmp_path_factory.mktemp("pristine-terminated"))
    h.close()
    return h


@pytest.fixture
def harness(pristine: Harness, tmp_path: Path) -> Iterator[Harness]:
    """An exchange in this process on the bundled scenario, the clock at 2019-11-22 10:00 KST
    (see :mod:`tests.harness`)."""
    h = pristine.clone(tmp_path)
    yield h
    h.close()


@pytest.fixture
def terminated(pristine_terminated: Harness, tmp_path: Path) -> Iterator[Harness]:
    """An exchange in this process in exercise mode, had Korea's notice taken effect: the
    GSOMIA ended at 00:00 KST on 2019-11-23, the clock is at 2019-12-01 10:00 KST, and a report
    from Japan reaches Korea only relayed through the US under TISA, with Japan's consent."""
    h = pristine_terminated.clone(tmp_path)
    yield h
    h.close()


def kst(text: str) -> datetime:
    """An instant typed in Korea's zone (bare dates at 00:00 KST)."""
    return parse_instant(text, "Asia/Seoul")


@pytest.fixture(scope="session")
def record() -> Record:
    return parse_scenario(SCENARIO.read_text(encoding="utf-8"), str(SCENARIO)).record


@pytest.fixture(scope="session")
def net(record: Record) -> Network:
    return compile_network(record)


@pytest.fixture(scope="session")
def no_suspension(record: Record) -> Network:
    """The record had Korea not suspended its notice."""
    return compile_network(apply_whatif(record, WhatIf("no-suspension", drop=("jpn-kor-2019-suspension",))))


# --- PostgreSQL ----------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (initdb, pg_ctl), with a database ``gsomia``;
    it can be stopped (``-m immediate``, as a crash) and started again on the same port."""

    def __init__(self, *, durable: bool = False) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.fail(
                "PostgreSQL (initdb, pg_ctl) not found: run scripts/system-packages.sh "
                "(or: sudo apt-get install -y postgresql)"
            )
        self._pg_ctl = pg_ctl
        self.base = Path(tempfile.mkdtemp(prefix="gsomia-pg-"))
        self.data = self.base / "data"
        self._prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as 'postgres'
            runuser = shutil.which("runuser")
            if runuser is None:
                pytest.fail("running as root and 'runuser' is missing: cannot start PostgreSQL as another user")
            shutil.chown(self.base, "postgres", "postgres")
            self._prefix = [runuser, "-u", "postgres", "--"]
        self.port = _free_port()
        # a cluster that is crashed on purpose keeps fsync on, as production does
        speed = "" if durable else " -c fsync=off -c full_page_writes=off"
        self._opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base}{speed}"
        subprocess.run(
            [
                *self._prefix,
                initdb,
                "-D",
                str(self.data),
                "-U",
                "gsomia",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
        )
        self.start()
        createdb = _pg_bin("createdb") or "createdb"
        subprocess.run(
            [*self._prefix, createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "gsomia", "gsomia"],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://gsomia@127.0.0.1:{self.port}/gsomia"

    def start(self) -> None:
        log = str(self.base / "server.log")
        command = [self._pg_ctl, "-D", str(self.data), "-o", self._opts, "-l", log, "-w", "-t", "60", "start"]
        subprocess.run([*self._prefix, *command], check=True, capture_output=True)

    def stop(self) -> None:
        """Stop at once, as a crash would (``pg_ctl stop -m immediate``)."""
        subprocess.run(
            [*self._prefix, self._pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1, started with initdb/pg_ctl.

    A missing PostgreSQL fails the tests that need it: every storage test runs on both backends.
    """
    cluster = PgCluster()
    try:
        yield cluster.url
    finally:
        cluster.destroy()


@pytest.fixture
def fresh_pg(pg_url: str) -> Iterator[str]:
    """An empty database in the throwaway cluster, one per test."""
    import psycopg

    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _count() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


_counter = _count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs on both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gsomia.db'}"
    return str(request.getfixturevalue("fresh_pg"))
