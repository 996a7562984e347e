"""The analysis commands: ``status``, ``route``, ``coverage``, ``gaps``, ``stats`` and ``whatif``.

Each parses its options, asks the analysis service one question (under a what-if, if one is
given) and renders the answer as text or ``--json``. Errors and exit codes come from
:mod:`gsomia.cli` (one table for the whole command line).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gsomia.bootstrap import App
from gsomia.cli import common
from gsomia.cli.options import AddEvent, AsJson, At, DropEvent, Pair, PeriodEnd, PeriodStart, Topic, WhatIfFile
from gsomia.domain.coverage import Flow
from gsomia.domain.instants import format_duration, iso
from gsomia.domain.record import Caveats, WhatIf
from gsomia.errors import InvalidInput
from gsomia.services.analysis import presenters as views
from gsomia.services.analysis.service import WhatIfSpec


def read_whatif(app: App, file: Path | None, add: list[str] | None, drop: list[str] | None) -> WhatIf:
    """The what-if of ``--whatif``, ``--add-event`` and ``--drop-event`` (empty if none is given).

    Raises:
        InvalidInput: the file cannot be read, or an event spec is malformed.
        ValidationFailed: the what-if file has problems.
        UnknownEntity: an event names an unknown agreement or party.
    """
    text = None
    if file is not None:
        from gsomia.scenario.loader import read_file  # noqa: PLC0415 - only when a file is given

        text = read_file(file)
    return app.analysis.whatif(WhatIfSpec(text, str(file or ""), tuple(add or ()), tuple(drop or ())))


@contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for long pair-level work (only on a terminal)."""
    if total < 2000 or not common.err.is_terminal:
        yield None
        return
    from rich.progress import Progress  # noqa: PLC0415

    with Progress(console=common.err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _zone(app: App) -> str:
    return app.analysis.compiled().record.timezone


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
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at, agreement=agreement)
        rows = app.analysis.status(when, w, agreement)
        if as_json:
            common.emit_json([views.status_json(s) for s in rows])
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
        common.out.print(t)


def _caveats(rel_to: str | None, noforn: bool, orcon: bool) -> Caveats:
    rel = frozenset(p.strip().upper() for p in rel_to.split(",") if p.strip()) if rel_to else None
    return Caveats(rel_to=rel, noforn=noforn, orcon=orcon)


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
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
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
            common.emit_json(views.route_json(r, z))
            return
        head = {"direct": "[green]DIRECT[/green]", "relay": "[yellow]RELAY[/yellow]", "deny": "[red]DENY[/red]"}[
            str(r.decision)
        ]
        common.out.print(
            f"{head} {originator.upper()} → {recipient.upper()} · {topic} · {level} · {iso(when, z)}"
            + (f" · what-if: {w.describe()}" if not w.empty else "")
        )
        if r.allowed:
            common.out.print(f"  path: {' → '.join(r.path)} under {', '.join(r.agreements)}", markup=False)
            if r.marking:
                common.out.print(
                    f"  recipient marks it: {r.marking.banner()} (common level {r.marking.common_level})", markup=False
                )
            for leg in r.legs:
                common.out.print(
                    f"  leg {leg.sender}→{leg.receiver} under {leg.agreement} at {iso(leg.at, z)}: {leg.marking.level} → {leg.marking.recipient_level}",
                    markup=False,
                )
            if r.consent_required:
                kind = "for this very report (ORCON)" if r.per_report_consent else "standing or for this report"
                common.out.print(
                    f"  consent: the originator's prior written consent is required ({kind})", markup=False
                )
            if r.delay:
                common.out.print(f"  delay: +{format_duration(r.delay)}", markup=False)
            for a in r.assumptions:
                common.out.print(f"  assumption: {a}", markup=False)
        label = "why not a better route" if r.allowed else "reasons"
        if r.reasons:
            common.out.print(f"  {label}:")
            for reason in r.reasons:
                common.out.print(f"    - {reason}", markup=False)


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


def coverage(
    at: At = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="One topic (default: every topic of the catalogue).")
    ] = None,
    pair: Pair = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """For every ordered pair of parties and topic at an instant: direct, relay via a hub
    (+ modelled delay, marked *), or none."""
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
        when = app.analysis.instant(at)
        with _progress(app.analysis.pair_count(pair), "coverage") as progress:
            rows = app.analysis.coverage(when, topic=topic, pair=pair, whatif=w, progress=progress)
        if as_json:
            common.emit_json([views.flow_json(f) for f in rows])
            return
        common.out.print(
            f"Coverage at {iso(when, _zone(app))}" + (f" — what-if: {w.describe()}" if not w.empty else ""),
            markup=False,
        )
        for t in sorted({f.topic for f in rows}):
            common.out.print(_coverage_table(rows, t))
        common.out.print("* relay delays are modelling assumptions (sources give no figure).", markup=False)


def gaps(
    start: PeriodStart = None,
    end: PeriodEnd = None,
    pair: Pair = None,
    topic: Topic = None,
    as_json: AsJson = False,
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
) -> None:
    """Every interval with no route at all, per pair and topic, computed exactly from the
    instants at which agreements change (never by sampling days)."""
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
        if (start is None) != (end is None):
            raise InvalidInput("give both --from and --to, or neither (the scenario's window)")
        lo, hi = (app.analysis.instant(start), app.analysis.instant(end)) if start and end else app.analysis.window()
        with _progress(app.analysis.pair_count(pair), "gaps") as progress:
            rows = app.analysis.gaps(lo, hi, topic=topic, pair=pair, whatif=w, progress=progress)
        z = _zone(app)
        if as_json:
            common.emit_json([views.gap_json(g, z) for g in rows])
            return
        t = Table(title=f"Gaps {iso(lo, z)} → {iso(hi, z)}" + (f" — what-if: {w.describe()}" if not w.empty else ""))
        for col in ("from", "to", "topic", "start", "end"):
            t.add_column(col)
        for g in rows:
            t.add_row(g.originator, g.recipient, g.topic, iso(g.start, z) or "", iso(g.end, z) or "")
        common.out.print(t)
        common.out.print(f"{len(rows)} gap interval(s).", markup=False)


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
    with common.errors():
        app = common.app()
        when = app.analysis.instant(at, agreement=agreement)
        rows = app.analysis.stats(agreement, when)
        rec = app.analysis.compiled().record
        if as_json:
            data = [views.stats_json(s, rec.agreements[s.agreement].timezone) for s in rows]
            common.emit_json(data[0] if agreement else data)
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
            common.out.print(t)
            tr = s.trend
            p = f"p = {tr.p_value:.3f}" if tr.p_value is not None else "no p-value"
            common.out.print(f"Trend: {tr.method}; S = {tr.statistic}, {p}, {tr.direction}. {tr.note}.", markup=False)
            if s.missing_years:
                common.out.print(
                    f"Years with no record (unknown, not zero): {', '.join(s.missing_years)}", markup=False
                )


def whatif_cmd(
    whatif: WhatIfFile = None,
    add_event: AddEvent = None,
    drop_event: DropEvent = None,
    start: PeriodStart = None,
    end: PeriodEnd = None,
    parties: Annotated[
        str | None, typer.Option("--parties", help="Only flows among these parties, comma-separated (e.g. JPN,KOR).")
    ] = None,
    topic: Topic = None,
    as_json: AsJson = False,
) -> None:
    """Compare the record with and without a what-if: flows rerouted or stopped (with their
    intervals), gaps before and after, and past reports whose route would have changed."""
    with common.errors():
        app = common.app()
        w = read_whatif(app, whatif, add_event, drop_event)
        if w.empty:
            raise InvalidInput("give --whatif FILE, --add-event or --drop-event")
        lo = app.analysis.instant(start) if start else None
        hi = app.analysis.instant(end) if end else None
        chosen = [p.strip().upper() for p in parties.split(",")] if parties else None
        c = app.analysis.compare(w, start=lo, end=hi, parties=chosen, topic=topic)
        rec = app.analysis.compiled().record
        if as_json:
            common.emit_json(views.comparison_json(c, rec))
            return
        z = rec.timezone
        common.out.print(f"What-if {w.name}: {w.describe()}  ({iso(c.start, z)} → {iso(c.end, z)})", markup=False)
        t = Table()
        for col in ("from", "to", "topic", "change", "before", "after", "start", "end"):
            t.add_column(col)
        for x in c.changes:
            after = x.after + (f" via {x.after_via} +{format_duration(x.after_delay)}*" if x.after == "relay" else "")
            before = x.before + (f" via {x.before_via}" if x.before_via else "")
            t.add_row(
                x.originator, x.recipient, x.topic, x.kind, before, after, iso(x.start, z) or "", iso(x.end, z) or ""
            )
        common.out.print(t)
        common.out.print(
            f"Gaps: {len(c.gaps_before)} before, {len(c.gaps_after)} after. Past reports replayed: {len(c.reports)}, "
            f"route changed: {len(c.changed_reports)}.",
            markup=False,
        )
        for rr in c.changed_reports:
            common.out.print(
                f"  {rr.report.id} → {rr.recipient}: {rr.before.decision} ⇒ {rr.after.decision} {'→'.join(rr.after.path)}",
                markup=False,
            )
        for ev, why in c.no_longer_apply:
            common.out.print(f"  recorded event {ev} no longer applies: {why}", markup=False)
        common.out.print("* relay delays are modelling assumptions.", markup=False)
