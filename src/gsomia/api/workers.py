"""``gsomia serve --workers N``: N server processes, each with a listening socket of its own.

uvicorn's supervisor shares one listening socket among its workers, and whichever worker wakes
first accepts every connection waiting: a few long-lived connections opened at once (a bulk
feed, a load balancer's pool) can all land on one worker while the others idle (docs/deploy.md,
*Where the connections land*). Here each worker binds its own socket with ``SO_REUSEPORT``,
and the kernel spreads connections over the listening sockets by a hash of each connection's
addresses and ports, so the spread no longer depends on which worker woke first.

The supervisor first checks that no other socket holds the address (a second server started on
the same port is an error, never a silent share of its connections), then binds it too,
without listening: a socket that does not listen takes no connections, but it keeps the port
from any other server while a worker is replaced. A worker that dies is replaced;
one that fails before it serves (a database that cannot be opened, say) stops the supervisor,
since every replacement would fail the same way. A worker whose event loop has not run for
``stall_seconds`` (it beats once a second) is killed and replaced too: unlike a shared socket,
a socket of its own keeps receiving its share of new connections while its worker cannot serve
them. SIGINT and SIGTERM stop the workers gracefully (uvicorn finishes the requests in flight),
then the supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger("gsomia.workers")

STARTUP_FAILURE = 3
"""A worker's exit status when it stopped before serving (uvicorn's own value)."""

_SPAWN = multiprocessing.get_context("spawn")


class Beat(Protocol):
    """A float shared with the supervisor: the worker's last ``time.monotonic()`` beat (0 until
    it serves)."""

    value: float


def per_worker_sockets() -> bool:
    """Whether this system lets each worker listen on the same port (``SO_REUSEPORT``)."""
    return hasattr(socket, "SO_REUSEPORT")


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how the workers serve."""

    host: str
    port: int
    log_level: str = "info"
    backlog: int = 2048
    graceful_seconds: float = 30.0
    stall_seconds: float = 30.0


def bind(listen: Listen, *, shared: bool = True) -> socket.socket:
    """A socket bound to the address, not listening: with ``SO_REUSEPORT`` (``shared``), which
    the workers' sockets and the supervisor's reservation use, or with only ``SO_REUSEADDR``,
    which fails while any other socket holds the port.

    Raises:
        OSError: the address cannot be bound (in use, or not an address of this host).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Not SO_REUSEADDR on the shared sockets: a socket without it makes every later bind
        # without SO_REUSEPORT fail, so another server cannot take the port between workers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT if shared else socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def reserve(listen: Listen) -> socket.socket:
    """The supervisor's hold on the address: first checked free (a server already listening
    there, even one whose sockets allow ``SO_REUSEPORT``, is an error, never a silent share),
    then bound with ``SO_REUSEPORT`` for the workers to join.

    Raises:
        OSError: another socket holds the address, or it cannot be bound.
    """
    bind(listen, shared=False).close()
    return bind(listen)


def serve_worker(listen: Listen, beat: Beat) -> None:  # pragma: no cover - runs in the worker processes
    """One worker: listen on a socket of its own and serve the application built from the
    environment until SIGINT or SIGTERM, beating from its event loop once a second."""
    import uvicorn  # noqa: PLC0415 - only the worker processes need it

    from gsomia.api.middleware import EnvironmentGuardedHttpTools  # noqa: PLC0415

    try:
        sock = bind(listen)
        sock.listen(listen.backlog)
    except OSError as e:
        sys.stderr.write(f"gsomia worker {os.getpid()}: cannot listen on {listen.host}:{listen.port}: {e}\n")
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config(
        "gsomia.api.app:factory",
        factory=True,
        log_level=listen.log_level,
        access_log=False,
        loop="uvloop",
        http=EnvironmentGuardedHttpTools,
        timeout_graceful_shutdown=int(listen.graceful_seconds),
        callback_notify=_beating(beat),
        timeout_notify=1,  # uvicorn's main loop calls it when more than this many seconds passed
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _beating(beat: Beat) -> Any:
    async def notify() -> None:
        beat.value = time.monotonic()  # system-wide on Linux: the supervisor compares it with its own

    beat.value = time.monotonic()
    return notify


@dataclass(slots=True)
class _Worker:
    process: SpawnProcess
    beat: Beat


class Supervisor:
    """Starts ``workers`` worker processes, replaces any that dies or stalls, and stops them all
    on SIGINT or SIGTERM."""

    def __init__(self, listen: Listen, workers: int, *, target: Callable[[Listen, Beat], None] = serve_worker) -> None:
        self.listen = listen
        self.workers = workers
        self._target = target
        self._workers: list[_Worker] = []
        self._stop = threading.Event()
        self.failed = False

    def run(self) -> int:
        """Serve until stopped: 0 after a stop, 1 when a worker could not start.

        Raises:
            OSError: the address cannot be bound (nothing was started).
        """
        reserved = reserve(self.listen)
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._workers = [self._spawn() for _ in range(self.workers)]
            while not self._stop.wait(0.25):
                self._replace_dead()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reserved.close()
        return 1 if self.failed else 0

    def stop(self) -> None:
        """Ask the supervisor to stop its workers and return from :meth:`run`."""
        self._stop.set()

    def pids(self) -> Sequence[int]:
        """The workers' process ids, as they stand."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _spawn(self) -> _Worker:
        beat: Beat = _SPAWN.Value("d", 0.0, lock=False)
        process = _SPAWN.Process(target=self._target, args=(self.listen, beat), name="gsomia-worker")
        process.start()
        log.info("started worker process [%s]", process.pid)
        return _Worker(process, beat)

    def _replace_dead(self) -> None:
        for i, worker in enumerate(self._workers):
            process = worker.process
            if self._stop.is_set():
                return
            stalled = False
            if process.is_alive():
                silent = time.monotonic() - worker.beat.value
                if not worker.beat.value or silent < self.listen.stall_seconds:
                    continue
                log.error(
                    "worker process [%s] has not run its event loop for %.0f s; replacing it", process.pid, silent
                )
                process.kill()
                stalled = True
            process.join()
            if not stalled:
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker process [%s] failed to start; stopping", process.pid)
                    self.failed = True
                    self._stop.set()
                    return
                log.warning("worker process [%s] exited (status %s); starting another", process.pid, process.exitcode)
            self._workers[i] = self._spawn()

    def _stop_all(self) -> None:
        for worker in self._workers:
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.listen.graceful_seconds + 5
        for worker in self._workers:
            process = worker.process
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker process [%s] did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
