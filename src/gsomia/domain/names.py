"""Names typed by a user: close matches for a name that is not known, so an error can say
what was probably meant ("did you mean KOR?") beside every value that is known."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["suggestions", "unknown_message"]


def suggestions(value: str, known: Iterable[str], *, aliases: Mapping[str, str] | None = None, n: int = 3) -> list[str]:
    """Up to ``n`` known names close to ``value``, best first.

    A name that starts with, or contains, what was typed comes first (``dprk.missile`` →
    ``dprk.missile.launch``), then spelling neighbours (difflib's ratio), all compared without
    regard to case; an alias that matches suggests the name it stands for.
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
    for match in difflib.get_close_matches(folded, list(by_fold), n=n, cutoff=0.6):
        add(by_fold[match])
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
