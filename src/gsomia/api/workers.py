"""``gsomia serve --workers N``: N server processes, and a supervisor that hands each new
connection to the worker with the fewest open connections.

uvicorn's supervisor shares one listening socket among its workers, and whichever worker wakes
first accepts every connection waiting; sockets of their own (``SO_REUSEPORT``) leave it to a
hash of each connection's ports instead. Either way a few long-lived connections opened at once
(a party node's bulk feed, a load balancer's pool: the way an exchange among a few nations is
used) can all land on one worker while the others idle (docs/deploy.md, *Where the connections
land*). Here the supervisor alone listens. It accepts each connection and passes its file
descriptor (``SCM_RIGHTS``, over a Unix socket pair of each worker's) to the worker with the
fewest open connections, and then closes its own copy: from then on the client talks to the
worker directly, and a keep-alive connection costs the supervisor nothing more.

The supervisor's socket is an ordinary one: a second server started on the same port fails,
and the port stays held while a worker is replaced. Each worker beats once a second from its
event loop, once it serves, and counts the connections it has closed; the supervisor counts
those it handed over, so it knows each worker's open connections without asking.

A worker that exits is replaced; one that has not beaten for ``stall_seconds`` is killed and
replaced (it also stops being handed connections as soon as its channel is full). A worker that
fails before it ever serves, or has not begun to serve ``start_seconds`` after it was started
(its start-up hangs on a database that accepts connections and never answers, say), stops the
supervisor if no worker has served yet (the configuration is wrong: every replacement would
fail the same way); later (the database is down while a worker is replaced, say) it is retried
with a growing delay. A worker whose supervisor is gone stops by itself. SIGINT and SIGTERM stop
the workers gracefully (uvicorn finishes the requests in flight), then the supervisor; SIGHUP
replaces the workers one at a time, each once its replacement serves (new code and files are
read, no new connection waits for it).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger("gsomia.workers")

STARTUP_FAILURE = 3
"""A worker's exit status when it stopped before serving (uvicorn's own value)."""

MAX_RETRY_SECONDS = 30.0

_SPAWN = multiprocessing.get_context("spawn")


class Shared(Protocol):
    """A number shared between the supervisor and one worker (``multiprocessing.Value``)."""

    value: Any


@dataclass(frozen=True, slots=True)
class Listen:
    """Where and how the workers serve."""

    host: str
    port: int
    log_level: str = "info"
    backlog: int = 2048
    graceful_seconds: float = 30.0
    stall_seconds: float = 30.0
    start_seconds: float = 120.0
    """The longest a worker may take from its start to serving before it is killed."""


@dataclass(frozen=True, slots=True)
class Link:
    """What a worker shares with its supervisor: the worker's end of the channel the
    connections come through, its last beat (``time.monotonic()``, 0 until it serves) and the
    number of connections it has closed."""

    channel: socket.socket
    beat: Shared
    closed: Shared


def listen_on(listen: Listen) -> socket.socket:
    """The supervisor's listening socket.

    Raises:
        OSError: the address is in use (even by a server whose sockets allow ``SO_REUSEPORT``)
            or is not an address of this host.
    """
    # As uvicorn binds: IPv6 when the host is an IPv6 address, IPv4 otherwise (a name such as
    # "localhost" then means its IPv4 address)
    sock = socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(listen.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def serve_worker(listen: Listen, link: Link) -> None:  # pragma: no cover - runs in the worker processes
    """One worker: serve the application built from the environment on the connections the
    supervisor hands over, until SIGINT or SIGTERM."""
    import uvicorn  # noqa: PLC0415 - only the worker processes need it

    from gsomia.api.middleware import EnvironmentGuardedHttpTools  # noqa: PLC0415

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's signal: a terminal's hangup restarts us
    supervisor = os.getppid()

    async def notify() -> None:
        if os.getppid() != supervisor:  # the supervisor is gone: nobody would replace or stop us
            os.kill(os.getpid(), signal.SIGTERM)
            return
        link.beat.value = time.monotonic()  # system-wide on Linux: the supervisor compares it with its own

    config = uvicorn.Config(
        "gsomia.api.app:factory",
        factory=True,
        log_level=listen.log_level,
        access_log=False,
        loop="uvloop",
        http=EnvironmentGuardedHttpTools,
        timeout_graceful_shutdown=int(listen.graceful_seconds),
        callback_notify=notify,
        timeout_notify=1,  # uvicorn's main loop calls it when more than this many seconds passed
    )
    server = _handed_server(uvicorn.Server)(config, link)
    server.run(sockets=[])  # no socket of its own: connections come through the channel
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _handed_server(base: type[Any]) -> type[Any]:  # pragma: no cover - runs in the worker processes
    """A uvicorn server that serves connections received over its channel."""

    class HandedServer(base):  # type: ignore[misc]
        def __init__(self, config: Any, link: Link) -> None:
            super().__init__(config)
            self.link = link
            self.pending: set[asyncio.Task[Any]] = set()

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])
            self.link.channel.setblocking(False)
            asyncio.get_running_loop().add_reader(self.link.channel.fileno(), self._handed_receive)
            self.link.beat.value = time.monotonic()  # serving from now on

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            asyncio.get_running_loop().remove_reader(self.link.channel.fileno())
            self.link.channel.close()  # connections still in the channel are closed with it
            await super().shutdown(sockets=sockets)

        def _handed_receive(self) -> None:
            loop = asyncio.get_running_loop()
            while True:
                try:
                    _, fds, _, _ = socket.recv_fds(self.link.channel, 1, 16)
                except BlockingIOError:
                    return
                except OSError:
                    fds = []
                if not fds:  # the supervisor closed the channel
                    loop.remove_reader(self.link.channel.fileno())
                    return
                for fd in fds:
                    task = loop.create_task(self._handed_adopt(socket.socket(fileno=fd)))
                    self.pending.add(task)
                    task.add_done_callback(self.pending.discard)

        async def _handed_adopt(self, conn: socket.socket) -> None:
            try:
                await asyncio.get_running_loop().connect_accepted_socket(self._handed_protocol, conn)
            except OSError as e:  # the client left before it was served: nothing to serve
                log.debug("a handed connection could not be served: %s", e)
                conn.close()
                self.link.closed.value += 1

        def _handed_protocol(self) -> asyncio.Protocol:
            protocol: asyncio.Protocol = self.config.http_protocol_class(
                config=self.config, server_state=self.server_state, app_state=self.lifespan.state
            )
            lost = protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                self.link.closed.value += 1
                lost(exc)

            protocol.connection_lost = connection_lost  # type: ignore[method-assign]
            return protocol

    return HandedServer


@dataclass(slots=True, eq=False)
class _Worker:
    process: SpawnProcess | None  # None while its replacement waits for ``due``
    link: Link
    channel: socket.socket | None = None  # the supervisor's end
    handed: int = 0  # connections handed over; open = handed - link.closed.value
    due: float = 0.0
    retry: float = 1.0  # the delay before the next try, should this one fail before serving
    full: float = 0.0  # when its channel was last found full
    started: float = field(default_factory=time.monotonic)

    def open_connections(self) -> int:
        return self.handed - int(self.link.closed.value)

    def serving(self) -> bool:
        return self.process is not None and self.channel is not None and bool(self.link.beat.value)


class Supervisor:
    """Listens, hands each connection to the least busy worker, replaces workers that die or
    stall, and stops them all on SIGINT or SIGTERM."""

    def __init__(self, listen: Listen, workers: int, *, target: Callable[[Listen, Link], None] = serve_worker) -> None:
        self.listen = listen
        self.workers = workers
        self._target = target
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()  # the worker list, between the main thread and the acceptor
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._served = False
        self.failed = False
        self.handed = 0

    def run(self) -> int:
        """Serve until stopped: 0 after a stop, 1 when a worker could not start.

        Raises:
            OSError: the address cannot be listened on (nothing was started).
        """
        listener = listen_on(self.listen)
        previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            }
        acceptor = threading.Thread(target=self._accept, args=(listener,), name="gsomia-acceptor", daemon=True)
        try:
            with self._lock:
                self._workers = [self._spawn() for _ in range(self.workers)]
            acceptor.start()
            while not self._stop.wait(0.25):
                self._watch()
                if self._restart.is_set():
                    self._restart.clear()
                    self._restart_all()
        finally:
            self._stop.set()
            if acceptor.is_alive():
                acceptor.join(5)
            listener.close()
            self._end(self._workers)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.failed else 0

    def stop(self) -> None:
        """Ask the supervisor to stop its workers and return from :meth:`run`."""
        self._stop.set()

    def restart(self) -> None:
        """Ask the supervisor to replace its workers one at a time (what SIGHUP does)."""
        self._restart.set()

    def pids(self) -> Sequence[int]:
        """The workers' process ids, as they stand."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.process is not None and w.process.pid is not None]

    def serving(self) -> int:
        """How many workers serve (are handed connections) now."""
        with self._lock:
            return sum(w.serving() for w in self._workers)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._restart.set()
        else:
            self._stop.set()

    # --- handing connections over --------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        listener.settimeout(0.25)  # to see a stop
        while not self._stop.is_set():
            if not self._any_serving():
                self._stop.wait(0.05)  # connections wait in the backlog until a worker serves
                continue
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as e:  # out of file descriptors, say: the client is refused, we go on
                log.error("accepting a connection failed: %s", e)  # noqa: TRY400 - a condition, not a bug
                self._stop.wait(0.1)
                continue
            with conn:
                try:
                    if not self._hand(conn):
                        log.error("no worker could take a connection; it is closed")
                except Exception:  # a bug here must cost one connection, never the acceptor
                    log.exception("handing a connection over failed; it is closed")

    def _any_serving(self) -> bool:
        with self._lock:
            return any(w.serving() for w in self._workers)

    def _hand(self, conn: socket.socket) -> bool:
        """Pass ``conn`` to the serving worker with the fewest open connections (next the
        others, should its channel be full or closed)."""
        with self._lock:
            candidates = sorted(
                (w for w in self._workers if w.serving()),
                key=lambda w: (w.full > time.monotonic() - 1, w.open_connections()),
            )
            for worker in candidates:
                if worker.channel is None:
                    continue
                try:
                    socket.send_fds(worker.channel, [b"c"], [conn.fileno()])
                except BlockingIOError:  # its channel is full: a stalled worker
                    worker.full = time.monotonic()
                    continue
                except OSError:  # the worker is gone
                    continue
                worker.handed += 1
                self.handed += 1
                return True
        return False

    # --- the workers ------------------------------------------------------------------------------

    def _spawn(self, retry: float = 1.0) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        link = Link(theirs, _SPAWN.Value("d", 0.0, lock=False), _SPAWN.Value("q", 0, lock=False))
        process = _SPAWN.Process(target=self._target, args=(self.listen, link), name="gsomia-worker")
        process.start()
        theirs.close()
        log.info("started worker process [%s]", process.pid)
        return _Worker(process, link, ours, retry=retry)

    def _watch(self) -> None:
        """Replace the workers that exited or stalled; start those whose delay is over."""
        now = time.monotonic()
        for i, worker in enumerate(list(self._workers)):
            if self._stop.is_set():
                return
            process = worker.process
            if process is None:
                if now >= worker.due:
                    self._replace(i, self._spawn(worker.retry))
                continue
            beat = worker.link.beat.value
            if beat:
                self._served = True
            if process.is_alive():
                if not self._overdue(worker, process.pid, now):
                    continue
                process.kill()
            process.join()
            self._replace(i, self._after_exit(worker, process, now))

    def _overdue(self, worker: _Worker, pid: int | None, now: float) -> bool:
        """Whether a live worker has stalled, or has not begun to serve in time (logged)."""
        beat = worker.link.beat.value
        if beat:
            if now - beat < self.listen.stall_seconds:
                return False
            log.error("worker process [%s] has not beaten for %.0f s; replacing it", pid, now - beat)
            return True
        if now - worker.started < self.listen.start_seconds:
            return False
        log.error("worker process [%s] did not begin to serve within %.0f s; stopping it", pid, now - worker.started)
        return True

    def _replace(self, i: int, new: _Worker) -> None:
        with self._lock:
            old = self._workers[i]
            self._workers[i] = new
        if old.channel is not None and old is not new:
            old.channel.close()  # connections still in it are closed with it

    def _after_exit(self, worker: _Worker, process: SpawnProcess, now: float) -> _Worker:
        if worker.link.beat.value:  # it served: replace it at once
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
        return _Worker(None, worker.link, None, due=now + worker.retry, retry=min(worker.retry * 2, MAX_RETRY_SECONDS))

    def _restart_all(self) -> None:
        """Replace each worker once its replacement serves; stop at the first that does not."""
        log.info("replacing the workers one at a time")
        for i, old in enumerate(list(self._workers)):
            if self._stop.is_set():
                return
            new = self._spawn()
            deadline = time.monotonic() + self.listen.start_seconds
            while not new.link.beat.value and time.monotonic() < deadline and not self._stop.wait(0.1):
                if new.process is None or not new.process.is_alive():
                    break
            if not new.link.beat.value:
                log.error("a replacement worker did not start serving; keeping the current ones")
                self._end([new])
                return
            self._replace(i, new)  # handed no more connections from here on
            self._end([old])

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
        for w in workers:
            if w.channel is not None:
                w.channel.close()
