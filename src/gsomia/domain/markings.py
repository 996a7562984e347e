"""Equivalence tables and marking translation (Japan–Korea GSOMIA Art. 4).

An agreement names its *common* levels (the English column of Art. 4.2: SECRET,
CONFIDENTIAL…) and, for each, the national levels of each party that correspond to it.
On release the recipient marks the information with the originator's name and its own
corresponding level (Art. 4.2). A national level absent from the table is not
releasable under that agreement (e.g. JPN 機密 and KOR 군사I급비밀 under the GSOMIA).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gsomia.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Marking:
    """What a recipient sees: the originator's name and level, the agreement's common
    level, and the recipient's own equivalent level."""

    originator: str
    level: str
    common_level: str
    recipient: str
    recipient_level: str

    def banner(self) -> str:
        """The marking as a recipient would stamp it, e.g. ``군사II급비밀 (JPN 極秘)``."""
        return f"{self.recipient_level} ({self.originator} {self.level})"


@dataclass(frozen=True, slots=True)
class EquivalenceTable:
    """Common levels (highest first) and, per common level, each party's national levels.

    The first national level listed for a party is the one its recipients stamp; later
    ones are further categories that map to the same common level (特定秘密 beside 極秘).
    """

    common: tuple[str, ...]
    rows: Mapping[str, Mapping[str, tuple[str, ...]]]
    _to_common: dict[tuple[str, str], str] = field(init=False, repr=False, compare=False)
    _rank: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.common)) != len(self.common):
            raise InvalidInput("an equivalence table lists a common level twice")
        rank = {name: i for i, name in enumerate(self.common)}
        to_common: dict[tuple[str, str], str] = {}
        for common_level, by_party in self.rows.items():
            if common_level not in rank:
                raise InvalidInput(f"equivalence row {common_level!r} is not one of the common levels")
            for party, levels in by_party.items():
                if not levels:
                    raise InvalidInput(f"equivalence row {common_level!r}: {party} lists no level")
                for national in levels:
                    key = (party, national)
                    if key in to_common and to_common[key] != common_level:
                        raise InvalidInput(f"{party} {national!r} maps to both {to_common[key]} and {common_level}")
                    to_common[key] = common_level
        object.__setattr__(self, "_to_common", to_common)
        object.__setattr__(self, "_rank", rank)

    @classmethod
    def build(cls, common: Sequence[str], rows: Mapping[str, Mapping[str, Sequence[str]]]) -> EquivalenceTable:
        """Build a table from plain sequences."""
        return cls(
            common=tuple(common),
            rows={c: {p: tuple(lv) for p, lv in by.items()} for c, by in rows.items()},
        )

    def to_common(self, party: str, national: str) -> str | None:
        """The common level of ``party``'s ``national`` level, or None if absent."""
        return self._to_common.get((party, national))

    def from_common(self, common_level: str, party: str) -> str | None:
        """The national level ``party`` stamps for ``common_level``, or None."""
        levels = self.rows.get(common_level, {}).get(party)
        return levels[0] if levels else None

    def rank(self, common_level: str) -> int | None:
        """0 for the highest common level; None if unknown."""
        return self._rank.get(common_level)

    def at_or_below(self, common_level: str, maximum: str) -> bool:
        """True if ``common_level`` is at or below ``maximum`` (Art. 4: max SECRET)."""
        r, m = self._rank.get(common_level), self._rank.get(maximum)
        return r is not None and m is not None and r >= m

    def national_levels(self, party: str) -> tuple[str, ...]:
        """Every national level of ``party`` that the table names."""
        return tuple(n for (p, n) in self._to_common if p == party)

    def parties(self) -> frozenset[str]:
        """Parties named anywhere in the table."""
        return frozenset(p for (p, _n) in self._to_common)

    def releasable_commons(self, sender: str, receiver: str, maximum: str | None) -> tuple[str, ...]:
        """Common levels that both parties can mark and that are at or below ``maximum``."""
        if maximum is None:
            return ()
        return tuple(
            c
            for c in self.common
            if self.at_or_below(c, maximum) and self.rows.get(c, {}).get(sender) and self.rows.get(c, {}).get(receiver)
        )

    def translate(self, originator: str, level: str, recipient: str) -> Marking | None:
        """Translate ``originator``'s ``level`` into ``recipient``'s equivalent (Art. 4.2)."""
        common_level = self._to_common.get((originator, level))
        if common_level is None:
            return None
        recipient_level = self.from_common(common_level, recipient)
        if recipient_level is None:
            return None
        return Marking(
            originator=originator,
            level=level,
            common_level=common_level,
            recipient=recipient,
            recipient_level=recipient_level,
        )
