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
from any other server while a worker is replaced.

Each worker beats once a second from its event loop, once it serves. The supervisor replaces a
worker that exits, and kills and replaces one that has not beaten for ``stall_seconds``: unlike
a shared socket, a socket of its own keeps receiving its share of new connections while its
worker cannot serve them. A worker that fails before it ever serves stops the supervisor if no
worker has served yet (the configuration is wrong: every replacement would fail the same way);
later (the database is down while a worker is replaced, say) it is retried with a growing delay.
A worker whose supervisor is gone stops by itself. SIGINT and SIGTERM stop the workers
gracefully (uvicorn finishes the requests in flight), then the supervisor; SIGHUP replaces the
workers one at a time, each after its replacement serves (new code and files are read, no
connection is refused meanwhile).
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
    # As uvicorn binds a worker's socket: IPv6 when the host is an IPv6 address, IPv4 otherwise
    # (a name such as "localhost" then means its IPv4 address)
    sock = socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Not SO_REUSEADDR on the shared sockets: a socket without it makes every later bind
        # without SO_REUSEPORT fail, so another server cannot take the port between workers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT if shared else socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
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

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's signal: a terminal's hangup restarts us
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
    supervisor = os.getppid()

    async def notify() -> None:
        if os.getppid() != supervisor:  # the supervisor is gone: nobody would replace or stop us
            os.kill(os.getpid(), signal.SIGTERM)
            return
        beat.value = time.monotonic()  # system-wide on Linux: the supervisor compares it with its own

    return notify


@dataclass(slots=True)
class _Worker:
    process: SpawnProcess | None  # None while its replacement waits for ``due``
    beat: Beat
    due: float = 0.0
    retry: float = 1.0  # the delay before the next try, should this one fail before serving


MAX_RETRY_SECONDS = 30.0


class Supervisor:
    """Starts ``workers`` worker processes, replaces any that dies or stalls, and stops them all
    on SIGINT or SIGTERM."""

    def __init__(self, listen: Listen, workers: int, *, target: Callable[[Listen, Beat], None] = serve_worker) -> None:
        self.listen = listen
        self.workers = workers
        self._target = target
        self._workers: list[_Worker] = []
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._served = False
        self.failed = False

    def run(self) -> int:
        """Serve until stopped: 0 after a stop, 1 when a worker could not start.

        Raises:
            OSError: the address cannot be bound (nothing was started).
        """
        reserved = reserve(self.listen)
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            }
        try:
            self._workers = [self._spawn() for _ in range(self.workers)]
            while not self._stop.wait(0.25):
                self._watch()
                if self._restart.is_set():
                    self._restart.clear()
                    self._restart_all()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            reserved.close()
        return 1 if self.failed else 0

    def stop(self) -> None:
        """Ask the supervisor to stop its workers and return from :meth:`run`."""
        self._stop.set()

    def restart(self) -> None:
        """Ask the supervisor to replace its workers one at a time (what SIGHUP does)."""
        self._restart.set()

    def pids(self) -> Sequence[int]:
        """The workers' process ids, as they stand."""
        return [w.process.pid for w in self._workers if w.process is not None and w.process.pid is not None]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._restart.set()
        else:
            self._stop.set()

    def _spawn(self, retry: float = 1.0) -> _Worker:
        beat: Beat = _SPAWN.Value("d", 0.0, lock=False)
        process = _SPAWN.Process(target=self._target, args=(self.listen, beat), name="gsomia-worker")
        process.start()
        log.info("started worker process [%s]", process.pid)
        return _Worker(process, beat, retry=retry)

    def _watch(self) -> None:
        """Replace the workers that exited or stalled; start those whose delay is over."""
        now = time.monotonic()
        for i, worker in enumerate(self._workers):
            if self._stop.is_set():
                return
            process = worker.process
            if process is None:
                if now >= worker.due:
                    self._workers[i] = self._spawn(worker.retry)
                continue
            if worker.beat.value:
                self._served = True
            if process.is_alive():
                silent = now - worker.beat.value
                if not worker.beat.value or silent < self.listen.stall_seconds:
                    continue
                log.error("worker process [%s] has not beaten for %.0f s; replacing it", process.pid, silent)
                process.kill()
            process.join()
            self._workers[i] = self._after_exit(worker, process, now)

    def _after_exit(self, worker: _Worker, process: SpawnProcess, now: float) -> _Worker:
        if worker.beat.value:  # it served: replace it at once
            if process.exitcode != -signal.SIGKILL:
                log.warning("worker process [%s] exited (status %s); starting another", process.pid, process.exitcode)
            return self._spawn()
        if not self._served:
            log.error("worker process [%s] failed to start (status %s); stopping", process.pid, process.exitcode)
            self.failed = True
            self._stop.set()
            return worker
        log.warning(
            "worker process [%s] failed to start (status %s); trying again in %.0f s",
            process.pid,
            process.exitcode,
            worker.retry,
        )
        return _Worker(None, worker.beat, now + worker.retry, min(worker.retry * 2, MAX_RETRY_SECONDS))

    def _restart_all(self) -> None:
        """Replace each worker once its replacement serves; stop at the first that does not."""
        log.info("replacing the workers one at a time")
        for i, old in enumerate(list(self._workers)):
            if self._stop.is_set():
                return
            new = self._spawn()
            deadline = time.monotonic() + 60
            while not new.beat.value and time.monotonic() < deadline and not self._stop.wait(0.1):
                if new.process is None or not new.process.is_alive():
                    break
            if not new.beat.value:
                log.error("a replacement worker did not start serving; keeping the current ones")
                self._end([new])
                return
            self._workers[i] = new
            self._end([old])

    def _stop_all(self) -> None:
        self._end(self._workers)

    def _end(self, workers: Sequence[_Worker]) -> None:
        processes = [w.process for w in workers if w.process is not None]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.listen.graceful_seconds + 5
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker process [%s] did not stop in time; killing it", process.pid)
                process.kill()
                process.join()
