"""A program's dependency graph as the page draws it (``serving.program_graph``), read back as the
SVG (XML) a browser gets: columns by dependency depth, the critical path marked in colour and
text, a cycle laid out once, an external blocker drawn apart, ids from trackers escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from slipcast.live.records import ProgramState
from slipcast.serving.program_graph import STAR, program_graph
from tests.helpers import program_edge as edge
from tests.helpers import program_state as program

SVG = "{http://www.w3.org/2000/svg}"


def drawn(p: ProgramState) -> tuple[dict[str, ET.Element], list[ET.Element]]:
    """The graph's boxes by id and its arrows, parsed as XML (a stray '<' or '&' would fail here)."""
    svg = ET.fromstring(str(program_graph(p)))
    boxes = {g.get("data-id"): g for g in svg.iter(f"{SVG}g") if "node" in g.get("class", "").split()}
    return boxes, [a for a in svg.iter(f"{SVG}path") if "edge" in a.get("class", "").split()]


def x_of(box: ET.Element) -> float:
    rect = box.find(f"{SVG}rect")
    assert rect is not None
    return float(rect.get("x", "nan"))


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def test_boxes_stand_in_columns_by_dependency_depth_and_arrows_run_blocker_to_dependent():
    p = program({"A": 0.9, "B": 0.6, "C": 0.8, "D": 0.1},
               [edge("A", "B"), edge("B", "C"), edge("A", "C")], path=["A", "B", "C"])
    boxes, arrows = drawn(p)
    assert set(boxes) == {"A", "B", "C", "D"}
    assert x_of(boxes["A"]) == x_of(boxes["D"]) < x_of(boxes["B"]) < x_of(boxes["C"])  # C after its latest blocker
    assert {(a.get("data-blocker"), a.get("data-dependent")) for a in arrows} == {("A", "B"), ("B", "C"), ("A", "C")}
    for a in arrows:  # each starts at its blocker's right side and ends left of its dependent
        start, end = a.get("d", "").split()[0], a.get("d", "").split()[-1]
        assert float(start[1:].split(",")[0]) <= x_of(boxes[a.get("data-dependent", "")])
        assert float(end.split(",")[0]) < x_of(boxes[a.get("data-dependent", "")]) + 1


def test_the_critical_path_is_marked_in_colour_and_in_text_and_each_box_titled_with_its_criticality():
    p = program({"A": 0.9, "B": 0.6, "C": 0.8, "D": 0.1},
               [edge("A", "B"), edge("B", "C"), edge("A", "C"), edge("D", "C")], path=["A", "B", "C"])
    boxes, arrows = drawn(p)
    assert {m for m, b in boxes.items() if "critical" in classes(b)} == {"A", "B", "C"}
    for m, b in boxes.items():
        caption = "".join(b.itertext())
        assert (STAR in caption) == (m in {"A", "B", "C"})  # a text mark, not colour alone
        title = b.find(f"{SVG}title")
        assert title is not None and "criticality" in (title.text or "")
    assert "criticality 10 %" in (boxes["D"].find(f"{SVG}title").text or "")  # type: ignore[union-attr]
    critical = {(a.get("data-blocker"), a.get("data-dependent")) for a in arrows if "critical" in classes(a)}
    assert critical == {("A", "B"), ("B", "C")}  # A -> C and D -> C are not on the path
    colours = {a.get("stroke") for a in arrows if "critical" in classes(a)}
    assert len(colours) == 1 and colours != {a.get("stroke") for a in arrows if "critical" not in classes(a)}


def test_a_cycle_is_laid_out_once_its_arrows_drawn_apart_and_what_waits_on_it_stands_right_of_it():
    p = program({"X": 0.9, "A": 0.5, "B": 0.4, "C": 0.3, "E": 0.2},
               [edge("A", "B", in_cycle=True, propagated=False), edge("B", "A", in_cycle=True, propagated=False),
                edge("C", "A"), edge("B", "E"), edge("B", "X")], path=["C", "A"])
    boxes, arrows = drawn(p)
    assert sorted(boxes) == ["A", "B", "C", "E", "X"]  # each once
    for a in arrows:  # every arrow outside the cycle runs left to right
        blocker, dependent = boxes[a.get("data-blocker", "")], boxes[a.get("data-dependent", "")]
        if "cycle" not in classes(a):
            assert x_of(blocker) < x_of(dependent), (a.get("data-blocker"), a.get("data-dependent"))
    cycle = [a for a in arrows if "cycle" in classes(a)]
    assert {(a.get("data-blocker"), a.get("data-dependent")) for a in cycle} == {("A", "B"), ("B", "A")}
    assert all(a.get("stroke-dasharray") for a in cycle)
    assert x_of(boxes["A"]) != x_of(boxes["B"])  # cut once: one of its arrows forward, the other back
    # a self-loop declared by hand is drawn too, without hanging the layout
    boxes, _ = drawn(program({"A": 0.5}, [edge("A", "A", source="declared")], path=["A"]))
    assert list(boxes) == ["A"]


def test_an_external_blocker_is_drawn_apart_as_assumed_on_time():
    p = program({"A": 0.7, "B": 0.3}, [edge("OTHER-12", "A", external=True, propagated=False), edge("A", "B")],
                path=["A", "B"])
    boxes, arrows = drawn(p)
    assert set(boxes) == {"A", "B", "OTHER-12"}
    outside = boxes["OTHER-12"]
    assert "external" in classes(outside) and "critical" not in classes(outside)
    assert "assumed on time" in "".join(outside.itertext())
    assert x_of(outside) < x_of(boxes["A"]) < x_of(boxes["B"])
    (external,) = [a for a in arrows if "external" in classes(a)]
    assert (external.get("data-blocker"), external.get("data-dependent")) == ("OTHER-12", "A")
    assert external.get("stroke-dasharray")


def test_ids_and_names_from_trackers_are_escaped():
    odd = 'x"><script>alert(1)</script>&amp;'
    p = program({odd: 0.6, "B": 0.4}, [edge(odd, "B")], path=[odd, "B"])
    p = p.model_copy(update={"name": "<b>launch</b> & co"})
    svg = str(program_graph(p))
    assert "<script>" not in svg and "<b>" not in svg
    boxes, arrows = drawn(p)
    assert odd in boxes and arrows[0].get("data-blocker") == odd
    title = boxes[odd].find(f"{SVG}title")
    assert title is not None and (title.text or "").startswith(odd)


def test_a_long_id_is_shortened_in_its_box_and_whole_in_its_title():
    long = "gh-some-organisation/a-rather-long-repository-name-ms-12"
    boxes, _ = drawn(program({long: 1.0}, [], path=[long]))
    text = [t.text or "" for t in boxes[long].iter(f"{SVG}text")]
    assert text[0].endswith("\u2026") and len(text[0]) < len(long)
    assert (boxes[long].find(f"{SVG}title").text or "").startswith(long)  # type: ignore[union-attr]
