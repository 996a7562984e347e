"""The ``gsomia`` command line: parse, call one service, render (text or ``--json``).

Exit codes live here and only here (see ``EXIT_CODES``); every error is one clear line on
stderr, except a validation failure, which lists every problem with its file and line.

This module holds the application, ``demo`` and ``serve``, and registers the other commands:
the analysis commands (:mod:`gsomia.cli.analysis`), the impact report
(:mod:`gsomia.cli.report`), ``backup`` and ``restore`` (:mod:`gsomia.cli.backup`), and the ``scenario``, ``ledger``, ``client``, ``keys`` and
``principals`` groups.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from gsomia import __version__
from gsomia.bootstrap import App, Settings, build
from gsomia.cli import analysis, common
from gsomia.cli.backup import backup_cmd, restore_cmd
from gsomia.cli.exchange import client_cli, keys_cli, principals_cli
from gsomia.cli.ledger import ledger_cli
from gsomia.cli.node import node_cli
from gsomia.cli.options import AsJson, Host, LogLevel, LogLevelName, Port
from gsomia.cli.report import render_report, report_cmd
from gsomia.cli.scenario import scenario_cli
from gsomia.errors import GsomiaError, InvalidInput
from gsomia.services.analysis import presenters as views

out, err = common.out, common.err

HELP = """gsomia: release classified reports only where a security agreement in force allows it,
and answer what happens to the flows if an agreement ends.

Start with 'gsomia demo' (loads the bundled 2019 Japan–Korea scenario and prints the impact
report), then ask: 'gsomia status --at 2019-11-22T17:00+09:00', 'gsomia route JPN KOR --topic
dprk.missile.launch --level 極秘 --at 2019-12-01 --drop-event jpn-kor-2019-suspension'.

Every read command takes --json. The database is SQLite in your data directory unless you give
--db URL or GSOMIA_DB (sqlite:///PATH or postgresql://USER@HOST/DB)."""

cli = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli.add_typer(scenario_cli, name="scenario")
cli.add_typer(ledger_cli, name="ledger")
cli.add_typer(client_cli, name="client")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(principals_cli, name="principals")
cli.add_typer(node_cli, name="node")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"gsomia {__version__}\n")
        raise typer.Exit(0)


@cli.callback()
def _root(
    db: Annotated[
        str | None, typer.Option("--db", envvar="GSOMIA_DB", help="Database URL (sqlite:///PATH or postgresql://…).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    common.state.db = db
    common.state.app = None
    common.unwrapped_when_piped()


# --- demo, serve -----------------------------------------------------------------------------


@cli.command()
def demo(
    as_json: AsJson = False,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Then serve the dashboard, the API and the exchange.")
    ] = True,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Start afresh: first delete the SQLite database (its scenario, every report, delivery, consent "
            "and ledger entry) and the demo credentials. Refused for PostgreSQL.",
        ),
    ] = False,
) -> None:
    """The whole tour: load the bundled scenario 'japan-korea-2019', print the impact report, issue
    demo credentials (JPN, KOR, USA, an operator, an auditor) and serve the dashboard and the
    exchange on HOST:PORT until interrupted (--no-serve stops after the credentials). Run again,
    it keeps what still works; --reset starts from an empty database."""
    from gsomia.services.exchange.identity import issue_demo_credentials  # noqa: PLC0415

    with common.errors():
        if reset:
            _reset_demo()
        app = common.app(creates=True)
        if serve_after:
            common.check_listen(host, port)
        loaded, outcome = app.scenarios.load("japan-korea-2019")
        if not as_json:
            err.print(f"scenario {loaded.record.name}: {outcome.outcome} in {app.store.describe()}", markup=False)
        report = app.analysis.report()
        url = f"http://{host}:{port}"
        credentials = issue_demo_credentials(app.exchange.identity, app.exchange.keys, app.settings.data_dir, url=url)
        if as_json:
            data = views.report_json(report)
            data["demo"] = {
                "url": url,
                "directory": str(credentials.directory),
                "tokens_file": str(credentials.tokens_file),
            }
            common.emit_json(data)
        else:
            render_report(report)
            out.print()
            out.rule("demo credentials")
            for line in credentials.instructions():
                out.print(line, markup=False, soft_wrap=True)
            if not serve_after:  # the commands above need an exchange to talk to
                where = ("" if host == "127.0.0.1" else f" --host {host}") + ("" if port == 8000 else f" --port {port}")
                out.print(f"\nNothing is served (--no-serve): start the exchange first, 'gsomia serve{where}'.")
        if serve_after:
            err.print(
                f"\ngsomia: dashboard at {url}/  ·  API reference at {url}/docs  ·  Ctrl-C stops it", markup=False
            )
            _serve(app, host, port, "warning")


def _reset_demo() -> None:
    """Delete the demo's SQLite database (with its WAL files) and its credentials folder.

    Raises:
        InvalidInput: for a database that is not a SQLite file, or a file that cannot be removed.
    """
    import shutil  # noqa: PLC0415

    from gsomia.storage.backup import sqlite_file  # noqa: PLC0415

    common.close_app()
    settings = Settings(db=common.state.db) if common.state.db else Settings()
    path = sqlite_file(settings.database_url())
    if path is None:
        raise InvalidInput("--reset deletes a SQLite database only; drop and recreate a PostgreSQL database yourself")
    removed = []
    try:
        for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if f.exists():
                f.unlink()
                removed.append(str(f))
        demo_dir = settings.data_dir / "demo"
        if demo_dir.exists():
            shutil.rmtree(demo_dir)
            removed.append(f"{demo_dir}/")
    except OSError as e:
        raise InvalidInput(f"cannot reset the demo: {e.strerror} ({e.filename})") from e
    err.print(f"reset: removed {', '.join(removed) or 'nothing (no demo yet)'}", markup=False)


# The analysis commands and the report, in the order ``gsomia --help`` lists them.
cli.command("report")(report_cmd)
cli.command()(analysis.status)
cli.command()(analysis.route)
cli.command()(analysis.coverage)
cli.command()(analysis.gaps)
cli.command()(analysis.stats)
cli.command("whatif")(analysis.whatif_cmd)
cli.command("backup")(backup_cmd)
cli.command("restore")(restore_cmd)


@cli.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    log_level: LogLevel = LogLevelName.info,
    exercise_clock: Annotated[
        str | None,
        typer.Option(
            "--exercise-clock",
            envvar="GSOMIA_EXERCISE_CLOCK",
            help="Exercise mode: start the exchange clock at this instant (e.g. 2019-11-22T10:00+09:00).",
        ),
    ] = None,
    exercise_whatif: Annotated[
        Path | None,
        typer.Option(
            "--exercise-whatif",
            envvar="GSOMIA_EXERCISE_WHATIF",
            help="Exercise mode: apply this what-if file (drop:, add:) to every decision.",
        ),
    ] = None,
    exercise_reset: Annotated[
        bool,
        typer.Option(
            "--exercise-reset",
            help="Exercise mode: seed DATA_DIR/exercise.db afresh from the live database (its reports, "
            "deliveries and ledger are discarded).",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            envvar="GSOMIA_WORKERS",
            min=1,
            max=64,
            help="Server processes sharing the port: a supervisor hands each connection to the one with "
            "the fewest open and replaces one that dies or stalls (default: one per core on PostgreSQL, 1 "
            "on SQLite). Decisions are made in the transaction that commits them, so any number agree, "
            "and several hosts may serve one PostgreSQL database the same way (docs/deploy.md).",
        ),
    ] = None,
) -> None:
    """Serve the dashboard (at /), the API (OpenAPI at /docs) and the exchange on HOST:PORT until
    interrupted.

    Exercise mode (--exercise-clock, --exercise-whatif) runs on its own database,
    DATA_DIR/exercise.db, unless --db or GSOMIA_DB names one: on first start it is seeded from
    the live database's record, principals and public keys (none of its reports, deliveries,
    consents, incidents or ledger entries), so tokens and keys work; later starts reuse it, and
    --exercise-reset seeds it afresh. The live database and its ledger are never written."""
    with common.errors():
        common.check_listen(host, port)
        if exercise_clock or exercise_whatif or exercise_reset:
            # --db has GSOMIA_DB as its envvar: a database given either way is in common.state.db
            common.state.app = build(
                common.settings(exercise_clock=exercise_clock, exercise_whatif=exercise_whatif),
                exercise_reset=exercise_reset,
            )
        app = common.app(creates=True)
        app.ledger.key()  # a lost ledger key is named here, in one line, before anything is served
        app.exchange.context.prepare_kek()  # so is a KEK the exchange cannot use
        summary = app.store.summary()
        err.print(
            f"gsomia {__version__} serving {summary.name if summary else 'an empty database'} from "
            f"{app.store.describe()} on http://{host}:{port} (API docs at /docs)",
            markup=False,
        )
        _say_exercise(app)
        count = workers or (os.cpu_count() or 1 if app.store.dialect == "postgresql" else 1)
        if count == 1:
            _serve(app, host, port, log_level.value)
            return
        err.print(f"{count} worker processes", markup=False)
        common.close_app()
        _serve_workers(app.settings, host, port, log_level.value, count)


def _say_exercise(app: App) -> None:
    """In exercise mode, say so on standard error, and which database the exercise writes to.
    A database an exercise wrote to is refused outside exercise mode; in it, the exercise clock
    stored there is kept (the exercise is under way), and said to be.

    Raises:
        StorageError: a database an exercise wrote to, outside exercise mode.
    """
    under_way = app.exchange.context.check_database()
    exercise = app.exchange.clock.info()
    if exercise is None:
        return
    if under_way is not None and app.settings.exercise_clock:
        err.print(
            "EXERCISE MODE: this database's exercise is under way: its clock is kept, not "
            f"--exercise-clock {app.settings.exercise_clock} (a fresh exercise needs a fresh database"
            + (": --exercise-reset)" if app.exercise_database is not None else ")"),
            markup=False,
        )
    err.print(f"EXERCISE MODE: {exercise.header()} (every response says so)", markup=False)
    # plain writes: which database an exercise writes to must read whole, never wrapped
    seeded = app.exercise_database
    if seeded is not None:
        sys.stderr.write(f"EXERCISE MODE: {seeded.describe()}\n")
    else:
        sys.stderr.write(f"EXERCISE MODE: on the database given, {app.store.describe()}\n")


def _serve(app: App, host: str, port: int, log_level: str) -> None:
    """Serve on HOST:PORT in this process until interrupted.

    Raises:
        InvalidInput: the address cannot be listened on (in use, or not this host's).
        GsomiaError: the server did not start (uvicorn logged why).
    """
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from gsomia.api.app import create_app  # noqa: PLC0415
    from gsomia.api.middleware import guarded_http_protocol  # noqa: PLC0415
    from gsomia.api.workers import Listen, listen_on  # noqa: PLC0415

    # listen first, as the supervisor of --workers does: a port in use is one error line and the
    # same exit code however many workers, never uvicorn's own exit code (3, an invalid scenario)
    try:
        sock = listen_on(Listen(host, port))
    except OSError as e:
        raise common.cannot_listen(host, port, e) from e
    config = uvicorn.Config(
        create_app(app),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        # httptools, with deadlines for a request's headers and body (uvicorn has none)
        http=guarded_http_protocol(
            header_timeout=app.settings.header_timeout_seconds, body_timeout=app.settings.body_timeout_seconds
        ),
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        pass  # uvicorn exits so when the application fails to start; said below, with our code
    except KeyboardInterrupt:
        pass  # uvicorn raises the Ctrl-C it caught again once it has stopped serving
    finally:
        sock.close()
    if not server.started:
        raise GsomiaError(f"the server on {host}:{port} could not start (its error is above); nothing is served")


def _serve_workers(settings: Settings, host: str, port: int, log_level: str, workers: int) -> None:
    """Serve with ``workers`` processes, each building the application from the environment; a
    supervisor listens and hands each connection to the worker with the fewest open ones
    (gsomia.api.workers)."""
    os.environ.update(settings.as_environment())  # the workers build their application from it
    from gsomia.api import workers as supervisor  # noqa: PLC0415 - only the server needs it

    # uvicorn's "trace" is below DEBUG, a level the logging module does not name
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.DEBUG), format="%(levelname)s:     %(message)s"
    )
    try:
        listen = supervisor.Listen(host, port, log_level, start_seconds=settings.worker_start_seconds)
        status = supervisor.Supervisor(listen, workers).run()
    except OSError as e:
        raise common.cannot_listen(host, port, e) from e
    if status:
        raise GsomiaError("a worker process could not start (its error is above); nothing is served")


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        cli(args=argv, prog_name="gsomia", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        common.close_app()
    return 0
