"""The milestone dependency graph and programs, from hand-made histories: point in time, cycles,
external blockers, programs from epics, shared names and declarations."""

from __future__ import annotations

import pandas as pd
import pytest

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration, ProgramSettings
from slipcast.core.vocabulary import ProgramSource
from slipcast.features.programs import dependency_graph, dependency_lag_days, programs_at
from slipcast.features.timeline import build_timelines, micros
from slipcast.ingest.tables import make_tables

T0 = pd.Timestamp("2026-01-05", tz="UTC")


def day(n: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=n)


def at(n: float) -> int:
    return int(micros([day(n)])[0])


def history(links: list[tuple[str, str, str, float]], names: dict[str, str] | None = None,
            done: dict[str, float] | None = None, due: dict[str, float] | None = None):
    """Milestones A1 (project A), B1 (B), C1 (C), each holding tickets <project>-1 and -2 from day
    0; ``links`` (from, to, kind, day created); ``done``: ticket -> the day it was finished."""
    names, due = names or {}, due or {}
    ms = pd.DataFrame([{"milestone_id": m, "project": m[0], "name": names.get(m, m), "kind": "release",
                        "start_at": day(0), "due_at": day(due.get(m, 30)), "completed_at": None}
                       for m in ("A1", "B1", "C1")])
    tickets, events = [], []
    for m in ("A1", "B1", "C1"):
        for i in (1, 2):
            t = f"{m[0]}-{i}"
            tickets.append({"ticket_id": t, "project": m[0], "type": "Story", "created_at": day(-1), "status": "todo"})
            events += [{"ticket_id": t, "at": day(-1), "field": "status", "to_value": "todo"},
                       {"ticket_id": t, "at": day(0), "field": "milestone", "to_value": m}]
    tickets.append({"ticket_id": "PGM-1", "project": "PGM", "type": "Epic", "created_at": day(-2), "status": "todo"})
    events.append({"ticket_id": "PGM-1", "at": day(-2), "field": "status", "to_value": "todo"})
    for t, d in (done or {}).items():
        events.append({"ticket_id": t, "at": day(d), "field": "status", "from_value": "todo", "to_value": "done"})
    lk = pd.DataFrame([{"from_ticket": a, "to_ticket": b, "kind": k, "created_at": day(d)} for a, b, k, d in links],
                      columns=["from_ticket", "to_ticket", "kind", "created_at"])
    return make_tables(ms, pd.DataFrame(tickets), pd.DataFrame(events), lk)


def test_edges_come_from_links_between_milestones_with_their_tickets():
    tl = build_timelines(history([("B-1", "A-1", "depends_on", 1), ("A-2", "C-2", "blocks", 1),
                                  ("A-1", "A-2", "depends_on", 1)]))
    graph = dependency_graph(tl, at(5))
    edges = {(e.blocker, e.dependent): e for e in graph.edges}
    assert set(edges) == {("A1", "B1"), ("A1", "C1")}  # within one milestone: no edge
    assert edges[("A1", "B1")].tickets == (("B-1", "A-1"),)
    assert edges[("A1", "C1")].tickets == (("C-2", "A-2"),)  # "A-2 blocks C-2": C-2 waits on A-2
    assert graph.cycles == []
    assert all(graph.propagated(e) for e in graph.edges)


def test_edges_are_point_in_time():
    tl = build_timelines(history([("B-1", "A-1", "depends_on", 10)], done={"A-1": 20}))
    assert dependency_graph(tl, at(5)).edges == []  # the link did not exist yet
    waiting = dependency_graph(tl, at(15)).edges[0]
    assert waiting.open_blockers == 1
    finished = dependency_graph(tl, at(25))
    assert finished.edges[0].open_blockers == 0 and not finished.propagated(finished.edges[0])


def test_a_cycle_is_reported_with_its_milestones_and_not_followed():
    tl = build_timelines(history([("B-1", "A-1", "depends_on", 1), ("C-1", "B-2", "depends_on", 1),
                                  ("A-2", "C-2", "depends_on", 1)]))
    graph = dependency_graph(tl, at(5))
    assert graph.cycles == [("A1", "B1", "C1")]
    assert len(graph.edges) == 3 and not any(graph.propagated(e) for e in graph.edges)
    assert {t for e in graph.edges for t in e.tickets} == {("B-1", "A-1"), ("C-1", "B-2"), ("A-2", "C-2")}


def test_a_blocker_outside_the_store_is_an_external_edge():
    tl = build_timelines(history([("B-1", "OTHER-9", "depends_on", 1)]))
    (edge,) = dependency_graph(tl, at(5)).edges
    assert (edge.blocker, edge.dependent, edge.external) == ("OTHER-9", "B1", True)
    assert not dependency_graph(tl, at(5)).propagated(edge)


def test_declared_edges_join_the_links_and_can_close_a_cycle():
    tl = build_timelines(history([("B-1", "A-1", "depends_on", 1)]))
    graph = dependency_graph(tl, at(5), [DependencyDeclaration(blocker="B1", dependent="A1"),
                                         DependencyDeclaration(blocker="C1", dependent="B1")])
    assert {(e.blocker, e.dependent, e.source) for e in graph.edges} == {
        ("A1", "B1", "links"), ("B1", "A1", "declared"), ("C1", "B1", "declared")}
    assert graph.cycles == [("A1", "B1")]


def test_programs_from_an_epic_a_shared_name_and_a_declaration():
    tables = history([("PGM-1", "A-1", "parent", 0), ("PGM-1", "B-2", "parent", 0)],
                     names={"B1": "2.0", "C1": "2.0"})
    tl = build_timelines(tables)
    names = pd.Series(tables.milestones["name"].to_numpy(), index=tables.milestones["milestone_id"].to_numpy())
    settings = ProgramSettings(declared=[ProgramDeclaration(program_id="launch", milestones=["A1", "C1"],
                                                            target_at=day(40).to_pydatetime())])
    found = {p.program_id: p for p in programs_at(tl, names, at(5), settings)}
    assert found["PGM-1"].milestones == ("A1", "B1") and found["PGM-1"].source == ProgramSource.EPIC
    assert found["2.0"].milestones == ("B1", "C1") and found["2.0"].source == ProgramSource.SHARED_NAME
    assert found["launch"].target_at == day(40) and found["launch"].source == ProgramSource.DECLARED
    # a program needs no edges, and the same set of milestones is one program
    same = ProgramSettings(declared=[ProgramDeclaration(program_id="again", milestones=["B1", "C1"])])
    assert "2.0" not in {p.program_id for p in programs_at(tl, names, at(5), same)}
    off = ProgramSettings(from_epics=False, from_shared_names=False)
    assert programs_at(tl, names, at(5), off) == []


def test_an_epic_within_one_project_is_no_program():
    tl = build_timelines(history([("PGM-1", "A-1", "parent", 0), ("PGM-1", "A-2", "parent", 0)]))
    assert programs_at(tl, pd.Series(dtype=object), at(5), ProgramSettings()) == []


@pytest.mark.parametrize("done, expected", [({"A-1": 10, "B-1": 13}, 3.0), ({}, 1.5)])
def test_the_lag_after_a_blocker_is_read_from_finished_dependencies(done, expected):
    tl = build_timelines(history([("B-1", "A-1", "depends_on", 1)], done=done))
    assert dependency_lag_days(tl, at(29), default=1.5) == pytest.approx(expected)
    assert dependency_lag_days(tl, at(12), default=1.5) == 1.5  # not yet finished by then


def test_one_name_due_far_apart_is_no_program():
    tables = history([], names={"A1": "1.0", "B1": "1.0", "C1": "1.0"}, due={"A1": 30, "B1": 60, "C1": 400})
    tl = build_timelines(tables)
    names = pd.Series(tables.milestones["name"].to_numpy(), index=tables.milestones["milestone_id"].to_numpy())
    (program,) = programs_at(tl, names, at(5), ProgramSettings(shared_name_days=45))
    assert program.program_id == "1.0" and program.milestones == ("A1", "B1")
    assert programs_at(tl, names, at(5), ProgramSettings(shared_name_days=20)) == []
