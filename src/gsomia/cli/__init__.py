"""The ``gsomia`` command line: parse, call one service, render (text or ``--json``).

Exit codes live here and only here (see ``EXIT_CODES``); every error is one clear line on
stderr, except a validation failure, which lists every problem with its file and line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gsomia import __version__
from gsomia.bootstrap import App, Settings, build
from gsomia.cli.exchange import client_cli, keys_cli, principals_cli
from gsomia.cli.ledger import ledger_cli
from gsomia.domain.coverage import Flow
from gsomia.domain.instants import format_duration, iso
from gsomia.domain.record import Caveats, WhatIf
from gsomia.domain.whatif import FlowChange
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
from gsomia.services import views
from gsomia.services.analysis import ImpactReport, WhatIfSpec

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
scenario_cli = typer.Typer(
    help="Validate, load and describe scenario files.", no_args_is_help=True, rich_markup_mode=None
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


# --- shared options ------------------------------------------------------------------------

WhatIfFile = Annotated[
    Path | None,
    typer.Option(
        "--whatif", help="YAML file of hypothetical events (add:) and recorded events to drop (drop:).", exists=False
    ),
]
AddEvent = Annotated[
    list[str] | None,
    typer.Option(
        "--add-event",
        help="Hypothetical event 'AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]', e.g. 'JPN-KOR-GSOMIA notice 2019-08-25T12:00+09:00 by KOR'. Repeatable.",
    ),
]
DropEvent = Annotated[
    list[str] | None,
    typer.Option("--drop-event", help="Id of a recorded event to leave out, e.g. jpn-kor-2019-suspension. Repeatable."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (a stable contract) instead of text.")]
At = Annotated[
    str | None,
    typer.Option(
        "--at",
        help="Instant: ISO 8601 with offset, or a date read in the agreement's (else the scenario's) zone. Default: now.",
    ),
]


def _whatif(app: App, file: Path | None, add: list[str] | None, drop: list[str] | None) -> WhatIf:
    text = None
    if file is not None:
        from gsomia.scenario.loader import read_file  # noqa: PLC0415 - only when a file is given

        text = read_file(file)
    return app.analysis.whatif(WhatIfSpec(text, str(file or ""), tuple(add or ()), tuple(drop or ())))


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for long pair-level work (only on a terminal)."""
    if total < 2000 or not err.is_terminal:
        yield None
        return
    from rich.progress import Progress  # noqa: PLC0415

    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _zone(app: App) -> str:
    return app.analysis.compiled().record.timezone


# --- demo, report ----------------------------------------------------------------------------


@cli.command()
def demo(
    as_json: AsJson = False,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Then serve the dashboard, the API and the exchange.")
    ] = True,
    host: Annotated[str, typer.Option("--host", envvar="GSOMIA_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="GSOMIA_PORT", help="Port to listen on.")] = 8000,
) -> None:
    """The whole tour: load the bundled scenario 'japan-korea-2019', print the impact report, issue
    demo credentials (JPN, KOR, USA, an operator, an auditor) and serve the dashboard and the
    exchange on HOST:PORT until interrupted (--no-serve stops after the credentials)."""
    from gsomia.services.identity import issue_demo_credentials  # noqa: PLC0415

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
            _render_report(report)
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


@cli.command()
def report(
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """The impact report: the agreement's derived timeline and deadlines, exchange statistics with
    their trend test, and what the scenario's question (or your what-if) changes: flows rerouted,
    flows stopped, gap intervals and past reports affected."""
    with _errors():
        app = _app()
        w = _whatif(app, whatif, add_event, drop_event)
        r = app.analysis.report(w if not w.empty else None)
        if as_json:
            _emit_json(views.report_json(r))
        else:
            _render_report(r)


def _grouped(changes: list[FlowChange]) -> dict[tuple[Any, ...], list[str]]:
    """Changes that differ only by topic, grouped: one line per pair, route and interval."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for x in changes:
        key = (x.originator, x.recipient, x.after_via, x.after_delay, x.after_agreement, x.start, x.end)
        groups.setdefault(key, []).append(x.topic)
    return groups


def _render_report(r: ImpactReport) -> None:
    rec = r.record
    a = rec.agreements[r.question.agreement]
    z = a.timezone
    out.rule(f"gsomia impact report: {rec.title or rec.name}")
    out.print(
        f"scenario {rec.name} · database {r.database} · generated {iso(r.generated_at, rec.timezone)}", markup=False
    )
    out.print()
    out.print(f"[bold]1. {a.id}: derived timeline[/bold] ({a.name})")
    t = Table(show_lines=False)
    for col in ("instant", "event", "state", "ends at", "term end", "notice deadline"):
        t.add_column(col)
    for s in r.timeline:
        cause = next((e for e in s.events if e.at == s.at), None)
        label = f"{cause.id} ({cause.kind}{' by ' + cause.by if cause.by else ''})" if cause else "(derived end)"
        t.add_row(
            iso(s.at, z) or "",
            label,
            str(s.state),
            iso(s.ends_at, z) or "—",
            iso(s.term[1], z) if s.term else "—",
            s.notice_deadline.isoformat() if s.notice_deadline else "—",
        )
    out.print(t)
    if r.deadlines:
        out.print(
            "Term ends and notice deadlines (notice must be received by the deadline to end the agreement at that term end):"
        )
        out.print("  " + "; ".join(f"{(iso(end, z) or '')[:10]} ← {d}" for end, d in r.deadlines), markup=False)
    out.print()
    out.print("[bold]2. Provisions under the agreement, by year[/bold]")
    for label, st in (
        ("as known at " + (iso(r.question.stats_at, z) or ""), r.stats_then),
        ("as known now", r.stats_now),
    ):
        if st is None:
            continue
        years = ", ".join(f"{y}: {n}" for y, n in st.by_year.items())
        out.print(f"  {label}: {years}; total {st.total}", markup=False)
        tr = st.trend
        p = f"p = {tr.p_value:.3f}" if tr.p_value is not None else "no p-value"
        out.print(f"    {tr.method}: S = {tr.statistic}, {p}, direction {tr.direction}. {tr.note}.", markup=False)
        if st.partial_years:
            out.print(
                f"    partial years: {', '.join(st.partial_years)}; years with no record (unknown, not zero): {', '.join(st.missing_years) or 'none'}",
                markup=False,
            )
    out.print()
    c = r.whatif
    out.print(f"[bold]3. {r.question.title}[/bold] — what-if: {c.whatif.describe()}", markup=True)
    pairs = " and ".join(f"{o}→{d}" for o, d in c.pairs)
    out.print(f"  flows {pairs}, {iso(c.start, rec.timezone)} to {iso(c.end, rec.timezone)}", markup=False)
    z0 = rec.timezone

    def until(end: datetime) -> str:
        return "the end of the analysis window" if end == c.end else (iso(end, z0) or "")

    if c.rerouted:
        out.print("  [bold]Rerouted[/bold] (direct → relay; each relay needs the originator's prior written consent):")
        for (o, d, via, delay, arr_id, start, end), topics in _grouped(c.rerouted).items():
            arr = rec.agreements.get(arr_id or "")
            consent = "consent required" if arr is None or arr.consent_required else "no consent needed"
            out.print(
                f"    {o}→{d} via {via} under {arr_id} (+{format_duration(delay)}, a modelling assumption), {consent}, "
                f"from {iso(start, z0)} to {until(end)}: {', '.join(topics)}",
                markup=False,
            )
    if c.stopped:
        out.print("  [bold]No route at all[/bold] (gaps opened by the what-if):")
        for (o, d, _via, _delay, _arr, start, end), topics in _grouped(c.stopped).items():
            out.print(f"    {o}→{d} from {iso(start, z0)} to {until(end)}: {', '.join(topics)}", markup=False)
    if not c.changes:
        out.print("  No flow between these parties changes.")
    changed = c.changed_reports
    out.print(f"  Past reports replayed: {len(c.reports)}; route changed for {len(changed)}:")
    for rr in changed:
        out.print(
            f"    {rr.report.id} ({rr.report.originator}→{rr.recipient}, {rr.report.topic} {rr.report.level}): "
            f"{rr.before.decision} {'→'.join(rr.before.path)} ⇒ {rr.after.decision} {'→'.join(rr.after.path)}",
            markup=False,
        )
    for ev, why in c.no_longer_apply:
        out.print(f"  Recorded event {ev} no longer applies under this what-if: {why}", markup=False)
    out.print()
    out.print("[bold]4. The recorded history[/bold]: gaps between these parties")
    if r.recorded_gaps:
        for g in r.recorded_gaps:
            out.print(
                f"    {g.originator}→{g.recipient} {g.topic}: {iso(g.start, rec.timezone)} → {iso(g.end, rec.timezone)}",
                markup=False,
            )
    else:
        out.print("    none")
    out.print()
    out.print("[bold]Assumptions[/bold]")
    for text in r.assumptions:
        out.print(f"  - {text}", markup=False)


# --- scenario --------------------------------------------------------------------------------


@scenario_cli.command("validate")
def scenario_validate(
    file: Annotated[str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")],
    as_json: AsJson = False,
) -> None:
    """Check a scenario file and list every problem as FILE:LINE: message. Loads nothing."""
    from gsomia.services.scenarios import ScenarioService  # noqa: PLC0415 - no database needed

    try:
        loaded = ScenarioService.validate(file)
    except ValidationFailed as e:
        if as_json:
            _emit_json(
                {
                    "valid": False,
                    "problems": [
                        {"file": p.file, "line": p.line, "path": p.path, "message": p.message} for p in e.problems
                    ],
                }
            )
            raise typer.Exit(EXIT_CODES[ValidationFailed]) from None
        _fail(e)
    except GsomiaError as e:
        _fail(e)
    rec = loaded.record
    summary = {
        "valid": True,
        "name": rec.name,
        "parties": len(rec.parties),
        "agreements": len(rec.agreements),
        "events": len(rec.events),
        "reports": len(rec.reports),
        "provisions": len(rec.provisions),
        "digest": loaded.digest,
    }
    if as_json:
        _emit_json(summary)
    else:
        out.print(
            f"{file}: valid — {rec.name}: {len(rec.parties)} parties, {len(rec.agreements)} agreements, "
            f"{len(rec.events)} events, {len(rec.reports)} reports, {len(rec.provisions)} provisions",
            markup=False,
        )


@scenario_cli.command("load")
def scenario_load(
    file: Annotated[str, typer.Argument(help="Scenario file, or the name of a bundled scenario (japan-korea-2019).")],
    replace: Annotated[bool, typer.Option("--replace", help="Discard another scenario held by this database.")] = False,
    as_json: AsJson = False,
) -> None:
    """Validate and store a scenario: all-or-nothing, and loading it again changes nothing."""
    with _errors():
        app = _app()
        _loaded, outcome = app.scenarios.load(file, replace=replace)
        s = outcome.summary
        data = {
            "outcome": outcome.outcome,
            "name": s.name,
            "digest": s.digest,
            "events": s.events,
            "operator_events": s.operator_events,
            "reports": s.reports,
            "provisions": s.provisions,
            "database": app.store.describe(),
        }
        if as_json:
            _emit_json(data)
        else:
            out.print(
                f"{s.name}: {outcome.outcome} ({s.events} events, {s.reports} reports, {s.provisions} provisions) in {app.store.describe()}",
                markup=False,
            )


@scenario_cli.command("schema")
def scenario_schema() -> None:
    """Print the JSON Schema of scenario files."""
    from gsomia.services.scenarios import ScenarioService  # noqa: PLC0415 - no database needed

    _emit_json(ScenarioService.schema())


@scenario_cli.command("synthetic")
def scenario_synthetic(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="File to write (YAML).")],
    parties: Annotated[int, typer.Option(help="Number of parties.")] = 200,
    agreements: Annotated[int, typer.Option(help="Number of agreements (bilateral plus hub arrangements).")] = 2000,
    years: Annotated[int, typer.Option(help="Years of events, from 2015.")] = 10,
    topics: Annotated[int, typer.Option(help="Number of topics.")] = 10,
    hubs: Annotated[int, typer.Option(help="How many of the agreements are hub arrangements.")] = 40,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same network).")] = 1,
) -> None:
    """Write a synthetic network (for benchmarks and load tests; no fact in it is real)."""
    import yaml  # noqa: PLC0415

    from gsomia.scenario.synthetic import synthetic_document  # noqa: PLC0415

    with _errors():
        try:
            doc = synthetic_document(
                parties=parties, agreements=agreements, years=years, topics=topics, hubs=hubs, seed=seed
            )
        except ValueError as e:
            raise InvalidInput(str(e)) from e
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        text = yaml.dump(doc, Dumper=dumper, allow_unicode=True, sort_keys=False, width=200)
        try:
            out_file.write_text(text, encoding="utf-8")
        except OSError as e:
            raise InvalidInput(f"cannot write {out_file}: {e.strerror}") from e
        err.print(
            f"wrote {out_file}: {parties} parties, {len(doc['agreements'])} agreements, {len(doc['events'])} events",
            markup=False,
        )


@scenario_cli.command("list")
def scenario_list(as_json: AsJson = False) -> None:
    """List the scenarios bundled with gsomia."""
    from gsomia.scenario.loader import bundled_scenarios  # noqa: PLC0415

    found = {k: str(v) for k, v in bundled_scenarios().items()}
    if as_json:
        _emit_json(found)
    else:
        for name, path in found.items():
            out.print(f"{name}\t{path}", markup=False)


# --- read commands ---------------------------------------------------------------------------


@cli.command()
def status(
    at: At = None,
    agreement: Annotated[str | None, typer.Option("--agreement", "-a", help="Only this agreement.")] = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """Each agreement's derived state at an instant: in force, notice pending (and when it ends),
    notice suspended, terminated or expired, with the current term's end and notice deadline."""
    with _errors():
        app = _app()
        w = _whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at, agreement=agreement)
        rows = app.analysis.status(when, w, agreement)
        if as_json:
            _emit_json([views.status_json(s) for s in rows])
            return
        t = Table(
            title=f"Agreements at {iso(when, _zone(app))}" + (f" — what-if: {w.describe()}" if not w.empty else "")
        )
        for col in ("agreement", "state", "in force", "since", "term end", "notice deadline", "ends at"):
            t.add_column(col)
        for s in rows:
            z = s.agreement.timezone
            t.add_row(
                s.agreement.id,
                str(s.state),
                "yes" if s.in_force else "no",
                iso(s.since, z) or "—",
                iso(s.term[1], z) if s.term else "—",
                s.notice_deadline.isoformat() if s.notice_deadline else "—",
                iso(s.ends_at, z) or "—",
            )
        out.print(t)


def _caveats(rel_to: str | None, noforn: bool, orcon: bool) -> Caveats:
    rel = frozenset(p.strip().upper() for p in rel_to.split(",") if p.strip()) if rel_to else None
    return Caveats(rel_to=rel, noforn=noforn, orcon=orcon)


@cli.command()
def route(
    originator: Annotated[str, typer.Argument(help="Originating party, e.g. JPN.")],
    recipient: Annotated[str, typer.Argument(help="Recipient party, e.g. KOR.")],
    topic: Annotated[str, typer.Option("--topic", help="Topic, e.g. dprk.missile.launch.")],
    level: Annotated[str, typer.Option("--level", help="The originator's national level, e.g. 極秘.")],
    at: At = None,
    rel_to: Annotated[
        str | None, typer.Option("--rel-to", help="Caveat: releasable only to these parties (comma-separated).")
    ] = None,
    noforn: Annotated[bool, typer.Option("--noforn", help="Caveat: no foreign release.")] = False,
    orcon: Annotated[
        bool, typer.Option("--orcon", help="Caveat: originator-controlled (every relay needs consent for this report).")
    ] = False,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """Decide one release: direct, relayed through a hub (with consent and modelled delay), or
    denied, with every reason citing the rule and the agreement article behind it."""
    with _errors():
        app = _app()
        w = _whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at)
        r = app.analysis.route(
            originator.upper(),
            recipient.upper(),
            topic=topic,
            level=level,
            at=when,
            caveats=_caveats(rel_to, noforn, orcon),
            whatif=w,
        )
        z = _zone(app)
        if as_json:
            _emit_json(views.route_json(r, z))
            return
        head = {"direct": "[green]DIRECT[/green]", "relay": "[yellow]RELAY[/yellow]", "deny": "[red]DENY[/red]"}[
            str(r.decision)
        ]
        out.print(
            f"{head} {originator.upper()} → {recipient.upper()} · {topic} · {level} · {iso(when, z)}"
            + (f" · what-if: {w.describe()}" if not w.empty else "")
        )
        if r.allowed:
            out.print(f"  path: {' → '.join(r.path)} under {', '.join(r.agreements)}", markup=False)
            if r.marking:
                out.print(
                    f"  recipient marks it: {r.marking.banner()} (common level {r.marking.common_level})", markup=False
                )
            for leg in r.legs:
                out.print(
                    f"  leg {leg.sender}→{leg.receiver} under {leg.agreement} at {iso(leg.at, z)}: {leg.marking.level} → {leg.marking.recipient_level}",
                    markup=False,
                )
            if r.consent_required:
                kind = "for this very report (ORCON)" if r.per_report_consent else "standing or for this report"
                out.print(f"  consent: the originator's prior written consent is required ({kind})", markup=False)
            if r.delay:
                out.print(f"  delay: +{format_duration(r.delay)}", markup=False)
            for a in r.assumptions:
                out.print(f"  assumption: {a}", markup=False)
        label = "why not a better route" if r.allowed else "reasons"
        if r.reasons:
            out.print(f"  {label}:")
            for reason in r.reasons:
                out.print(f"    - {reason}", markup=False)


def _coverage_table(rows: list[Flow], topic: str) -> Table:
    parties = sorted({f.originator for f in rows} | {f.recipient for f in rows})
    cell = {(f.originator, f.recipient): f for f in rows if f.topic == topic}
    t = Table(title=f"{topic}: rows originate, columns receive")
    t.add_column("from \\ to")
    for p in parties:
        t.add_column(p)
    for o in parties:
        values = []
        for r in parties:
            f = cell.get((o, r))
            if o == r or f is None:
                values.append("·")
            elif f.route == "direct":
                values.append("[green]direct[/green]")
            elif f.route == "relay":
                values.append(f"[yellow]via {f.via} +{format_duration(f.delay)}*[/yellow]")
            else:
                values.append("[red]none[/red]")
        t.add_row(o, *values)
    return t


@cli.command()
def coverage(
    at: At = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="One topic (default: every topic of the catalogue).")
    ] = None,
    pair: Annotated[str | None, typer.Option("--pair", help="One ordered pair, e.g. JPN,KOR.")] = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """For every ordered pair of parties and topic at an instant: direct, relay via a hub
    (+ modelled delay, marked *), or none."""
    with _errors():
        app = _app()
        w = _whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at)
        with _progress(app.analysis.pair_count(pair), "coverage") as progress:
            rows = app.analysis.coverage(when, topic=topic, pair=pair, whatif=w, progress=progress)
        if as_json:
            _emit_json([views.flow_json(f) for f in rows])
            return
        out.print(
            f"Coverage at {iso(when, _zone(app))}" + (f" — what-if: {w.describe()}" if not w.empty else ""),
            markup=False,
        )
        for t in sorted({f.topic for f in rows}):
            out.print(_coverage_table(rows, t))
        out.print("* relay delays are modelling assumptions (sources give no figure).", markup=False)


@cli.command()
def gaps(
    start: Annotated[
        str | None, typer.Option("--from", help="Start of the period (default: the scenario's window).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the period (default: the scenario's window).")] = None,
    pair: Annotated[str | None, typer.Option("--pair", help="One ordered pair, e.g. JPN,KOR.")] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="One topic (default: every topic).")] = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """Every interval with no route at all, per pair and topic, computed exactly from the
    instants at which agreements change (never by sampling days)."""
    with _errors():
        app = _app()
        w = _whatif(app, whatif, add_event, drop_event)
        if (start is None) != (end is None):
            raise InvalidInput("give both --from and --to, or neither (the scenario's window)")
        lo, hi = (app.analysis.instant(start), app.analysis.instant(end)) if start and end else app.analysis.window()
        with _progress(app.analysis.pair_count(pair), "gaps") as progress:
            rows = app.analysis.gaps(lo, hi, topic=topic, pair=pair, whatif=w, progress=progress)
        z = _zone(app)
        if as_json:
            _emit_json([views.gap_json(g, z) for g in rows])
            return
        t = Table(title=f"Gaps {iso(lo, z)} → {iso(hi, z)}" + (f" — what-if: {w.describe()}" if not w.empty else ""))
        for col in ("from", "to", "topic", "start", "end"):
            t.add_column(col)
        for g in rows:
            t.add_row(g.originator, g.recipient, g.topic, iso(g.start, z) or "", iso(g.end, z) or "")
        out.print(t)
        out.print(f"{len(rows)} gap interval(s).", markup=False)


@cli.command()
def stats(
    agreement: Annotated[
        str | None,
        typer.Option("--agreement", "-a", help="One agreement (default: every agreement with recorded provisions)."),
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="The record as known at this instant (default: now).")] = None,
    as_json: AsJson = False,
) -> None:
    """Information provided under an agreement, by year (and month where dated), with a
    Mann–Kendall trend test whose p-value is exact for few years."""
    with _errors():
        app = _app()
        when = app.analysis.instant(at, agreement=agreement)
        rows = app.analysis.stats(agreement, when)
        rec = app.analysis.compiled().record
        if as_json:
            data = [views.stats_json(s, rec.agreements[s.agreement].timezone) for s in rows]
            _emit_json(data[0] if agreement else data)
            return
        for s in rows:
            z = rec.agreements[s.agreement].timezone
            t = Table(title=f"Provisions under {s.agreement} as known at {iso(s.at, z)}")
            t.add_column("year")
            t.add_column("count", justify="right")
            for y, n in s.by_year.items():
                mark = " (partial year)" if y in s.partial_years else ""
                t.add_row(y + mark, str(n))
            t.add_row("total", str(s.total))
            out.print(t)
            tr = s.trend
            p = f"p = {tr.p_value:.3f}" if tr.p_value is not None else "no p-value"
            out.print(f"Trend: {tr.method}; S = {tr.statistic}, {p}, {tr.direction}. {tr.note}.", markup=False)
            if s.missing_years:
                out.print(f"Years with no record (unknown, not zero): {', '.join(s.missing_years)}", markup=False)


@cli.command("whatif")
def whatif_cmd(
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start of the period (default: the scenario's window).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the period (default: the scenario's window).")] = None,
    parties: Annotated[
        str | None, typer.Option("--parties", help="Only flows among these parties, comma-separated (e.g. JPN,KOR).")
    ] = None,
    topic: Annotated[str | None, typer.Option("--topic", help="One topic (default: every topic).")] = None,
    as_json: AsJson = False,
) -> None:
    """Compare the record with and without a what-if: flows rerouted or stopped (with their
    intervals), gaps before and after, and past reports whose route would have changed."""
    with _errors():
        app = _app()
        w = _whatif(app, whatif, add_event, drop_event)
        if w.empty:
            raise InvalidInput("give --whatif FILE, --add-event or --drop-event")
        lo = app.analysis.instant(start) if start else None
        hi = app.analysis.instant(end) if end else None
        chosen = [p.strip().upper() for p in parties.split(",")] if parties else None
        c = app.analysis.compare(w, start=lo, end=hi, parties=chosen, topic=topic)
        rec = app.analysis.compiled().record
        if as_json:
            _emit_json(views.comparison_json(c, rec))
            return
        z = rec.timezone
        out.print(f"What-if {w.name}: {w.describe()}  ({iso(c.start, z)} → {iso(c.end, z)})", markup=False)
        t = Table()
        for col in ("from", "to", "topic", "change", "before", "after", "start", "end"):
            t.add_column(col)
        for x in c.changes:
            after = x.after + (f" via {x.after_via} +{format_duration(x.after_delay)}*" if x.after == "relay" else "")
            before = x.before + (f" via {x.before_via}" if x.before_via else "")
            t.add_row(
                x.originator, x.recipient, x.topic, x.kind, before, after, iso(x.start, z) or "", iso(x.end, z) or ""
            )
        out.print(t)
        out.print(
            f"Gaps: {len(c.gaps_before)} before, {len(c.gaps_after)} after. Past reports replayed: {len(c.reports)}, "
            f"route changed: {len(c.changed_reports)}.",
            markup=False,
        )
        for rr in c.changed_reports:
            out.print(
                f"  {rr.report.id} → {rr.recipient}: {rr.before.decision} ⇒ {rr.after.decision} {'→'.join(rr.after.path)}",
                markup=False,
            )
        for ev, why in c.no_longer_apply:
            out.print(f"  recorded event {ev} no longer applies: {why}", markup=False)
        out.print("* relay delays are modelling assumptions.", markup=False)


@cli.command()
def serve(
    host: Annotated[str, typer.Option("--host", envvar="GSOMIA_HOST", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="GSOMIA_PORT", help="Port to listen on.")] = 8000,
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
