"""YAML with line numbers, and the problems found in a file, each with its line.

:func:`read_yaml` parses YAML into plain data and a map from every path in it to its line;
a :class:`Collector` turns a path into ``FILE:LINE`` when a problem is found there, so
validation lists every problem at once, each where it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from gsomia.errors import GsomiaError, Problem, ValidationFailed
from gsomia.scenario.model import PATTERN_HINTS

__all__ = ["Collector", "Path_", "pydantic_problems", "read_yaml"]

Path_ = tuple[str | int, ...]
_T = TypeVar("_T")


_ALIAS_BUDGET = 100_000

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when available


class _Loader(_Base):  # type: ignore[misc]
    """SafeLoader that keeps dates and times as strings: instants are parsed by gsomia,
    with their zones, not by YAML."""


# YAML 1.1 would read `on`, `no` or `NO` (Norway) as booleans, dates as timestamps, `1:19` as
# the sexagesimal 79, `010` as the octal 8, and `0x13`, `0b11` or `1_000` as numbers; gsomia
# reads booleans and numbers as the YAML 1.2 core schema does (true/false; decimal integers
# without a leading zero; decimal floats with a point or an exponent, .inf and .nan) and parses instants itself, with
# their zones. Anything else is a string, which a number field refuses with its line.
_REPLACED = (
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
)
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in _REPLACED] for k, v in _Base.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass
class _Walk:
    """What a walk of the node graph has seen: an alias shares its anchor's node, so a node met
    again on its own path is a cycle, and every node met counts against the budget that stops
    an alias bomb (nine aliases of nine aliases of … reach a billion values in a few lines)."""

    loader: _Loader
    lines: dict[Path_, int]
    budget: int
    open: set[int]


def _to_python(node: yaml.Node, path: Path_, walk: _Walk) -> Any:
    walk.lines[path] = node.start_mark.line + 1
    walk.budget -= 1
    if walk.budget < 0:
        raise ValidationFailed(
            [
                Problem(
                    "aliases expand to more values than the file could spell: write the values out",
                    _dotted(path),
                    walk.lines[path],
                )
            ]
        )
    if not isinstance(node, yaml.CollectionNode):
        return walk.loader.construct_object(node)
    if id(node) in walk.open:
        raise ValidationFailed(
            [Problem("an alias refers to a value that contains it", _dotted(path), walk.lines[path])]
        )
    walk.open.add(id(node))
    try:
        if isinstance(node, yaml.SequenceNode):
            return [_to_python(v, (*path, i), walk) for i, v in enumerate(node.value)]
        out: dict[Any, Any] = {}
        for k, v in node.value:
            if isinstance(k, yaml.CollectionNode):
                raise ValidationFailed(
                    [
                        Problem(
                            "a key must be a plain word, not a list or a mapping", _dotted(path), k.start_mark.line + 1
                        )
                    ]
                )
            key = walk.loader.construct_object(k)
            if key in out:
                raise ValidationFailed([Problem(f"duplicate key {key!r}", _dotted(path), k.start_mark.line + 1)])
            out[key] = _to_python(v, (*path, key), walk)
        return out
    finally:
        walk.open.discard(id(node))


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def read_yaml(text: str, file: str = "") -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text into Python data and a map from each path to its line.

    Raises:
        ValidationFailed: on a YAML syntax error, a duplicate key, an alias inside the value
            it names, or aliases that expand to far more values than the text spells.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        # Without aliases a file spells each value in a character at least; aliases may add as
        # many values again as _ALIAS_BUDGET, no more.
        walk = _Walk(loader, lines, len(text) + _ALIAS_BUDGET, set())
        data = _to_python(node, (), walk) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        raise ValidationFailed([Problem(f"YAML syntax: {e.problem}", "", mark.line + 1 if mark else None, file)]) from e
    except yaml.YAMLError as e:
        raise ValidationFailed([Problem(f"YAML: {e}", file=file)]) from e
    except ValidationFailed as e:
        raise ValidationFailed([Problem(p.message, p.path, p.line, file) for p in e.problems]) from e
    finally:
        loader.dispose()
    return data, lines


# --- problems ------------------------------------------------------------------------------


@dataclass
class Collector:
    """The problems found in one file, each placed at the line of the nearest path that has one.

    Attributes:
        file: the file's name, for messages.
        lines: the line of every path, from :func:`read_yaml` (empty for a stored document).
        problems: what was found so far.
    """

    file: str
    lines: dict[Path_, int]
    problems: list[Problem]

    def add(self, path: Path_, message: str) -> None:
        """Record a problem at ``path`` (or, if it has no line, at its nearest ancestor's)."""
        line = None
        p = path
        while True:
            if p in self.lines:
                line = self.lines[p]
                break
            if not p:
                break
            p = p[:-1]
        self.problems.append(Problem(message, _dotted(path), line, self.file))

    def guard(self, path: Path_, fn: Callable[[], _T]) -> _T | None:
        """Call ``fn``; record a gsomia error it raises as a problem at ``path`` and return None."""
        try:
            return fn()
        except GsomiaError as e:
            self.add(path, str(e))
            return None


def pydantic_problems(err: ValidationError, col: Collector) -> None:
    """Record each schema error of ``err`` at its path, in words a scenario author knows."""
    for item in err.errors():
        loc = tuple(x for x in item["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r}" if loc else "unknown field"
        elif item["type"] == "missing":
            msg = f"missing field {loc[-1]!r}" if loc else "missing field"
        elif item["type"] == "string_pattern_mismatch" and item.get("ctx", {}).get("pattern") in PATTERN_HINTS:
            msg = PATTERN_HINTS[item["ctx"]["pattern"]].format(item["input"])
        elif item["type"] == "int_type" and isinstance(item.get("input"), (str, float)):
            msg = (
                f"{item['input']!r} is not a whole number: write decimal digits "
                "(1:19, 010, 0x13, 1_000 or 19.0 are not read as numbers)"
            )
        col.add(tuple(loc), msg)
