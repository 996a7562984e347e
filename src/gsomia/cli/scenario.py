"""``gsomia scenario``: validate, load, describe and generate scenario files.

``validate``, ``schema``, ``synthetic`` and ``list`` need no database. Errors and exit codes
come from :mod:`gsomia.cli` (one table for the whole command line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gsomia.cli import common
from gsomia.cli.options import AsJson
from gsomia.errors import GsomiaError, InvalidInput, ValidationFailed

scenario_cli = typer.Typer(
    help="Validate, load and describe scenario files.", no_args_is_help=True, rich_markup_mode=None
)


@scenario_cli.command("validate")
def scenario_validate(
    file: Annotated[str, typer.Argument(help="Scenario file, or the name of a bundled scenario.")],
    as_json: AsJson = False,
) -> None:
    """Check a scenario file and list every problem as FILE:LINE: message. Loads nothing."""
    from gsomia.services.analysis.scenarios import ScenarioService  # noqa: PLC0415 - no database needed

    try:
        loaded = ScenarioService.validate(file)
    except ValidationFailed as e:
        if as_json:
            common.emit_json(
                {
                    "valid": False,
                    "problems": [
                        {"file": p.file, "line": p.line, "path": p.path, "message": p.message} for p in e.problems
                    ],
                }
            )
            raise typer.Exit(common.EXIT_CODES[ValidationFailed]) from None
        common.fail(e)
    except GsomiaError as e:
        common.fail(e)
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
        common.emit_json(summary)
    else:
        common.out.print(
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
    with common.errors():
        app = common.app(creates=True)
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
            common.emit_json(data)
        else:
            common.out.print(
                f"{s.name}: {outcome.outcome} ({s.events} events, {s.reports} reports, {s.provisions} provisions) in {app.store.describe()}",
                markup=False,
            )


@scenario_cli.command("schema")
def scenario_schema() -> None:
    """Print the JSON Schema of scenario files."""
    from gsomia.services.analysis.scenarios import ScenarioService  # noqa: PLC0415 - no database needed

    common.emit_json(ScenarioService.schema())


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

    with common.errors():
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
        common.err.print(
            f"wrote {out_file}: {parties} parties, {len(doc['agreements'])} agreements, {len(doc['events'])} events",
            markup=False,
        )


@scenario_cli.command("list")
def scenario_list(as_json: AsJson = False) -> None:
    """List the scenarios bundled with gsomia."""
    from gsomia.scenario.loader import bundled_scenarios  # noqa: PLC0415

    found = {k: str(v) for k, v in bundled_scenarios().items()}
    if as_json:
        common.emit_json(found)
    else:
        for name, path in found.items():
            common.out.print(f"{name}\t{path}", markup=False)
