"""Names typed by a user: close matches for a name that is not known, so an error can say
what was probably meant ("did you mean KOR?") beside every value that is known."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["suggestions", "unknown_message"]

_ALIKE = 0.75
_ALIKE_SHORT = 0.6  # one letter in three differs: ROC for ROK
_SHORT = 4


def suggestions(value: str, known: Iterable[str], *, aliases: Mapping[str, str] | None = None, n: int = 3) -> list[str]:
    """Up to ``n`` known names close to ``value``, best first.

    A name that starts with, or contains, what was typed comes first (``dprk.missile`` →
    ``dprk.missile.launch``), then spelling neighbours: names, or their beginnings as long as
    what was typed, that difflib finds at least 75% alike (60% for a code of four letters
    or fewer) (``dprk.missle`` →
    ``dprk.missile.launch``), all compared without regard to case; an alias that matches
    suggests the name it stands for.
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
    scored = []
    for name, target in by_fold.items():
        whole = difflib.SequenceMatcher(None, folded, name).ratio()
        start = difflib.SequenceMatcher(None, folded, name[: len(folded) + 1]).ratio()
        score = max(whole, start)
        if score >= (_ALIKE if len(folded) > _SHORT else _ALIKE_SHORT):
            scored.append((-score, target))
    for _score, target in sorted(scored):
        add(target)
    return found[:n]


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
    return f"unknown {what} {value!r}{guess} (known: {shown or 'none'})"
