"""Which recorded decisions a traffic replay reads: names as an analyst types them (a party's
alias, a topic in any case) select what the exchange recorded under the canonical name."""

from __future__ import annotations

from pathlib import Path

from gsomia.domain.record import WhatIf
from tests.harness import start

SUSPENSION = WhatIf("no-suspension", drop=("jpn-kor-2019-suspension",))


def test_a_topic_in_another_case_selects_the_decisions_of_the_catalogues_topic(tmp_path: Path) -> None:
    h = start(tmp_path)
    try:
        h.submit("JPN", recipients=("KOR", "USA"), id="launch")
        h.submit("JPN", recipients=("KOR",), id="movement", topic="dprk.military.movement")
        analysis = h.app.analysis
        exact = analysis.traffic_selection(topic="dprk.missile.launch")
        typed = analysis.traffic_selection(parties=["jp", "ROK"], topic="DPRK.MISSILE.LAUNCH")
        assert (typed.topic, typed.parties) == ("dprk.missile.launch", ("JPN", "KOR"))
        assert analysis.traffic(SUSPENSION, typed).impact.decisions == 1  # JPN→KOR, not JPN→USA
        assert analysis.traffic(SUSPENSION, exact).impact.decisions == 2  # not the movement report
        replay = analysis.traffic(SUSPENSION, analysis.traffic_selection(topic="Dprk.Missile.Launch"))
        assert replay.impact.decisions == 2 and replay.selection.topic == "dprk.missile.launch"
    finally:
        h.close()
