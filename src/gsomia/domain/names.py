"""Names typed by a user: close matches for a name that is not known, so an error can say
what was probably meant ("did you mean KOR?") beside every value that is known."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["shortened", "suggestions", "unknown_message"]

_ALIKE = 0.75
_ALIKE_SHORT = 0.6  # one letter in three differs: ROC for ROK
_SHORT = 4
_LONGEST_COMPARED = 64
"""Beyond this length (and twice the longest known name), nothing typed is a spelling
neighbour: difflib's work grows with the typed length times each name's, so a name as long as
a query string may be (kilobytes) is not compared letter by letter."""
_SHOWN = 80
"""How much of an unknown name an error message echoes (the rest is elided)."""


def suggestions(value: str, known: Iterable[str], *, aliases: Mapping[str, str] | None = None, n: int = 3) -> list[str]:
    """Up to ``n`` known names close to ``value``, best first.

    A name that starts with, or contains, what was typed comes first (``dprk.missile`` →
    ``dprk.missile.launch``), then spelling neighbours: names, or their beginnings as long as
    what was typed, that difflib finds at least 75% alike (60% for a code of four letters
    or fewer) (``dprk.missle`` →
    ``dprk.missile.launch``), all compared without regard to case; an alias that matches
    suggests the name it stands for. A name typed much longer than any known one (over
    :data:`_LONGEST_COMPARED` characters and twice the longest) has no spelling neighbour.
    """
    names = sorted(set(known))
    folded = value.casefold()
    if not folded:
        return []
    found: list[str] = []

    def add(name: str) -> None:
        if name not in found:
            found.append(name)

    for name in names:
        if name.casefold().startswith(folded):
            add(name)
    for name in names:
        if folded in name.casefold():
            add(name)
    by_fold = {name.casefold(): name for name in names}
    for alias, target in (aliases or {}).items():
        by_fold.setdefault(alias.casefold(), target)
    longest = max((len(name) for name in by_fold), default=0)
    if len(folded) > max(_LONGEST_COMPARED, 2 * longest):
        return found[:n]
    for _score, target in sorted(_neighbours(folded, by_fold)):
        add(target)
    return found[:n]


def _neighbours(folded: str, by_fold: Mapping[str, str]) -> list[tuple[float, str]]:
    """``(-score, target)`` of each name (casefolded → what it suggests) that difflib finds
    alike enough to ``folded``, whole or by its beginning; difflib's cheap upper bounds rule
    out most names before the full comparison."""
    least = _ALIKE if len(folded) > _SHORT else _ALIKE_SHORT
    scored = []
    for name, target in by_fold.items():
        score = 0.0
        for other in (name, name[: len(folded) + 1]):
            m = difflib.SequenceMatcher(None, folded, other)
            if m.real_quick_ratio() >= least and m.quick_ratio() >= least:
                score = max(score, m.ratio())
        if score >= least:
            scored.append((-score, target))
    return scored


def unknown_message(
    what: str, value: str, known: Iterable[str], *, aliases: Mapping[str, str] | None = None, listing: str = ""
) -> str:
    """``unknown party 'ROC': did you mean KOR? (known: AUS, DEU, …)`` on one line.

    ``listing`` replaces the plain list of known names when given (e.g. levels with their
    English names).
    """
    names = sorted(set(known))
    close = suggestions(value, names, aliases=aliases)
    guess = f": did you mean {' or '.join(close)}?" if close else ""
    shown = listing or ", ".join(names)
    if aliases:
        shown += "; also accepted: " + ", ".join(f"{a} ({t})" for a, t in sorted(aliases.items()))
    return f"unknown {what} {shortened(value)!r}{guess} (known: {shown or 'none'})"


def shortened(value: str) -> str:
    """``value``, or its first :data:`_SHOWN` characters and an ellipsis if it is longer: what
    an error message echoes of a name typed (which may be as long as a query string)."""
    return value if len(value) <= _SHOWN else value[:_SHOWN] + "…"
