"""Programs in the live state: their forecasts recorded in the ledger at each refresh (once however
many workers built it) and backfilled day by day as their history shows them, on SQLite and
PostgreSQL; an alert when a program's chance drops, delivered once to a receiver on loopback; a
history forecast in one prediction as day by day; scope cut as the what-if endpoint cuts it."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from datetime import timedelta
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.core.contracts import past_outcomes
from slipcast.core.settings import AlertSubscription, ProgramDeclaration
from slipcast.features.store_history import History
from slipcast.ingest.tables import write_tables
from slipcast.live.alerts import program_event, reasons
from slipcast.live.backfill import backfill
from slipcast.live.completion import done_chances
from slipcast.live.ledger import PROGRAMS, Ledger
from slipcast.live.programs import forecast_programs, program_context, program_history, programs_of
from slipcast.live.records import ProgramState
from slipcast.serving.app import create_app
from slipcast.tools.requests import request_for
from tests.helpers import POSTGRES, busiest_time, open_ids, postgres_ledger, refreshed, serving_programs, unguarded
from tests.live.test_alerts import SECRET, Receiver

LAUNCH = "acme/launch 2024"


@pytest.fixture(scope="module")
def setup(trained, tmp_path_factory):
    tables = trained["tables"]
    root = tmp_path_factory.mktemp("programs-live")
    store = write_tables(tables, root / "store")
    now = busiest_time(tables)
    ids = sorted(open_ids(tables, now))
    declared = [ProgramDeclaration(program_id=LAUNCH, milestones=ids, target_at=now + timedelta(days=60)),
                ProgramDeclaration(program_id="pair", milestones=ids[:2])]
    return {"tables": tables, "store": store, "now": now, "ids": ids, "root": root, "declared": declared,
            "settings": serving_programs(trained["settings"], root, store, now, declared),
            "outcomes": past_outcomes(trained["sets"]["milestone"]), "trained": trained}


def _listed(client) -> dict[str, dict]:
    return {p["program_id"]: p for p in client.get("/v1/programs").json()["items"]}


def _recorded_once_and_backfilled(s, setup) -> None:
    """Each refresh's program forecasts are in the ledger once, whichever workers built the state;
    a backfill records each program's history as its endpoint shows it, apart from them."""
    now = setup["now"]
    answers = []
    for minutes in (0, 20):  # two workers refreshing within one period: the same state, recorded once
        late = s.model_copy(update={"serving": s.serving.model_copy(update={
            "as_of": (now + timedelta(minutes=minutes)).to_pydatetime()})})
        with TestClient(create_app(late)) as client:
            answers.append(_listed(client))
    assert answers[0] == answers[1] and set(answers[0]) == {LAUNCH, "pair"}
    ledger = Ledger(s.serving.ledger_url)
    rows = ledger.forecasts(backfilled=False, about=PROGRAMS)
    assert len(rows) == len(answers[0])
    for row in rows:
        shown = answers[0][row["program_id"]]
        assert (row["chance"], row["probability"], row["risk_band"], row["open_milestones"]) == \
            (shown["chance"], shown["probability"], shown["risk_band"], shown["open_milestones"])
        for key in ("as_of", "done_50", "done_85"):
            assert row[key] == (None if shown[key] is None else pd.Timestamp(shown[key]))
        assert row["draws"] == s.programs.draws and row["model_version"] == "1" and not row["backfilled"]
    report = backfill(s, setup["store"], now.to_pydatetime())
    assert report.programs == 2 and report.programs_recorded == report.program_forecasts > 2
    assert "programs" in report.format()
    assert backfill(s, setup["store"], now.to_pydatetime()).programs_recorded == 0  # the same model: nothing new
    assert ledger.forecasts(backfilled=False, about=PROGRAMS) == rows
    with TestClient(create_app(s)) as client:
        for program_id in (LAUNCH, "pair"):
            shown = [p for p in client.get(f"/v1/programs/{quote(program_id, safe='')}/history").json()["points"]
                     if p["chance"] is not None]
            kept = ledger.forecasts(program_id, backfilled=True, about=PROGRAMS)
            assert [(r["as_of"], r["chance"], r["probability"], r["risk_band"], r["open_milestones"]) for r in kept] == \
                [(pd.Timestamp(p["as_of"]), p["chance"], p["probability"], p["risk_band"], p["open_milestones"])
                 for p in shown]
            assert all(r["draws"] == s.programs.history_draws for r in kept)


def test_program_forecasts_are_recorded_once_and_backfilled_as_their_history_shows(setup):
    _recorded_once_and_backfilled(setup["settings"], setup)


@POSTGRES
def test_the_same_program_records_on_postgresql(setup, tmp_path):
    s = setup["settings"]
    s = s.model_copy(update={"work_dir": tmp_path / "work",
                             "serving": s.serving.model_copy(update={"ledger_url": postgres_ledger()})})
    _recorded_once_and_backfilled(s, setup)


def test_a_programs_history_in_one_prediction_is_its_forecast_day_by_day(setup):
    """``program_history`` forecasts every day in one prediction; each day equals that day's
    forecast alone, with the context of its period and the history's draws."""
    s = setup["settings"]
    history = History(setup["tables"], s.features)
    model = unguarded(s).get("milestone")
    (program,) = [p for p in programs_of(history, setup["now"].to_pydatetime(), s, setup["declared"])
                  if p.program_id == LAUNCH]
    days = pd.date_range(setup["now"] - timedelta(days=9), setup["now"], freq="D")
    together = program_history(history, program, days, model, s)
    period = pd.Timedelta(days=s.programs.history_context_days).value
    for day, point in zip(days, together):
        start = pd.Timestamp(day.value // period * period, tz="UTC").to_pydatetime()
        context = replace(program_context(history, start, s), as_of=day.to_pydatetime())
        (alone,) = forecast_programs(context, [program], model, s, draws=s.programs.history_draws, ripples=0)
        assert point == alone.point()
    assert len({p.chance for p in together}) > 1


def test_scope_cut_is_what_the_what_if_endpoint_says_without_those_tickets(setup):
    """A milestone's chance of being done by a day with tickets cut (``done_chances``) is one minus
    what the milestone what-if endpoint serves with those tickets removed and the due date moved
    to that day (docs/architecture.md, "Programs in the API")."""
    s, now, tables = setup["settings"], setup["now"], setup["tables"]
    models = unguarded(s)
    model = models.get("milestone")
    history = History(tables, s.features)
    moved = 0
    with TestClient(create_app(s, store=models)) as client:
        for milestone in setup["ids"]:
            cut = history.committed(milestone, now)[::2]
            for days in (10.0, 45.0):
                chance = done_chances(history, [milestone], now.to_pydatetime(), model, [days], [set(cut)])[0, 0]
                body = {"forecast": request_for(tables, milestone, now, setup["outcomes"]),
                        "change": {"remove_tickets": cut, "due_at": (now + timedelta(days=days)).isoformat()}}
                answer = client.post("/v1/forecasts/what-if", json=body)
                assert answer.status_code == 200, answer.text
                assert chance == pytest.approx(1 - answer.json()["after"]["probability"], abs=1e-4), (milestone, days)
                moved += chance != done_chances(history, [milestone], now.to_pydatetime(), model, [days])[0, 0]
    assert moved  # the cut changes what the model says


def test_a_drop_in_a_programs_chance_is_posted_once_signed_with_its_page_link(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIPCAST_TEST_HOOK_SECRET", SECRET)
    now, ids = setup["now"], setup["ids"]
    with Receiver() as receiver:
        hook = AlertSubscription(url=f"{receiver.url}/hooks", secret_env="SLIPCAST_TEST_HOOK_SECRET", band_rise=False,
                                 program_drop_points=0.1, within_days=7, page_url="https://dash.example/page")
        s = serving_programs(setup["trained"]["settings"], tmp_path, setup["store"], None, alerts=[hook])
        models = unguarded(s)
        clock = [now]
        app = create_app(s, store=models, clock=lambda: clock[0].to_pydatetime())
        program = f"/v1/programs/{quote(LAUNCH, safe='')}"
        with TestClient(app) as client:
            far = {"milestones": ids, "target_at": (now + timedelta(days=150)).isoformat()}
            refreshed(app, lambda: client.put(program, json=far))
            before = client.get(program).json()
            clock[0] = now + timedelta(days=1)  # a day later the target is brought in: the chance drops
            near = {"milestones": ids, "target_at": (now + timedelta(days=30)).isoformat()}
            refreshed(app, lambda: client.put(program, json=near))
            after = client.get(program).json()
            assert before["chance"] - after["chance"] >= 0.1, (before["chance"], after["chance"])
            with TestClient(create_app(s, store=models, clock=lambda: clock[0].to_pydatetime())) as other:
                assert _listed(other)[LAUNCH]["chance"] == after["chance"]  # another worker: nothing sent again
            assert app.state.live.refresh()  # nor by the same state built again
            assert app.state.live.alerts.wait(60)
        ledger = Ledger(s.serving.ledger_url)
        assert ledger.alerts() == []  # no milestone alert under this subscription
        (alert,) = ledger.alerts(about=PROGRAMS)
        assert alert["program_id"] == LAUNCH and alert["status"] == "delivered" and "chance fell" in alert["reason"]
    ((headers, body),) = receiver.received
    stamp = headers["x-slipcast-timestamp"]
    assert headers["x-slipcast-signature"] == "sha256=" + hmac.new(
        SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    event = json.loads(body)
    assert event["event"] == "program.risk_changed" and event["program_id"] == LAUNCH
    assert event["link"] == f"https://dash.example/page/programs/{quote(LAUNCH, safe='')}"
    assert (event["before"]["chance"], event["after"]["chance"]) == (before["chance"], after["chance"])
    assert pd.Timestamp(event["as_of"]) == pd.Timestamp(after["as_of"]) and event["critical_path"] == after["critical_path"]
    assert event["reason"] == f"chance fell {(before['chance'] - after['chance']) * 100:.0f} points within 7 days"


def test_a_programs_alert_is_its_chance_falling_or_its_band_rising_never_a_rise():
    at = pd.Timestamp("2026-03-02", tz="UTC").to_pydatetime()
    bands = {"low": 0.0, "medium": 0.3, "high": 0.6}

    def now(chance: float, band: str) -> ProgramState:
        return ProgramState(program_id="a/b c", name="B", source="declared", as_of=at, target_at=None,
                            open_milestones=2, chance=chance, probability=round(1 - chance, 4), risk_band=band,
                            independent_chance=None, done_50=None, done_85=None, critical_path=["M-1"],
                            critical_path_share=1.0, milestones=[], edges=[], cycles=[], correlation={}, lag_days=1.0,
                            draws=100, assumptions=[], model=None)

    def seen(days: float, chance: float, band: str) -> dict:
        return {"as_of": at - timedelta(days=days), "chance": chance, "probability": round(1 - chance, 4),
                "risk_band": band}

    hook = AlertSubscription(url="https://hooks.example/x", secret_env="X", band_rise=False, program_drop_points=0.1,
                             within_days=7, page_url="https://dash.example/page/")
    earlier = [seen(6, 0.9, "low"), seen(1, 0.8, "low")]
    assert reasons(hook, now(0.8, "low"), earlier, bands, program=True) == ("chance fell 10 points within 7 days",
                                                                            earlier[0])
    assert reasons(hook, now(0.81, "low"), earlier, bands, program=True) is None
    assert reasons(hook, now(0.99, "low"), earlier, bands, program=True) is None  # a rise is good news
    assert reasons(hook, now(0.85, "low"), [seen(8, 0.99, "low"), *earlier[1:]], bands, program=True) is None
    banded = hook.model_copy(update={"band_rise": True})
    assert reasons(banded, now(0.75, "medium"), earlier, bands, program=True)[0] == "risk band rose from low to medium"
    assert reasons(hook.model_copy(update={"program_drop_points": None}), now(0.1, "low"), earlier, bands,
                   program=True) is None
    event = program_event(now(0.8, "low"), "chance fell", earlier[0], hook)
    assert event["link"] == "https://dash.example/page/programs/a%2Fb%20c" and event["before"]["chance"] == 0.9
