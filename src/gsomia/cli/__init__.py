"""The ``gsomia`` command line: parse, call one service, render (text or ``--json``).

Exit codes live here and only here (see ``EXIT_CODES``); every error is one clear line on
stderr, except a validation failure, which lists every problem with its file and line.

This module holds the application, ``demo`` and ``serve``, and registers the other commands:
the analysis commands (:mod:`gsomia.cli.analysis`), the impact report
(:mod:`gsomia.cli.report`), and the ``scenario``, ``ledger``, ``client``, ``keys`` and
``principals`` groups.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from gsomia import __version__
from gsomia.bootstrap import App, Settings, build
from gsomia.cli import analysis
from gsomia.cli.exchange import client_cli, keys_cli, principals_cli
from gsomia.cli.ledger import ledger_cli
from gsomia.cli.options import AsJson, Host, Port
from gsomia.cli.report import render_report, report_cmd
from gsomia.cli.scenario import scenario_cli
from gsomia.errors import (
    Conflict,
    GsomiaError,
    InvalidInput,
    LedgerInvalid,
    NotAuthenticated,
    NotPermitted,
    StorageError,
    UnknownEntity,
    ValidationFailed,
)
from gsomia.services.analysis import presenters as views

EXIT_CODES: dict[type[GsomiaError], int] = {
    ValidationFailed: 3,
    InvalidInput: 4,
    UnknownEntity: 5,
    Conflict: 6,
    StorageError: 7,
    LedgerInvalid: 8,
    NotAuthenticated: 9,
    NotPermitted: 9,
}
"""Exit codes by error class; any other gsomia error exits 1, a usage error 2."""

out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

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


class _State:
    db: str | None = None
    app: App | None = None


_state = _State()


def _app() -> App:
    if _state.app is None:
        settings = Settings(db=_state.db) if _state.db else Settings()
        _state.app = build(settings)
    return _state.app


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def _fail(e: GsomiaError) -> NoReturn:
    # plain writes: an error line must never be wrapped or styled
    if isinstance(e, ValidationFailed):
        for p in e.problems:
            sys.stderr.write(f"{p}\n")
        sys.stderr.write(f"error: {len(e.problems)} problem(s) found; nothing was loaded\n")
    else:
        sys.stderr.write(f"error: {' '.join(str(e).split())}\n")
    code = next((c for cls, c in EXIT_CODES.items() if isinstance(e, cls)), 1)
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except GsomiaError as e:
        _fail(e)


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
    _state.db = db
    _state.app = None


# --- demo, serve -----------------------------------------------------------------------------


@cli.command()
def demo(
    as_json: AsJson = False,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Then serve the dashboard, the API and the exchange.")
    ] = True,
    host: Host = "127.0.0.1",
    port: Port = 8000,
) -> None:
    """The whole tour: load the bundled scenario 'japan-korea-2019', print the impact report, issue
    demo credentials (JPN, KOR, USA, an operator, an auditor) and serve the dashboard and the
    exchange on HOST:PORT until interrupted (--no-serve stops after the credentials)."""
    from gsomia.services.exchange.identity import issue_demo_credentials  # noqa: PLC0415

    with _errors():
        app = _app()
        if serve_after:
            _check_port_free(host, port)
        loaded, outcome = app.scenarios.load("japan-korea-2019")
        if not as_json:
            err.print(f"scenario {loaded.record.name}: {outcome.outcome} in {app.store.describe()}", markup=False)
        report = app.analysis.report()
        url = f"http://{host}:{port}"
        credentials = issue_demo_credentials(app.exchange.identity, app.settings.data_dir, url=url)
        if as_json:
            data = views.report_json(report)
            data["demo"] = {
                "url": url,
                "directory": str(credentials.directory),
                "tokens_file": str(credentials.tokens_file),
            }
            _emit_json(data)
        else:
            render_report(report)
            out.print()
            out.rule("demo credentials")
            for line in credentials.instructions():
                out.print(line, markup=False)
        if serve_after:
            err.print(
                f"\ngsomia: dashboard at {url}/  ·  API reference at {url}/docs  ·  Ctrl-C stops it", markup=False
            )
            _serve(app, host, port, "warning")


def _check_port_free(host: str, port: int) -> None:
    """Refuse early, with the fix, if the port is taken (rather than after the report)."""
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise InvalidInput(f"cannot listen on {host}:{port} ({e.strerror}): give another --port") from e


# The analysis commands and the report, in the order ``gsomia --help`` lists them.
cli.command("report")(report_cmd)
cli.command()(analysis.status)
cli.command()(analysis.route)
cli.command()(analysis.coverage)
cli.command()(analysis.gaps)
cli.command()(analysis.stats)
cli.command("whatif")(analysis.whatif_cmd)


@cli.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
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
) -> None:
    """Serve the dashboard (at /), the API (OpenAPI at /docs) and the exchange on HOST:PORT until
    interrupted."""
    with _errors():
        if exercise_clock or exercise_whatif:
            # --db has GSOMIA_DB as its envvar, so db=None here means neither was given
            _state.app = build(Settings(db=_state.db, exercise_clock=exercise_clock, exercise_whatif=exercise_whatif))
        app = _app()
        summary = app.store.summary()
        err.print(
            f"gsomia {__version__} serving {summary.name if summary else 'an empty database'} from "
            f"{app.store.describe()} on http://{host}:{port} (API docs at /docs)",
            markup=False,
        )
        exercise = app.exchange.clock.info()
        if exercise is not None:
            err.print(f"EXERCISE MODE: {exercise.header()} (every response says so)", markup=False)
        _serve(app, host, port, log_level)


def _serve(app: App, host: str, port: int, log_level: str) -> None:
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from gsomia.api.app import create_app  # noqa: PLC0415

    uvicorn.run(
        create_app(app),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        cli(args=argv, prog_name="gsomia", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    finally:
        if _state.app is not None:
            _state.app.close()
            _state.app = None
    return 0
