"""JSON text as gsomia writes and reads it where the bytes are neither signed nor hashed: event
stream frames, stored STIX bodies, JSON columns, request and response bodies.

Writing is compact (no spaces, UTF-8 as is) with orjson, several times faster than the standard
library on the large documents the exchange and the nodes pass on; the exchange's database
columns of type JSON are written with it too. Its text differs from
``json.dumps`` only in how some floats are spelled (``1e16`` for ``1e+16``): the same values.
Text that is signed or hashed (RFC 8785 canonical JSON, ledger entries) never comes from here.

Reading is the standard library's, which keeps every integer exact, made strict so that every
value read can be written again as it was: ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON
(RFC 8259 §6), nor is a number beyond the range of a double (``1e400``, which would be read as
infinity), an integer beyond 64 bits has no JSON spelling here, and a lone surrogate
(``\\ud800`` without its pair) has no UTF-8 one (RFC 8259 §8.2); all are refused, as is nesting
deeper than the interpreter's stack.

Usable from every layer.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = ["compact", "compact_bytes", "parse"]


def compact_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON. A member name that is a number, ``True``, ``False`` or
    ``None`` is written as text, as the standard library writes it.

    Raises:
        TypeError: ``value`` holds something JSON cannot spell (an integer beyond 64 bits, a
            lone surrogate, an object of another type).
    """
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def compact(value: Any) -> str:
    """``value`` as compact JSON text (see :func:`compact_bytes`)."""
    return compact_bytes(value).decode("utf-8")


_SMALLEST, _LARGEST = -(2**63), 2**64 - 1


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 §6)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is beyond the range of a double (RFC 8259 §6)")
    return value


def _integer(text: str) -> int:
    value = int(text)
    if not _SMALLEST <= value <= _LARGEST:
        raise ValueError(f"the integer {text[:40]} is beyond 64 bits")
    return value


def parse(text: str | bytes, *, unique: bool = False) -> Any:
    """The value of a JSON text; bytes are read as UTF-8. ``unique``: a member name twice in one
    object is refused (I-JSON, RFC 7493 §2.3: parsers disagree on which one wins).

    Raises:
        ValueError: not UTF-8 (``UnicodeDecodeError``), not JSON (``json.JSONDecodeError``),
            ``NaN``/``Infinity``/``-Infinity`` where a value belongs, a number beyond the range
            of a double, an integer beyond 64 bits, a lone surrogate (``\\ud800`` without its
            pair: no UTF-8 spelling, RFC 8259 §8.2), or nesting deeper than the interpreter's
            stack; the message says which.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    else:
        text.encode("utf-8")  # a lone surrogate in the text itself: UnicodeEncodeError
    try:
        hook = _unique_members if unique else None
        value = json.loads(
            text, parse_constant=_not_a_number, parse_float=_finite, parse_int=_integer, object_pairs_hook=hook
        )
    except RecursionError:  # arrays or objects nested deeper than the interpreter's stack
        raise ValueError("the JSON text is nested too deeply") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _refuse_lone_surrogates(value)  # a pair is read as one character; only a lone one remains
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(name for name, _ in pairs if name in seen or seen.add(name))  # type: ignore[func-returns-value]
        raise ValueError(f"the member name {twice[:40]!r} is given twice in one object (RFC 7493 §2.3)")
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("a lone surrogate (\\ud800-\\udfff without its pair) has no UTF-8 spelling") from None
