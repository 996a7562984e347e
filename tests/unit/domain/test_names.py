"""Names a user types: aliases and other spellings accepted, unknown names refused with the
closest known ones."""

from __future__ import annotations

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
