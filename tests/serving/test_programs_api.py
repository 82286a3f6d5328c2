"""Programs served like the rest: the list, one program, its daily history and a what-if, each
with ETags; ids holding '/' (and one ending in '/history'); programs and dependencies declared
through the API, kept across a restart and forecast from the refresh they trigger, a cycle and
an external edge among them (docs/architecture.md, "Programs in the API")."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.core.settings import ProgramDeclaration
from slipcast.ingest.tables import write_tables
from slipcast.live.declarations import declarations_path, read_declarations
from slipcast.serving.app import create_app
from tests.helpers import busiest_time, open_ids, refreshed, serving_programs, unguarded

LAUNCH = "acme/launch 2024"  # a '/' and a space
ODD = "odd/history"  # ends in /history: asked with that slash as %2F


def path(program_id: str, *rest: str) -> str:
    return "/".join([f"/v1/programs/{quote(program_id, safe='')}", *rest])


@pytest.fixture(scope="module")
def api(trained, tmp_path_factory):
    tables = trained["tables"]
    root = tmp_path_factory.mktemp("programs")
    store = write_tables(tables, root / "store")
    now = busiest_time(tables)
    ids = sorted(open_ids(tables, now))
    assert len(ids) >= 3
    declared = [ProgramDeclaration(program_id=LAUNCH, name="Launch", milestones=ids, target_at=now + timedelta(days=60)),
                ProgramDeclaration(program_id=ODD, milestones=ids[:2])]
    s = serving_programs(trained["settings"], root, store, now, declared)
    app = create_app(s, store=unguarded(s))
    with TestClient(app) as client:
        yield {"client": client, "app": app, "settings": s, "now": now, "ids": ids, "tables": tables}


def test_the_list_filters_sorts_and_pages_the_programs_with_an_open_milestone(api):
    client = api["client"]
    page = client.get("/v1/programs").json()
    assert pd.Timestamp(page["as_of"]) == api["now"].floor("h") and page["total"] == 2
    items = {p["program_id"]: p for p in page["items"]}
    launch = items[LAUNCH]
    assert launch["source"] == "declared" and launch["name"] == "Launch" and launch["open_milestones"] == len(api["ids"])
    assert 0 < launch["chance"] < 1 and launch["probability"] == pytest.approx(1 - launch["chance"], abs=1e-4)
    assert [p["probability"] for p in page["items"]] == sorted((p["probability"] for p in page["items"]), reverse=True)
    detail = client.get(path(LAUNCH)).json()
    assert launch == {k: detail[k] for k in launch}  # the list's item is the detail in brief
    assert launch["most_critical"] == detail["milestones"][0]["milestone_id"]
    assert launch["most_critical_share"] == detail["milestones"][0]["criticality"]
    band = launch["risk_band"]
    assert all(p["risk_band"] == band for p in client.get("/v1/programs", params={"band": band}).json()["items"])
    assert client.get("/v1/programs", params={"band": "nonsense"}).json()["total"] == 0
    assert client.get("/v1/programs", params={"source": "epic"}).json()["total"] == 0
    pages = [client.get("/v1/programs", params={"sort": "program_id", "offset": k, "limit": 1}).json()["items"]
             for k in range(2)]
    assert [p[0]["program_id"] for p in pages] == sorted(items)
    assert client.get("/v1/programs", params={"sort": "nonsense"}).status_code == 422


def test_one_program_with_its_milestones_edges_and_the_dates_by_which_it_is_done(api):
    client, now = api["client"], api["now"]
    detail = client.get(path(LAUNCH)).json()
    assert [m["milestone_id"] for m in detail["milestones"]] != [] and detail["critical_path"]
    assert {m["milestone_id"] for m in detail["milestones"]} == set(api["ids"])
    shares = [m["criticality"] for m in detail["milestones"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) >= 1 - 1e-3  # each draw has a last milestone
    target = now + timedelta(days=60)
    for m in detail["milestones"]:
        assert m["state"] == "open" and pd.Timestamp(m["deadline_at"]) == target and 0 <= m["done_by_deadline"] <= 1
        assert m["ripple"] is None or m["ripple"] <= detail["chance"]  # a slip never helps
    assert pd.Timestamp(detail["done_50"]) <= pd.Timestamp(detail["done_85"])
    for edge in detail["edges"]:  # the tickets behind each edge, the waiting one first
        assert edge["source"] == "links" and edge["tickets"] and all(len(pair) == 2 for pair in edge["tickets"])
        assert edge["blocker"] in api["ids"] or edge["dependent"] in api["ids"]
    assert detail["draws"] == api["settings"].programs.draws and detail["model"]["version"] == "1"
    assert client.get(path("no such program")).status_code == 404


def test_an_id_with_a_slash_opens_encoded_or_not_and_one_ending_in_history_by_its_encoded_slash(api):
    client = api["client"]
    assert client.get(f"/v1/programs/{quote(LAUNCH)}").json()["program_id"] == LAUNCH  # its slash left as it is
    own = client.get(f"/v1/programs/{quote('odd', safe='')}%2Fhistory")
    assert own.status_code == 200 and own.json()["program_id"] == ODD and "milestones" in own.json()
    history = client.get(path(ODD, "history"))
    assert history.status_code == 200 and history.json()["program_id"] == ODD and history.json()["points"]
    assert client.get("/v1/programs/odd/history").status_code == 404  # the history of a program "odd"


def test_the_history_is_daily_from_the_first_milestones_start_to_the_state(api):
    client, now, tables = api["client"], api["now"], api["tables"]
    answer = client.get(path(LAUNCH, "history")).json()
    points = answer["points"]
    days = [pd.Timestamp(p["as_of"]) for p in points]
    first = tables.milestones.set_index("milestone_id").loc[api["ids"], "start_at"].min()
    assert days[0] == first and all(b - a == timedelta(days=1) for a, b in zip(days, days[1:]))
    assert days[-1] <= now < days[-1] + timedelta(days=1)
    assert answer["draws"] == api["settings"].programs.history_draws < api["settings"].programs.draws
    started = tables.milestones.set_index("milestone_id").loc[api["ids"], "start_at"]
    for day, p in zip(days, points):  # the milestones open each day (with scope) are the ones drawn
        assert p["open_milestones"] <= sum(started <= day)
        assert (p["chance"] is None) == (p["open_milestones"] == 0)
        assert p["chance"] is None or p["probability"] == pytest.approx(1 - p["chance"], abs=1e-4)
    assert points[-1]["open_milestones"] == len(api["ids"])
    live = client.get(path(LAUNCH)).json()
    assert points[-1]["chance"] == pytest.approx(live["chance"], abs=0.05)  # a few hours earlier, fewer draws


def test_every_program_read_answers_304_while_the_state_is_unchanged(api):
    client = api["client"]
    for asked in ("/v1/programs", path(LAUNCH), path(LAUNCH, "history"), path(ODD, "history"),
                  f"/v1/programs/{quote('odd', safe='')}%2Fhistory"):
        first = client.get(asked)
        tag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "no-cache"
        for given in (tag, f"W/{tag}", "*", f'"elsewhere", {tag}'):
            again = client.get(asked, headers={"If-None-Match": given})
            assert again.status_code == 304 and again.headers["ETag"] == tag and not again.content, (asked, given)
        assert client.get(asked, headers={"If-None-Match": '"elsewhere"'}).status_code == 200
    tags = {client.get(p).headers["ETag"] for p in (path(LAUNCH), path(LAUNCH, "history"), path(ODD, "history"))}
    assert len(tags) == 3


def test_a_slip_on_the_same_draws_is_the_ripple_and_a_later_target_helps(api):
    client, now = api["client"], api["now"]
    before = client.get(path(LAUNCH)).json()
    top = before["milestones"][0]
    days = api["settings"].programs.ripple_days
    slipped = client.post(path(LAUNCH, "what-if"), json={"slip": [{"milestone_id": top["milestone_id"], "days": days}]})
    assert slipped.status_code == 200, slipped.text
    out = slipped.json()
    assert out["before"] == before and out["after"]["chance"] == top["ripple"] < before["chance"]
    assert out["delta"] == pytest.approx(top["ripple"] - before["chance"], abs=1e-4)
    later = client.post(path(LAUNCH, "what-if"), json={"target_at": (now + timedelta(days=150)).isoformat()}).json()
    assert later["after"]["chance"] > before["chance"] and later["delta"] > 0
    assert pd.Timestamp(later["after"]["target_at"]) == now + timedelta(days=150)
    assert all(pd.Timestamp(m["deadline_at"]) == now + timedelta(days=150) for m in later["after"]["milestones"])
    # the target moves the deadlines, not the work
    assert abs(pd.Timestamp(later["after"]["done_85"]) - pd.Timestamp(later["before"]["done_85"])) < timedelta(days=2)
    moved = client.post(path(LAUNCH, "what-if"), json={"deadlines": [
        {"milestone_id": top["milestone_id"], "deadline_at": (now + timedelta(days=150)).isoformat()}]}).json()
    mine = next(m for m in moved["after"]["milestones"] if m["milestone_id"] == top["milestone_id"])
    assert pd.Timestamp(mine["deadline_at"]) == now + timedelta(days=150)
    assert mine["done_by_deadline"] > top["done_by_deadline"] and moved["after"]["chance"] >= before["chance"]


def test_cutting_scope_asks_the_milestones_chances_again_without_those_tickets(api):
    client = api["client"]
    before = client.get(path(LAUNCH)).json()
    top = before["milestones"][0]["milestone_id"]
    state = api["app"].state.live.get()
    committed = state.history.committed(top, state.as_of)
    cut = client.post(path(LAUNCH, "what-if"), json={"cut_scope": [
        {"milestone_id": top, "remove_tickets": committed[: len(committed) // 2]}]})
    assert cut.status_code == 200, cut.text
    after = {m["milestone_id"]: m for m in cut.json()["after"]["milestones"]}
    was = {m["milestone_id"]: m for m in before["milestones"]}
    assert after[top]["done_by_deadline"] > was[top]["done_by_deadline"]
    assert all(after[m]["done_by_deadline"] == was[m]["done_by_deadline"] for m in was if m != top)


@pytest.mark.parametrize("body, where", [
    ({"slip": [{"milestone_id": "NOPE-1", "days": 3}]}, ["body", "slip", 0, "milestone_id"]),
    ({"slip": [{"milestone_id": "{top}", "days": 3}, {"milestone_id": "{top}", "days": 4}]},
     ["body", "slip", 1, "milestone_id"]),
    ({"slip": [{"milestone_id": "{top}", "days": 400}]}, ["body", "slip", 0, "days"]),
    ({"slip": [{"milestone_id": "{top}", "days": 3, "extra": 1}]}, ["body", "slip", 0, "extra"]),
    ({"target_at": "2001-01-01T00:00:00Z"}, ["body", "target_at"]),
    ({"target_at": "2030-01-01T00:00:00"}, ["body", "target_at"]),
    ({"deadlines": [{"milestone_id": "{top}", "deadline_at": "2001-01-01T00:00:00Z"}]},
     ["body", "deadlines", 0, "deadline_at"]),
    ({"cut_scope": [{"milestone_id": "{top}", "remove_tickets": ["NOT-A-TICKET"]}]},
     ["body", "cut_scope", 0, "remove_tickets"]),
    ({"cut_scope": [{"milestone_id": "{top}", "remove_tickets": []}]}, ["body", "cut_scope", 0, "remove_tickets"]),
    ({}, ["body"]),
])
def test_a_bad_what_if_is_a_422_naming_the_field(api, body, where):
    client = api["client"]
    top = client.get(path(LAUNCH)).json()["milestones"][0]["milestone_id"]
    sent = json.loads(json.dumps(body).replace("{top}", top))
    answer = client.post(path(LAUNCH, "what-if"), json=sent)
    assert answer.status_code == 422, answer.text
    assert [e["loc"] for e in answer.json()["detail"]] == [where], answer.json()
    assert client.post(path("no such program", "what-if"), json={"target_at": "2030-01-01T00:00:00Z"}).status_code \
        == 404
    assert client.post(f"/v1/programs/{quote('odd', safe='')}%2Fwhat-if",
                       json={"target_at": "2030-01-01T00:00:00Z"}).status_code == 405  # a program takes no POST


def test_a_program_declared_through_the_api_is_forecast_after_the_refresh_it_triggers_and_kept(api):
    client, app, s, ids = api["client"], api["app"], api["settings"], api["ids"]
    new = "teams/new one"
    answer = {}
    refreshed(app, lambda: answer.update(put=client.put(path(new), json={"name": "New", "milestones": ids[1:]})))
    assert answer["put"].status_code == 201, answer["put"].text
    assert answer["put"].json() == {"program_id": new, "name": "New", "milestones": ids[1:], "target_at": None}
    listed = {p["program_id"]: p for p in client.get("/v1/programs").json()["items"]}
    assert listed[new]["source"] == "declared" and listed[new]["open_milestones"] == len(ids) - 1
    assert client.get(path(new)).json()["target_at"] is None
    # kept for a restart (and every worker): a new service on the same work folder lists it
    assert json.loads(declarations_path(s).read_text())["programs"][0]["program_id"] == new
    with TestClient(create_app(s, store=unguarded(s))) as restarted:
        assert new in {p["program_id"] for p in restarted.get("/v1/programs").json()["items"]}
    target = (api["now"] + timedelta(days=90)).isoformat()
    again = {}
    refreshed(app, lambda: again.update(put=client.put(path(new), json={"milestones": ids[1:], "target_at": target})))
    assert again["put"].status_code == 200 and pd.Timestamp(client.get(path(new)).json()["target_at"]) == pd.Timestamp(target)
    refreshed(app, lambda: client.delete(path(new)))
    assert client.get(path(new)).status_code == 404 and client.delete(path(new)).status_code == 404


@pytest.mark.parametrize("asked, body, status, where", [
    (LAUNCH, {"milestones": ["A"]}, 409, None),  # the settings declare it
    ("x", {"milestones": []}, 422, ["body", "milestones"]),
    ("x", {"milestones": ["A", "A"]}, 422, ["body"]),
    ("x", {"milestones": ["A"], "target_at": "2030-01-01"}, 422, ["body", "target_at"]),
    ("x", {"milestones": ["A"], "owner": "me"}, 422, ["body", "owner"]),
    ("x" * 201, {"milestones": ["A"]}, 422, ["path", "program_id"]),
])
def test_a_bad_declaration_is_refused_naming_the_field(api, asked, body, status, where):
    answer = api["client"].put(path(asked), json=body)
    assert answer.status_code == status, answer.text
    if where is not None:
        assert [e["loc"] for e in answer.json()["detail"]] == [where]
    assert read_declarations(api["settings"]).program(asked) is None


def test_declared_dependencies_make_a_cycle_and_an_external_edge_that_are_reported_not_carried(api):
    client, app, ids = api["client"], api["app"], api["ids"]
    a, b, c = ids[:3]
    declared = [{"blocker": a, "dependent": b}, {"blocker": b, "dependent": a}, {"blocker": "ELSEWHERE-7", "dependent": c}]
    answer = {}
    refreshed(app, lambda: answer.update(put=client.put("/v1/dependencies", json={"dependencies": declared})))
    assert answer["put"].status_code == 200
    assert answer["put"].json()["items"] == [{**d, "source": "api"} for d in declared]
    assert client.get("/v1/dependencies").json() == answer["put"].json()
    detail = client.get(path(LAUNCH)).json()
    assert [a, b] in detail["cycles"] or sorted([a, b]) in detail["cycles"]
    mine = {(e["blocker"], e["dependent"]): e for e in detail["edges"] if e["source"] == "declared"}
    assert mine[(a, b)]["in_cycle"] and not mine[(a, b)]["propagated"]
    assert mine[("ELSEWHERE-7", c)]["external"] and not mine[("ELSEWHERE-7", c)]["propagated"]
    assert any("outside the store" in x for x in detail["assumptions"])
    assert any("cycle" in x and a in x and b in x for x in detail["assumptions"])
    refreshed(app, lambda: client.put("/v1/dependencies", json={"dependencies": []}))
    assert client.get(path(LAUNCH)).json()["cycles"] == [] and client.get("/v1/dependencies").json()["items"] == []


@pytest.mark.parametrize("dependencies, where", [
    ([{"blocker": "A", "dependent": "A"}], ["body", "dependencies", 0, "dependent"]),
    ([{"blocker": "A", "dependent": "B"}, {"blocker": "A", "dependent": "B"}], ["body", "dependencies", 1]),
    ([{"blocker": "A"}], ["body", "dependencies", 0, "dependent"]),
])
def test_a_bad_dependency_is_a_422_naming_it(api, dependencies, where):
    answer = api["client"].put("/v1/dependencies", json={"dependencies": dependencies})
    assert answer.status_code == 422 and [e["loc"] for e in answer.json()["detail"]] == [where], answer.text


def test_the_program_routes_are_in_the_openapi_document(api):
    spec = api["client"].get("/openapi.json").json()
    routes = spec["paths"]
    assert {"get"} <= set(routes["/v1/programs"]) and {"get", "put", "delete"} <= set(routes["/v1/programs/{program_id}"])
    assert "get" in routes["/v1/programs/{program_id}/history"] and "post" in routes["/v1/programs/{program_id}/what-if"]
    assert {"get", "put"} <= set(routes["/v1/dependencies"])
    schemas = spec["components"]["schemas"]
    for name in ("ProgramPage", "ProgramState", "ProgramHistory", "ProgramWhatIfRequest", "ProgramWhatIfResponse"):
        assert name in schemas
    assert "304" in routes["/v1/programs/{program_id}"]["get"]["responses"]
    assert schemas["ProgramHistory"]["properties"]["draws"]["description"]
