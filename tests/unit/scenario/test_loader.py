"""Scenario files: schema, file:line errors for every problem, canonical digest."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import jsonschema
import pytest

from gsomia.domain.record import cited_source_ids
from gsomia.errors import InvalidInput, Problem, UnknownEntity, ValidationFailed
from gsomia.scenario.loader import json_schema, parse_event_spec, parse_scenario, parse_whatif, read_file
from gsomia.scenario.yamlfile import read_yaml
from tests.conftest import SCENARIO, kst

MINIMAL = """\
scenario:
  name: tiny
  timezone: Asia/Seoul
topics:
  - {id: dprk.missile.launch}
parties:
  - id: JPN
    name: Japan
    ladder:
      - {name: 極秘, rank: 2}
      - {name: 秘, rank: 3}
    authority: {name: MOD, cleared_to: 極秘}
  - id: KOR
    name: Korea
    ladder:
      - {name: 군사II급비밀, rank: 2}
    authority: {name: MND, cleared_to: 군사II급비밀}
agreements:
  - id: JK
    name: jk
    parties: [JPN, KOR]
    common_levels: [SECRET]
    max_level: SECRET
    equivalence:
      SECRET: {JPN: [極秘], KOR: [군사II급비밀]}
events:
  - {id: jk-signature, agreement: JK, kind: signature, at: "2016-11-23"}
  - {id: jk-eif, agreement: JK, kind: entry_into_force, at: "2016-11-23"}
"""


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(ValidationFailed) as exc:
        parse_scenario(text, "s.yaml")
    return list(exc.value.problems)


def test_bundled_scenario_is_valid_and_cites_sources() -> None:
    loaded = parse_scenario(SCENARIO.read_text(encoding="utf-8"), str(SCENARIO))
    rec = loaded.record
    assert set(rec.parties) >= {"JPN", "KOR", "USA", "NATO", "AUS", "GBR", "FRA", "IND", "ITA", "DEU"}
    assert {"JPN-KOR-GSOMIA", "TISA", "KOR-USA-1987", "JPN-USA-GSOMIA"} <= set(rec.agreements)
    ids = {e.id for e in rec.events}
    assert {
        "jpn-kor-gsomia-signature",
        "jpn-kor-2019-notice",
        "jpn-kor-2019-suspension",
        "jpn-kor-2023-withdrawal",
    } <= ids
    notice = rec.event("jpn-kor-2019-notice")
    assert notice.at == kst("2019-08-23T15:30+09:00") and notice.by == "KOR"
    # every fact carries a confidence tag
    tags = ("[V", "[R", "[I", "[M")
    for e in rec.events:
        assert any(t in e.source for t in tags), e.id
    for r in rec.reports:
        assert any(t in r.source for t in tags), r.id
    for p in rec.provisions:
        assert any(t in p.source for t in tags), p.id
    for a in rec.agreements.values():
        assert any(t in a.source for t in tags), a.id
    tisa = rec.agreements["TISA"]
    assert tisa.hub == "USA" and not tisa.legally_binding and not tisa.direct
    assert tisa.relay_delay is not None and any("TISA relay delay" in x and "assumption" in x for x in rec.assumptions)


def test_the_bundled_scenario_matches_the_published_schema() -> None:
    data, _ = read_yaml(SCENARIO.read_text(encoding="utf-8"))
    jsonschema.validate(data, json_schema())


def test_shipped_schema_file_is_current() -> None:
    shipped = Path(__file__).resolve().parents[3] / "src/gsomia/scenario/scenario.schema.json"
    assert json.loads(shipped.read_text(encoding="utf-8")) == json_schema(), (
        "regenerate: gsomia scenario schema > src/gsomia/scenario/scenario.schema.json"
    )


def test_minimal_is_valid() -> None:
    assert parse_scenario(MINIMAL).record.name == "tiny"


def test_digest_is_canonical_and_stable() -> None:
    a = parse_scenario(MINIMAL).digest
    b = parse_scenario(
        MINIMAL.replace("  - {id: dprk.missile.launch}", "  - {id: dprk.missile.launch, description: ''}")
    ).digest
    assert a == parse_scenario(MINIMAL).digest
    assert a == b  # defaults do not change the canonical document


@pytest.mark.parametrize(
    ("edit", "line", "fragment"),
    [
        (("parties: [JPN, KOR]", "parties: [JPN, XXX]"), 21, "unknown party 'XXX'"),
        (("KOR: [군사II급비밀]}", "KOR: [군사I급비밀]}"), 25, "not in KOR's ladder"),
        (("max_level: SECRET", "max_level: TOP SECRET"), 23, "not one of common_levels"),
        (('at: "2016-11-23"}\n  - {id: jk-eif', 'at: "2016-11-24"}\n  - {id: jk-eif'), 28, "before the signature"),
        (
            (
                'kind: entry_into_force, at: "2016-11-23"}',
                'kind: entry_into_force, at: "2016-11-23"}\n  - {id: jk-eif2, agreement: JK, kind: entry_into_force, at: "2017-01-01"}',
            ),
            29,
            "second entry into force",
        ),
        (("    name: jk\n", "    name: jk\n    hub: USA\n    relay_delay: PT1H\n"), 21, "hub USA is not a party"),
        (("name: Japan", "name: Japan\n    colour: red"), 9, "unknown field 'colour'"),
        (("cleared_to: 極秘", "cleared_to: 機密"), 12, "not in JPN's ladder"),
        (
            ('at: "2016-11-23"}\n  - {id: jk-eif', 'at: "23/11/2016"}\n  - {id: jk-eif'),
            27,
            "'23/11/2016' is not an instant: give a date (2019-08-23) or a date and time with its UTC offset",
        ),
        (
            ('at: "2016-11-23"}\n  - {id: jk-eif', 'at: "2016-11-23T09:00"}\n  - {id: jk-eif'),
            27,
            "a time of day without an offset could be any zone's",
        ),
        (("    name: jk\n", "    name: jk\n    relay_delay: 4h\n"), 21, "'4h' is not a duration: give ISO 8601"),
        (("  - id: KOR\n", "  - id: Korea\n"), 13, "'Korea' is not a party id"),
        (("timezone: Asia/Seoul", "timezone: Mars/Olympus"), 3, "unknown time zone"),
        (("{id: jk-signature, agreement: JK", "{id: jk-signature, agreement: NOPE"), 27, "unknown agreement 'NOPE'"),
    ],
)
def test_every_problem_has_its_line(edit: tuple[str, str], line: int, fragment: str) -> None:
    assert edit[0] in MINIMAL
    found = problems_of(MINIMAL.replace(edit[0], edit[1], 1))
    assert any(fragment in p.message and p.line == line and p.file == "s.yaml" for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    text = MINIMAL.replace("parties: [JPN, KOR]", "parties: [JPN, XXX]").replace("cleared_to: 極秘", "cleared_to: 機密")
    found = problems_of(text)
    assert len(found) >= 2
    assert str(found[0]).startswith("s.yaml:")


def test_yaml_syntax_and_duplicate_keys() -> None:
    assert problems_of("scenario: [unclosed\n")[0].line is not None
    dup = problems_of(MINIMAL.replace("  name: tiny\n", "  name: tiny\n  name: again\n"))
    assert dup[0].line == 3 and "duplicate key" in dup[0].message


def test_an_alias_inside_the_value_it_names_is_a_problem_not_a_recursion() -> None:
    (found,) = problems_of("a: &a [1, *a]\n")
    assert "alias refers to a value that contains it" in found.message and found.line == 1


def test_an_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]" for i in range(1, 9)]
    (found,) = problems_of("\n".join(lines) + "\n")  # 9**9 values: refused after a hundred thousand
    assert "aliases expand to more values" in found.message


def test_aliases_that_repeat_a_value_are_read_as_the_value() -> None:
    data, lines = read_yaml("a: &x {k: [1, 2]}\nb: *x\nc: [*x, *x]\n")
    assert data == {"a": {"k": [1, 2]}, "b": {"k": [1, 2]}, "c": [{"k": [1, 2]}, {"k": [1, 2]}]}
    assert lines[("c", 1, "k", 0)] == 1


def test_norway_is_not_false() -> None:
    # YAML 1.1 reads NO as false; gsomia reads only true/false as booleans
    text = MINIMAL.replace("  - id: KOR\n    name: Korea", "  - id: NO\n    name: Norway").replace("KOR", "NO")
    assert "NO" in parse_scenario(text).record.parties


def test_read_file_refuses_binary(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_file(p)
    with pytest.raises(InvalidInput, match="cannot read"):
        read_file(tmp_path / "missing.yaml")


def test_event_spec_parsing() -> None:
    rec = parse_scenario(MINIMAL).record
    e = parse_event_spec("JK notice 2019-08-25T12:00+09:00 by KOR", rec)
    assert e.by == "KOR" and e.hypothetical and e.at == kst("2019-08-25T12:00+09:00")
    e = parse_event_spec("JK revival 2020-01-01 by KOR effective 2020-02-01", rec, 2)
    assert e.effective == kst("2020-02-01") and e.id == "whatif-2"
    with pytest.raises(UnknownEntity):
        parse_event_spec("NOPE notice 2019-01-01", rec)
    with pytest.raises(InvalidInput, match="KIND must be one of"):
        parse_event_spec("JK explode 2019-01-01", rec)
    with pytest.raises(InvalidInput, match="expected"):
        parse_event_spec("JK notice", rec)
    with pytest.raises(InvalidInput, match="offset"):
        parse_event_spec("JK notice 2019-01-01T10:00", rec)


def test_whatif_file_problems_have_lines() -> None:
    rec = parse_scenario(MINIMAL).record
    w = parse_whatif("name: w\ndrop: [jk-eif]\n", rec)
    assert w.drop == ("jk-eif",)
    with pytest.raises(ValidationFailed) as exc:
        parse_whatif("name: w\ndrop:\n  - nope\n", rec, "w.yaml")
    assert exc.value.problems[0].line == 3


SOURCED = (
    MINIMAL.replace(
        '  - {id: jk-eif, agreement: JK, kind: entry_into_force, at: "2016-11-23"}',
        '  - {id: jk-eif, agreement: JK, kind: entry_into_force, at: "2016-11-23", source: "[V S1 Art 21.1, S4]"}',
    )
    + """\
sources:
  - {id: S1, title: "GSOMIA English text, p.10", links: ["https://example.org/s1"]}
  - id: S4
    title: "MOFA Japan press release, 22 Aug 2019"
    date: "22 Aug 2019"
"""
)


def test_the_bundled_scenario_lists_every_source_it_cites() -> None:
    rec = parse_scenario(SCENARIO.read_text(encoding="utf-8"), str(SCENARIO)).record
    listed = {s.id: s for s in rec.sources}
    s11 = listed["S11"]
    assert s11.title.startswith("Japan MOD press release, 29 Dec 2014")
    assert (s11.date, s11.links) == ("29 Dec 2014", ("http://www.mod.go.jp/j/press/news/2014/12/29a.html",))
    assert len(listed["S17"].links) == 3
    cited = {sid for e in rec.events for sid in cited_source_ids(e.source)}
    assert cited <= set(listed) and {"S1", "S4", "S20", "S21"} <= cited


def test_cited_source_ids_reads_only_s_ids_inside_tags() -> None:
    assert cited_source_ids("[V S14 para 1]") == ("S14",)
    assert cited_source_ids("[R S35, S37] and [V S11; S35]") == ("S35", "S37", "S11")
    assert cited_source_ids("[R YTN, KBS via §8.3]") == ()
    assert cited_source_ids("S11 outside a tag; [M]") == ()


def test_a_tag_citing_an_unlisted_source_is_a_problem_with_its_line() -> None:
    assert [s.id for s in parse_scenario(SOURCED).record.sources] == ["S1", "S4"]
    found = problems_of(SOURCED.replace("[V S1 Art 21.1, S4]", "[V S1 Art 21.1, S44]"))
    assert [(p.line, p.path) for p in found if "S44" in p.message] == [(28, "events.1.source")]
    dup = problems_of(SOURCED.replace("  - id: S4\n", "  - id: S1\n"))
    assert any("duplicate source id 'S1'" in p.message and p.line == 31 for p in dup), dup
    bad = problems_of(SOURCED.replace("https://example.org/s1", "javascript:alert(1)"))
    assert any(p.line == 30 and p.path.startswith("sources.0.links") for p in bad), bad
    # without a sources list nothing is checked: tags may cite a reference kept elsewhere
    assert parse_scenario(
        MINIMAL.replace("agreement: JK, kind: signature,", "agreement: JK, kind: signature, source: '[R S99]',")
    )


@pytest.mark.parametrize("written", ["1:19", "010", "0x13", "0b11", "1_000", "19.0"])
def test_yaml_1_1_numbers_are_not_read_as_other_numbers(written: str) -> None:
    # YAML 1.1 reads 1:19 as 79 (sexagesimal) and 010 as 8 (octal): a count must not change
    text = (
        MINIMAL
        + f'provisions:\n  - {{id: p-2017, agreement: JK, count: {written}, from: "2017-01-01", to: "2017-12-31"}}\n'
    )
    (found,) = problems_of(text)
    assert found.line == 30 and found.path == "provisions.0.count"
    assert "is not a whole number: write decimal digits" in found.message
    assert read_yaml(f"a: {written}")[0]["a"] in (written, float(written) if written == "19.0" else written)


def test_numbers_of_the_yaml_1_2_core_schema_are_read() -> None:
    data, _ = read_yaml("a: 19\nb: -3\nc: +4\nd: 0\ne: 1.5\nf: 2e3\ng: .inf\n")
    assert data == {"a": 19, "b": -3, "c": 4, "d": 0, "e": 1.5, "f": 2000.0, "g": float("inf")}


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (
            (
                "events:\n",
                'provisions:\n  - {id: p-1, agreement: JK, count: 99999999999999999999, date: "2017-01-01"}\nevents:\n',
            ),
            "provisions.0.count",
        ),
        (
            ("    parties: [JPN, KOR]\n", "    parties: [JPN, KOR]\n    notice: {days: 9999999999}\n"),
            "agreements.0.notice.days",
        ),
        (
            ("    parties: [JPN, KOR]\n", "    parties: [JPN, KOR]\n    term: {years: 100000}\n"),
            "agreements.0.term.years",
        ),
        (("{name: 秘, rank: 3}", "{name: 秘, rank: 99999999999999999999}"), "parties.0.ladder.1.rank"),
    ],
)
def test_a_huge_number_is_a_problem_with_its_line_not_a_crash(edit: tuple[str, str], path: str) -> None:
    text = MINIMAL.replace(*edit)
    assert text != MINIMAL
    (found,) = problems_of(text)
    assert found.path == path and found.line is not None and "less than or equal to" in found.message


def test_a_list_or_mapping_as_a_key_is_a_problem_not_a_crash() -> None:
    (found,) = problems_of("scenario:\n  ? [a, b]\n  : 1\n")
    assert found.line == 2 and "a key must be a plain word" in found.message


def test_read_file_refuses_a_folder_a_device_and_a_pipe(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="a folder; give a YAML file"):
        read_file(tmp_path)
    # a device is read until it ends: /dev/zero never does (this one is empty, and refused alike)
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_file(Path("/dev/null"))
    # a pipe waits for a writer: one writes here, so the old reading returned its text
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)

    def write() -> None:
        with contextlib.suppress(OSError):  # the reader may be gone before it writes
            fifo.write_text("scenario: {name: piped}\n", encoding="utf-8")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with pytest.raises(InvalidInput, match="not a regular file"):
            read_file(fifo)
    finally:
        with contextlib.suppress(OSError), open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb") as drain:
            drain.read()
        writer.join(10)


def test_the_bundled_scenario_says_its_2019_count_after_august_is_uncertain() -> None:
    # the record's 9 exchanges in 2019 is stated by no source: S37 says 8 by 22 November, S38
    # implies more; the statistics "as known now" must be read with that assumption beside them
    rec = parse_scenario(SCENARIO.read_text(encoding="utf-8")).record
    (said,) = [a for a in rec.assumptions if "after 22 August 2019 are uncertain" in a]
    assert "9 in 2019" in said and "[R S37]" in said and "[R S38]" in said
