"""``gsomia COMMAND --help`` explains every option (the README promises it): an option listed
with no text beside it leaves a user guessing what it takes and does. The analysis commands'
help starts a user off with examples, and each example runs."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import typer.main

from gsomia.cli import cli
from tests.unit.cli.cli_support import Gsomia


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    subcommands = getattr(command, "commands", None)  # typer's own click: no isinstance with click's
    if subcommands:
        return [pair for name, sub in subcommands.items() for pair in _commands(sub, (*path, name))]
    return [(" ".join(path), command)]


def test_every_option_of_every_command_has_help() -> None:
    commands = _commands(typer.main.get_command(cli))
    assert len(commands) > 40  # the walk reached the subcommands
    silent = [
        f"gsomia {name} {param.opts[0]}"
        for name, command in commands
        for param in command.params
        if param.param_type_name == "option" and not (getattr(param, "help", None) or "").strip()
    ]
    assert silent == [], silent


@pytest.mark.parametrize("command", ["status", "route", "coverage", "gaps", "stats", "whatif", "report"])
def test_the_analysis_commands_help_shows_examples_that_run(gsomia: Gsomia, command: str) -> None:
    # their help explained the options but showed no command line to start from
    shown = gsomia(command, "--help")
    assert shown.code == 0, shown.err
    text = shown.out.replace("\\\n", " ")  # an example continued on the next line
    examples = [line.strip().removeprefix("e.g.").strip() for line in text.splitlines()]
    examples = [line for line in examples if line.startswith(f"gsomia {command}")]
    assert examples, shown.out
    for example in examples:
        run = gsomia(*shlex.split(example)[1:])
        assert run.code == 0, (example, run.err)
        assert run.out.strip(), example
