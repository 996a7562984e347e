"""Names a user types: aliases and other spellings accepted, unknown names refused with the
closest known ones."""

from __future__ import annotations

import difflib
from typing import Any

import pytest

from gsomia.domain.names import suggestions, unknown_message
from gsomia.domain.record import Record
from gsomia.errors import UnknownEntity


@pytest.mark.parametrize(
    ("typed", "party"),
    [
        ("ROK", "KOR"),
        ("rok", "KOR"),
        ("KR", "KOR"),
        ("JP", "JPN"),
        ("JA", "JPN"),
        ("us", "USA"),
        ("kor", "KOR"),
        ("UK", "GBR"),
    ],
)
def test_aliases_and_any_case_name_the_party(record: Record, typed: str, party: str) -> None:
    assert record.party(typed).id == party


def test_an_unknown_party_names_the_closest_and_every_known_one(record: Record) -> None:
    with pytest.raises(UnknownEntity) as e:
        record.party("ROC")
    msg = str(e.value)
    assert "unknown party 'ROC': did you mean KOR?" in msg
    assert "known: AUS, DEU" in msg and "ROK (KOR)" in msg


def test_topics_levels_and_agreements(record: Record) -> None:
    assert record.topic("DPRK.Missile.Launch") == "dprk.missile.launch"
    assert record.level("JPN", "gokuhi") == "極秘"
    assert record.level("ROK", "Military Secret Class II") == "군사II급비밀"
    assert record.agreement("jpn-kor-gsomia").id == "JPN-KOR-GSOMIA"
    with pytest.raises(UnknownEntity) as e:
        record.topic("dprk.missle")
    guess = str(e.value).split("did you mean ")[1].split("?")[0]
    assert set(guess.split(" or ")) == {"dprk.missile.launch", "dprk.missile.development"}
    with pytest.raises(UnknownEntity, match=r"unknown level of USA 'secrt': did you mean SECRET"):
        record.level("USA", "secrt")
    with pytest.raises(UnknownEntity, match=r"its ladder: 機密 \(Kimitsu\), 極秘 \(Gokuhi\)"):
        record.level("JPN", "SECRET")
    with pytest.raises(UnknownEntity, match="did you mean JPN-KOR-GSOMIA"):
        record.agreement("JPN-KOR")
    with pytest.raises(UnknownEntity, match="did you mean jpn-kor-2019-suspension"):
        record.event("jpn-kor-2019-suspend")


def test_suggestions() -> None:
    assert suggestions("dprk.missile", ["dprk.nuclear.test", "dprk.missile.launch"]) == ["dprk.missile.launch"]
    assert suggestions("ROK", ["JPN", "KOR"], aliases={"ROK": "KOR"}) == ["KOR"]
    assert suggestions("", ["JPN"]) == []
    assert suggestions("zzzzzz", ["JPN", "KOR"]) == []
    assert unknown_message("topic", "x", []) == "unknown topic 'x' (known: none)"


class _Counting(difflib.SequenceMatcher[str]):
    """difflib's matcher, counting how many are made (each compares the typed name with one known)."""

    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).made += 1
        super().__init__(*args, **kwargs)


KNOWN_EVENTS = ["jpn-kor-2016-signature", "jpn-kor-2019-notice", "jpn-kor-2019-suspension"]


@pytest.mark.parametrize("length", [65, 1_000, 60_000])
def test_an_overlong_name_is_not_compared_letter_by_letter(monkeypatch: pytest.MonkeyPatch, length: int) -> None:
    # far longer than any known name, nothing can be "close": no difflib work, whose cost grows
    # with the typed length times each known name's (a 60 KB query string cost seconds of CPU)
    monkeypatch.setattr(difflib, "SequenceMatcher", _Counting)  # as names.py looks it up
    _Counting.made = 0
    typed = ("jpn-kor-" * length)[:length]
    assert suggestions(typed, KNOWN_EVENTS) == []
    assert _Counting.made == 0
    # a typing mistake of ordinary length is still compared, and still answered
    assert suggestions("jpn-kor-2019-suspend", KNOWN_EVENTS) == ["jpn-kor-2019-suspension"]
    assert _Counting.made > 0


def test_an_unknown_name_is_echoed_shortened() -> None:
    msg = unknown_message("event", "x" * 60_000, KNOWN_EVENTS)
    assert msg.startswith("unknown event 'xxxx") and "…" in msg and len(msg) < 400
    assert "known: jpn-kor-2016-signature" in msg
    assert unknown_message("event", "jpn-kor-2019-suspend", KNOWN_EVENTS).startswith(
        "unknown event 'jpn-kor-2019-suspend': did you mean jpn-kor-2019-suspension?"
    )
