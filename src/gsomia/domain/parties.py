"""Parties and their national classification ladders."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gsomia.errors import InvalidInput

PARTY_ID = re.compile(r"^[A-Z][A-Z0-9_-]{1,15}$")
"""A party id: an ISO 3166 alpha-3 code or a short organisation code (``JPN``, ``NATO``). The one
grammar of party ids: scenario files (their JSON Schema uses this very pattern), the exchange's
API and key files all check it. Match it with ``fullmatch`` (``$`` alone would accept a
trailing newline)."""


def check_party_id(value: object, what: str = "party") -> str:
    """Return ``value`` if it is a well-formed party id.

    Raises:
        InvalidInput: otherwise (the message names ``what``).
    """
    if not isinstance(value, str) or not PARTY_ID.fullmatch(value):
        raise InvalidInput(f"{what}: {value!r} is not a party id (upper-case letters, digits, - or _; e.g. JPN)")
    return value


@dataclass(frozen=True, slots=True)
class Level:
    """One rung of a national ladder. ``rank`` 1 is the highest; rungs may share a rank
    (Japan's statutory 特定秘密 sits beside 極秘)."""

    name: str
    rank: int
    english: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidInput("a classification level needs a name")
        if self.rank < 1:
            raise InvalidInput(f"level {self.name!r}: rank must be 1 (highest) or more")


@dataclass(frozen=True, slots=True)
class Ladder:
    """A party's national classification ladder, highest first."""

    levels: tuple[Level, ...]
    _by_name: dict[str, Level] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.levels:
            raise InvalidInput("a ladder needs at least one level")
        by_name: dict[str, Level] = {}
        for lvl in self.levels:
            if lvl.name in by_name:
                raise InvalidInput(f"level {lvl.name!r} appears twice in one ladder")
            by_name[lvl.name] = lvl
        object.__setattr__(self, "_by_name", by_name)

    def get(self, name: str) -> Level | None:
        """The level called ``name``, or None."""
        return self._by_name.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> tuple[str, ...]:
        """Level names, highest first."""
        return tuple(lvl.name for lvl in self.levels)


@dataclass(frozen=True, slots=True)
class CompetentAuthority:
    """The body a party designates to protect received information (GSOMIA Art. 2(d)),
    with the highest national level it is cleared to hold (rule 5)."""

    name: str
    cleared_to: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """A government or organisation that signs agreements."""

    id: str
    name: str
    kind: str = "state"
    ladder: Ladder
    authority: CompetentAuthority | None = None
    source: str = ""
    aliases: tuple[str, ...] = ()
    """Other codes a user may type for it (``ROK`` for ``KOR``); never used in a decision."""

    def __post_init__(self) -> None:
        if not PARTY_ID.fullmatch(self.id):
            raise InvalidInput(f"party id {self.id!r}: use an ISO 3166 alpha-3 code or a short upper-case org code")
        for alias in self.aliases:
            if not PARTY_ID.fullmatch(alias) or alias == self.id:
                raise InvalidInput(f"party {self.id}: alias {alias!r} is not an upper-case code other than its id")
        if self.authority is not None and self.authority.cleared_to not in self.ladder:
            raise InvalidInput(
                f"party {self.id}: competent authority cleared to {self.authority.cleared_to!r}, "
                "which is not in its ladder"
            )

    def cleared_for(self, level_name: str) -> bool:
        """True if the declared competent authority may hold ``level_name`` (rule 5)."""
        if self.authority is None:
            return False
        held = self.ladder.get(level_name)
        cleared = self.ladder.get(self.authority.cleared_to)
        return held is not None and cleared is not None and cleared.rank <= held.rank
