"""One grammar for party ids and topics, owned by the domain: the scenario schema, the
exchange and standing consents all accept exactly what the domain accepts."""

from __future__ import annotations

import pytest

from gsomia.domain.parties import PARTY_ID, check_party_id
from gsomia.domain.topics import TOPIC, check_topic, check_topic_prefix, topic_matches
from gsomia.errors import InvalidInput
from gsomia.scenario.loader import json_schema


def _patterns(doc: object) -> set[str]:
    found: set[str] = set()
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "pattern" and isinstance(value, str):
                found.add(value)
            else:
                found |= _patterns(value)
    elif isinstance(doc, list):
        for item in doc:
            found |= _patterns(item)
    return found


def test_the_scenario_schema_uses_the_domain_patterns() -> None:
    patterns = _patterns(json_schema())
    assert PARTY_ID.pattern in patterns
    assert TOPIC.pattern in patterns


@pytest.mark.parametrize("topic", ["dprk.missile.launch", "dprk.missile-test", "a", "x_1.y-2"])
def test_topics_with_hyphens_and_underscores_are_topics(topic: str) -> None:
    assert check_topic(topic) == topic
    assert check_topic_prefix(topic) == topic


@pytest.mark.parametrize("bad", ["", "Dprk", "dprk..missile", ".dprk", "dprk.", "dprk missile", "dprk.missile\n", 7])
def test_malformed_topics_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        check_topic(bad)
    with pytest.raises(InvalidInput):
        check_topic_prefix(bad)


@pytest.mark.parametrize("bad", ["", "J", "jpn", "JPN\n", "JP N", "A" * 17, None])
def test_malformed_party_ids_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        check_party_id(bad)


def test_a_prefix_covers_itself_and_what_is_under_it_only() -> None:
    assert topic_matches("dprk.missile", "dprk.missile.launch")
    assert topic_matches("dprk.missile", "dprk.missile")
    assert not topic_matches("dprk.missile", "dprk.missiles")
    assert topic_matches("*", "anything.at.all")
