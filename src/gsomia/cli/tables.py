"""Tables that never cut a value.

An id, an instant, a topic or an agreement id that is cut (``JPN-KOR…``) is worse than none:
pasted back, it names nothing. So every table the CLI prints goes through :func:`print_table`:

* when the output is not a terminal (a pipe, a log, a file) or ``--wide`` is given, the table is
  printed at its natural width, whatever ``COLUMNS`` says;
* in a terminal too narrow for it, the columns marked optional are left out first (the line
  under the table names them, and ``--wide`` shows them), then free text wraps between words;
  values marked whole (ids, instants, topics, states) are never wrapped or cut;
* if even that does not fit, each row is printed as a block of ``column: value`` lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gsomia.cli import common

Wide = Annotated[
    bool,
    typer.Option(
        "--wide", help="Show every column of the tables, however wide (the default when the output is not a terminal)."
    ),
]

Cell = str | Text


@dataclass(frozen=True, slots=True)
class Column:
    """A column: ``whole`` values are never wrapped (ids, instants, topics); ``drop`` > 0 marks a
    column left out in a narrow terminal, highest first; ``markup`` cells hold Rich markup."""

    name: str
    whole: bool = True
    drop: int = 0
    justify: Literal["left", "right"] = "left"
    markup: bool = False


def _text(cell: Cell, markup: bool) -> Text:
    if isinstance(cell, Text):
        return cell
    return Text.from_markup(cell) if markup else Text(cell)


def _longest_word(t: Text) -> int:
    return max((len(w) for w in t.plain.split()), default=0)


def _widest_line(t: Text) -> int:
    return max((Text(line).cell_len for line in t.plain.splitlines()), default=0)


def _build(columns: Sequence[Column], rows: Sequence[Sequence[Text]], fit: bool) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for i, c in enumerate(columns):
        widest = max([_widest_line(r[i]) for r in rows] + [len(c.name)])
        if c.whole or not fit:
            # min_width keeps Rich from shrinking (and so cutting) the column
            t.add_column(c.name, justify=c.justify, no_wrap=True, min_width=widest, overflow="fold")
        else:
            t.add_column(c.name, justify=c.justify, overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def _minimum(columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> int:
    """The narrowest the table can be without wrapping a whole value or breaking a word."""
    total = 0
    for i, c in enumerate(columns):
        cells = [r[i] for r in rows]
        head = len(c.name) if c.whole else max((len(w) for w in c.name.split()), default=0)
        width = max([(_widest_line(x) if c.whole else _longest_word(x)) for x in cells] + [head])
        total += width
    return total + 2 * max(len(columns) - 1, 0)


def _natural(columns: Sequence[Column], rows: Sequence[Sequence[Text]]) -> int:
    total = sum(max([_widest_line(r[i]) for r in rows] + [len(c.name)]) for i, c in enumerate(columns))
    return total + 2 * max(len(columns) - 1, 0)


def _full_width_console(width: int) -> Console:
    out = common.out
    return Console(
        width=width,
        highlight=False,
        soft_wrap=False,
        force_terminal=out.is_terminal,
        no_color=out.no_color,
        color_system=out.color_system,  # type: ignore[arg-type]  # a name Rich accepts back
        legacy_windows=False,
    )


def print_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    title: str | None = None,
    wide: bool = False,
    empty: str | None = None,
    key: int = 1,
) -> None:
    """Print ``rows`` under ``columns`` without cutting a value (see the module's docstring).

    ``key`` is how many leading columns name a row: they head its block when the rows are
    printed as blocks.
    """
    out = common.out
    if title:
        # above the table, not in it: a title wraps at the terminal's width, never the table's
        out.print(title, markup=False)
    if not rows and empty is not None:
        out.print(empty, markup=False)
        return
    texts = [[_text(cell, c.markup) for cell, c in zip(r, columns, strict=True)] for r in rows]
    natural = _natural(columns, texts)
    if wide or not out.is_terminal:
        table = _build(columns, texts, fit=False)
        _full_width_console(max(natural, out.width)).print(table)
        return
    width = out.width
    shown = list(range(len(columns)))
    hidden: list[str] = []
    for i in sorted((i for i, c in enumerate(columns) if c.drop), key=lambda i: -columns[i].drop):
        if _natural([columns[j] for j in shown], [[r[j] for j in shown] for r in texts]) <= width:
            break
        shown.remove(i)
        hidden.append(columns[i].name)
    cols = [columns[j] for j in shown]
    cells = [[r[j] for j in shown] for r in texts]
    if _minimum(cols, cells) <= width:
        out.print(_build(cols, cells, fit=True))
        if hidden:
            out.print(f"(not shown at this width: {', '.join(hidden)}; --wide shows every column)", markup=False)
        return
    _print_blocks(columns, texts, key)


def _print_blocks(columns: Sequence[Column], rows: Sequence[Sequence[Text]], key: int) -> None:
    """Each row as a block: its ``key`` values, then one ``column  value`` line per other column."""
    out = common.out
    rest = columns[key:]
    label = max((len(c.name) for c in rest), default=0)
    for n, r in enumerate(rows):
        if n:
            out.print()
        out.print(Text("  ").join(r[:key]))
        for c, cell in zip(rest, r[key:], strict=True):
            line = Text(f"  {c.name.ljust(label)}  ")
            line.append_text(cell)
            out.print(line)
