"""The forecast ledger: what the live service published, once however many workers built it,
and what `slipcast backfill` recorded, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.features.tables import write_tables
from slipcast.serving.app import create_app
from slipcast.serving.backfill import backfill
from slipcast.serving.ledger import Ledger
from tests.helpers import busiest_time


@pytest.fixture(scope="module")
def setup(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger")
    store = write_tables(trained["tables"], root / "store")
    s = trained["settings"]
    s = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": store, "ledger_url": f"sqlite:///{root / 'ledger.db'}"})})
    return {"settings": s, "store": store, "now": busiest_time(trained["tables"]), "root": root}


def test_each_published_forecast_is_recorded_once_however_many_workers_built_it(setup):
    s, now = setup["settings"], setup["now"]
    answers = []
    for minutes in (0, 15, 40):  # three workers refreshing within one period
        with TestClient(create_app(s, clock=lambda m=minutes: (now + timedelta(minutes=m)).to_pydatetime())) as c:
            answers.append(c.get("/v1/milestones", params={"limit": 500}).json()["items"])
    assert answers[0] == answers[1] == answers[2]
    rows = Ledger(s.serving.ledger_url).forecasts(backfilled=False)
    assert len(rows) == len(answers[0])
    by_id = {r["milestone_id"]: r for r in rows}
    for item in answers[0]:
        row = by_id[item["milestone_id"]]
        assert (row["probability"], row["basis"], row["risk_band"], row["status"]) == \
            (item["probability"], item["basis"], item["risk_band"], item["status"])
        assert row["as_of"] == pd.Timestamp(item["as_of"]) and row["model_version"] == item["model"]["version"]
        assert row["run_id"] == item["model"]["run_id"] and len(row["feature_hash"]) == 16
    later = now + timedelta(hours=s.serving.refresh_seconds / 3600)
    with TestClient(create_app(s, clock=lambda: later.to_pydatetime())) as c:  # the next period: new records
        c.get("/v1/milestones")
    assert len(Ledger(s.serving.ledger_url).forecasts(backfilled=False)) > len(rows)


def test_backfill_records_the_daily_history_the_api_shows_apart_from_live_forecasts(setup):
    s, now = setup["settings"], setup["now"]
    ledger = Ledger(s.serving.ledger_url)
    live_before = ledger.forecasts(backfilled=False)
    report = backfill(s, setup["store"], now.to_pydatetime())
    assert report.recorded == report.forecasts > report.milestones > 10
    assert backfill(s, setup["store"], now.to_pydatetime()).recorded == 0  # the same model again: nothing new
    assert ledger.forecasts(backfilled=False) == live_before
    with TestClient(create_app(s, clock=lambda: now.to_pydatetime())) as c:
        item = c.get("/v1/milestones").json()["items"][0]
        shown = c.get(f"/v1/milestones/{item['milestone_id']}/history").json()["points"]
    recorded = ledger.forecasts(item["milestone_id"], backfilled=True)
    assert [(r["as_of"], r["probability"], r["status"]) for r in recorded] == \
        [(pd.Timestamp(p["as_of"]), p["probability"], p["status"]) for p in shown]


def test_backfill_on_the_command_line(setup):
    env = {**os.environ, "SLIPCAST_SERVING__LEDGER_URL": f"sqlite:///{setup['root'] / 'cli.db'}",
           "SLIPCAST_TRACKING_URI": setup["settings"].tracking_uri,
           "SLIPCAST_MODELS_DIR": str(setup["settings"].models_dir)}
    done = subprocess.run([sys.executable, "-m", "slipcast.cli", "backfill", "--store", str(setup["store"]),
                           "--quiet"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "backfilled" in done.stdout and Ledger(env["SLIPCAST_SERVING__LEDGER_URL"]).forecasts(backfilled=True)
    # serving.as_of fixes the clock of backfill as of the service: no day after it is recorded
    env["SLIPCAST_SERVING__LEDGER_URL"] = f"sqlite:///{setup['root'] / 'cli-as-of.db'}"
    env["SLIPCAST_SERVING__AS_OF"] = setup["now"].isoformat()
    done = subprocess.run([sys.executable, "-m", "slipcast.cli", "backfill", "--store", str(setup["store"]),
                           "--quiet"], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    days = [r["as_of"] for r in Ledger(env["SLIPCAST_SERVING__LEDGER_URL"]).forecasts(backfilled=True)]
    assert days and max(days) <= setup["now"]


@pytest.mark.skipif(not os.environ.get("SLIPCAST_TEST_POSTGRES"), reason="SLIPCAST_TEST_POSTGRES unset "
                    "(.ci/run starts PostgreSQL)")
def test_the_same_ledger_on_postgresql(setup):
    import psycopg

    server = os.environ["SLIPCAST_TEST_POSTGRES"]
    name = f"ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = server.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"
    s = setup["settings"]
    s = s.model_copy(update={"serving": s.serving.model_copy(update={"ledger_url": url})})
    for minutes in (0, 30):
        with TestClient(create_app(s, clock=lambda m=minutes: (setup["now"] + timedelta(minutes=m)).to_pydatetime())) as c:
            items = c.get("/v1/milestones", params={"limit": 500}).json()["items"]
    rows = Ledger(url).forecasts()
    assert len(rows) == len(items) and {r["milestone_id"] for r in rows} == {i["milestone_id"] for i in items}
    assert all(r["as_of"].tzinfo is not None for r in rows)
    report = backfill(s, setup["store"], setup["now"].to_pydatetime())  # what a record adds, counted by the rows added
    assert report.recorded == report.forecasts > len(items)
    assert backfill(s, setup["store"], setup["now"].to_pydatetime()).recorded == 0
