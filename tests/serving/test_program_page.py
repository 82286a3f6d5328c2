"""A program's page as the service renders it from the live state (here a state made by hand, so
that every part shows): its chance by its target beside the independent product, its dates, the
graph, its milestones with their ripple in words, the edges with their tickets, the assumptions;
an id holding '/', and names from a tracker escaped; the history chart on a program's days."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import quote, urljoin

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from slipcast.live.portfolio import Portfolio
from slipcast.live.records import ProgramHistoryPoint, program_path
from slipcast.serving.app import create_app
from slipcast.serving.charts import history_chart
from tests.helpers import program_edge, program_state

PROGRAM = "gh-acme/launch <2026>"
NAME = '<img src=x onerror="alert(1)"> & launch'


def words(page) -> str:
    """The page's HTML with its line breaks and indents as single spaces."""
    return " ".join(page.text.split())


@pytest.fixture(scope="module")
def shown():
    base = program_state({"A/1": 0.8, "B": 0.5, "C": 0.1},
                         [program_edge("A/1", "B", tickets=[("B-7", "A-3"), ("B-8", "A-4")], open_blockers=2),
                          program_edge("EXT-9", "A/1", external=True, propagated=False, tickets=[("A-1", "EXT-9")]),
                          program_edge("C", "B", source="declared", tickets=[])],
                         path=["A/1", "B"], program_id=PROGRAM, name=NAME, chance=0.42, probability=0.58,
                         independent_chance=0.61, risk_band="high",
                         assumptions=["a blocker outside the store is assumed done on time: it moves nothing"])
    target = base.as_of + timedelta(days=60)
    milestones = [m.model_copy(update={"deadline_at": target, "done_by_deadline": d, "ripple": r,
                                       "when_50": base.as_of + timedelta(days=w), "when_85": base.as_of + timedelta(days=w + 20)})
                  for m, d, r, w in zip(base.milestones, (0.7, 0.8, 0.95), (0.31, 0.421, None), (30, 20, 10))]
    program = base.model_copy(update={"target_at": target, "milestones": milestones,
                                      "done_50": base.as_of + timedelta(days=45),
                                      "done_85": base.as_of + timedelta(days=75)})
    state = Portfolio(version="v", as_of=program.as_of, milestones=[], features={}, tickets={}, projects=[],
                      history=None, model=None, programs=[program])  # type: ignore[arg-type]
    app = create_app()
    app.state.live = SimpleNamespace(get=lambda: state)
    return TestClient(app), program  # its lifespan not run: no store, no models, nothing started


def test_the_page_shows_the_chance_by_the_target_beside_the_independent_product_and_the_dates(shown):
    client, p = shown
    page = client.get("/" + program_path(PROGRAM))
    assert page.status_code == 200
    text = words(page)
    assert f"<h1 id=\"program-title\">{escape(NAME)}" in text and NAME not in text
    assert "Chance it lands by 2026-05-01: <strong>42 %</strong>" in text
    assert "would say 61 %" in text
    assert "50 % chance by 2026-04-16" in text and "85 % by 2026-05-16" in text
    assert 'id="program-graph"' in text and "A/1 → B" in text


def test_each_milestone_says_in_words_what_its_slip_does_to_the_program(shown):
    client, p = shown
    text = words(client.get("/" + program_path(PROGRAM)))
    assert "if A/1 slips 14 days, the program's chance goes from 42 % to 31 %" in text
    assert "if B slips 14 days, the program's chance stays at 42 %" in text  # no change a whole percent shows
    assert "if C slips" not in text  # C's ripple was not drawn
    rows = text.split('<tr class="milestone')[1:]
    assert [r.split('data-id="', 1)[1].split('"', 1)[0] for r in rows] == ["A/1", "B", "C"]
    assert "&#9733;" in rows[0] and "&#9733;" in rows[1] and "&#9733;" not in rows[2]  # the critical path starred


def test_the_edges_show_the_tickets_behind_them_and_the_assumptions_are_listed(shown):
    client, p = shown
    text = words(client.get("/" + program_path(PROGRAM)))
    edges = text.split('id="program-edges"', 1)[1].split("</table>", 1)[0]
    assert "B-7 &rarr; A-3, B-8 &rarr; A-4" in edges and "A-1 &rarr; EXT-9" in edges
    assert "outside the store: assumed done on time" in edges and "declared" in edges
    assumptions = text.split('id="assumptions"', 1)[1]
    assert "a blocker outside the store is assumed done on time" in assumptions


def test_the_id_opens_encoded_or_with_its_slash_and_links_lead_back(shown):
    client, p = shown
    for path in (program_path(PROGRAM), f"programs/{quote(PROGRAM)}"):
        page = client.get("/" + path)
        assert page.status_code == 200, path
        home = page.text.split('<p><a href="', 1)[1].split('"', 1)[0]
        assert urljoin(f"http://testserver/{path}", home) == "http://testserver/"
    assert client.get("/" + program_path("no such program")).status_code == 404


def test_the_history_chart_draws_a_programs_days_with_a_gap_where_it_had_no_forecast():
    start = pd.Timestamp("2026-03-02", tz="UTC").to_pydatetime()
    points = [ProgramHistoryPoint(as_of=start + timedelta(days=i), chance=c, probability=None if c is None else 1 - c,
                                  risk_band=None, done_85=None) for i, c in enumerate([0.9, 0.8, None, 0.5, 0.4, 0.3])]
    svg = ET.fromstring(str(history_chart(points, {"low": 0.0, "medium": 0.3, "high": 0.6})))
    lines = [line.get("points", "").split() for line in svg.iter("{http://www.w3.org/2000/svg}polyline")]
    assert [len(line) for line in lines] == [2, 3]  # the day without a forecast breaks the line
    heights = [float(xy.split(",")[1]) for line in lines for xy in line]
    assert heights == sorted(heights, reverse=True)  # the slip probability rising: the line climbs
