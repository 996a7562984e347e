"""Topics (dotted paths) and scopes (sets of topic prefixes, ``*`` for everything)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from gsomia.errors import InvalidInput

TOPIC = re.compile(r"^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$")
"""A topic: a dotted path of lower-case words (``dprk.missile.launch``). The one grammar of
topics: scenario files (their JSON Schema uses this very pattern), reports submitted to the
exchange and standing consents all check it. Match it with ``fullmatch``."""


def check_topic(topic: object, what: str = "topic") -> str:
    """Return ``topic`` if it is a well-formed dotted path.

    Raises:
        InvalidInput: otherwise.
    """
    if not isinstance(topic, str) or not TOPIC.fullmatch(topic):
        raise InvalidInput(f"{what} {topic!r} is not a dotted path of lower-case words (e.g. dprk.missile.launch)")
    return topic


def check_topic_prefix(prefix: object, what: str = "topic prefix") -> str:
    """Return ``prefix`` if it is ``*`` (every topic) or a topic (covering itself and every
    topic under it).

    Raises:
        InvalidInput: otherwise.
    """
    if prefix == "*":
        return "*"
    if not isinstance(prefix, str) or not TOPIC.fullmatch(prefix):
        raise InvalidInput(f"{what}: a dotted topic prefix such as dprk.missile, or * for every topic")
    return prefix


def topic_matches(prefix: str, topic: str) -> bool:
    """True if ``topic`` falls under ``prefix`` (``*`` is every topic; ``dprk.missile`` covers
    ``dprk.missile.launch`` but not ``dprk.missiles``)."""
    return prefix in ("*", topic) or topic.startswith(prefix + ".")


@lru_cache(maxsize=4096)
def prefixes(topic: str) -> frozenset[str]:
    """Every dotted prefix of ``topic``, itself included, plus ``*``."""
    parts = topic.split(".")
    return frozenset([".".join(parts[: i + 1]) for i in range(len(parts))] + ["*"])


@dataclass(frozen=True, slots=True)
class Scope:
    """A set of topic prefixes. ``dprk.missile`` covers ``dprk.missile.launch`` but not
    ``dprk.missiles``; ``*`` covers everything. An empty scope covers nothing."""

    entries: frozenset[str]
    _set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for e in self.entries:
            if e != "*":
                # a trailing ".*" or "*" on a prefix means the same as the prefix
                check_topic(e.removesuffix(".*").removesuffix("*"))
        cleaned = frozenset(e if e == "*" else e.removesuffix(".*").removesuffix("*") for e in self.entries)
        object.__setattr__(self, "_set", cleaned)

    @classmethod
    def of(cls, *entries: str) -> Scope:
        """Build a scope from prefixes."""
        return cls(frozenset(entries))

    @property
    def prefixes(self) -> frozenset[str]:
        """The prefixes, normalised (``dprk.missile.*`` is ``dprk.missile``)."""
        return self._set

    def covers(self, topic: str) -> bool:
        """True if ``topic`` falls under one of the prefixes."""
        return not self._set.isdisjoint(prefixes(topic))

    def describe(self) -> str:
        """Human text: ``dprk.missile*, dprk.nuclear*`` or ``everything``."""
        if "*" in self._set:
            return "everything"
        return ", ".join(sorted(f"{e}*" for e in self._set)) or "nothing"


def scope_entries_valid(entries: list[str]) -> list[str]:
    """Return the malformed entries of a scope list."""
    bad = []
    for e in entries:
        if e == "*":
            continue
        try:
            check_topic(e.removesuffix(".*").removesuffix("*"))
        except InvalidInput:
            bad.append(e)
    return bad
