"""Names a user types on the party's side of the exchange (``gsomia client``, ``keys``),
checked against the exchange's own scenario (``GET /api/v1/scenario``) before anything is
signed: an alias is accepted and echoed (``ROK`` is read as ``KOR``), an unknown name exits 5
with the closest known ones, as every analysis command does."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from gsomia.cli import common
from gsomia.domain.names import suggestions, unknown_message
from gsomia.errors import UnknownEntity


class ScenarioNames:
    """The parties (with their aliases), ladders and topics of a scenario document."""

    def __init__(self, scenario: Mapping[str, Any]) -> None:
        parties = scenario.get("parties") or []
        self.parties = [str(p["id"]) for p in parties]
        self.aliases = {str(a): str(p["id"]) for p in parties for a in p.get("aliases") or []}
        self.ladders = {
            str(p["id"]): [(str(lv["name"]), str(lv.get("english") or "")) for lv in p.get("ladder") or []]
            for p in parties
        }
        self.topics = [str(t["id"]) for t in scenario.get("topics") or []]

    def party(self, typed: str) -> str:
        """The party id ``typed`` names (its id or an alias, in any case), echoed if it differs.

        Raises:
            UnknownEntity: if no party has that name (exit 5, with the closest).
        """
        typed = _nfc(typed)
        folded = typed.strip().upper()
        found = typed if typed in self.parties else folded if folded in self.parties else self.aliases.get(folded)
        if found is None:
            raise UnknownEntity(unknown_message("party", typed, self.parties, aliases=self.aliases))
        return _echo("party", typed, found)

    def topic(self, typed: str) -> str:
        """The catalogue topic ``typed`` names (in any case), echoed if it differs.

        Raises:
            UnknownEntity: if the catalogue has no such topic.
        """
        if not self.topics or typed in self.topics:
            return typed
        found = {t.casefold(): t for t in self.topics}.get(_nfc(typed).strip().casefold())
        if found is None:
            raise UnknownEntity(unknown_message("topic", typed, self.topics))
        return _echo("topic", typed, found)

    def level(self, party: str, typed: str) -> str:
        """The level of ``party``'s ladder ``typed`` names (national or English name).

        Raises:
            UnknownEntity: if the ladder has no such level.
        """
        ladder = self.ladders.get(party, [])
        if not ladder or any(typed == name for name, _ in ladder):
            return typed
        folded = _nfc(typed).strip().casefold()
        for name, english in ladder:
            if folded in (name.casefold(), english.casefold()):
                return _echo("level", typed, name)
        names = {name: name for name, _ in ladder} | {english: name for name, english in ladder if english}
        close = list(dict.fromkeys(names[c] for c in suggestions(typed, names)))
        guess = f": did you mean {' or '.join(close)}?" if close else ""
        listing = ", ".join(f"{n} ({e})" if e else n for n, e in ladder)
        raise UnknownEntity(f"unknown level of {party} {typed!r}{guess} (its ladder: {listing})")

    def parties_of(self, typed: Sequence[str]) -> list[str]:
        """Each of ``typed`` resolved as a party."""
        return [self.party(p) for p in typed]


def _nfc(typed: str) -> str:
    """``typed`` in Unicode's composed form (NFC): the same text, whichever form the keyboard, the
    terminal or a file name made of it (a Hangul level pasted from macOS is decomposed, NFD).
    Look-alikes of other characters (a Cyrillic і, a Roman numeral Ⅱ) stay what they are, and
    unknown: a name is never guessed."""
    return unicodedata.normalize("NFC", typed)


def _echo(kind: str, typed: str, found: str) -> str:
    if found != typed:
        common.err.print(f"{kind} {typed!r} read as {found}", markup=False)
    return found
