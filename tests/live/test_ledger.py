"""The forecast ledger: what the live service published, once however many workers built it,
and what `slipcast backfill` recorded, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from slipcast.core.settings import AlertSubscription
from slipcast.ingest.tables import write_tables
from slipcast.live.alerts import reasons
from slipcast.live.backfill import backfill
from slipcast.live.ledger import FORECASTS, Ledger
from slipcast.scoring.forecast import band
from slipcast.scoring.records import Forecast, ModelRef
from slipcast.serving.app import create_app
from tests.helpers import POSTGRES, busiest_time, postgres_ledger


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


@POSTGRES
def test_the_same_ledger_on_postgresql(setup):
    url = postgres_ledger()
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


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=POSTGRES)])
def test_workers_opening_a_new_ledger_at_once_all_open_it(dialect, tmp_path):
    """Each worker of a service opens the ledger as it starts: on a new one, eight at once (ten
    times over) all open it, and its tables and indexes are made once."""
    for trial in range(10):
        url = f"sqlite:///{tmp_path / f'ledger{trial}.db'}" if dialect == "sqlite" else postgres_ledger()
        barrier = threading.Barrier(8)

        def open_ledger(url: str, barrier: threading.Barrier) -> Ledger:
            barrier.wait()
            return Ledger(url)

        with ThreadPoolExecutor(8) as pool:
            ledgers = list(pool.map(open_ledger, [url] * 8, [barrier] * 8))
        inspector = sa.inspect(ledgers[0].engine)
        assert {"forecasts", "alerts"} <= set(inspector.get_table_names())
        assert {i["name"] for i in inspector.get_indexes("forecasts")} >= {"forecasts_by_milestone", "forecasts_by_time"}
        for ledger in ledgers:
            ledger.engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=POSTGRES)])
def test_an_alert_compares_with_the_records_a_full_scan_would_find(dialect, tmp_path):
    """``Ledger.compared`` hands ``alerts.reasons`` a few records per milestone, chosen by the
    database: every alert it gives, with the record it compares with, is the one the
    milestone's every record would give (ties in probability included: they are rounded)."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if dialect == "sqlite" else postgres_ledger()
    ledger = Ledger(url)
    rng = np.random.default_rng(7)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    hours = np.sort(rng.choice(24 * 40, size=300, replace=False))
    bands = {"low": 0.0, "medium": 0.3, "high": 0.6}
    model = ModelRef(name="m", version="1", run_id=None, candidate=None, source="registry")
    forecasts, projects = [], []
    for milestone, size in (("a", 120), ("b", 120), ("c", 120), ("d", 120), ("e", 8)):
        # e: recorded in its first days only, then nothing (closed, or the service was down)
        for h in rng.choice(hours, size=size, replace=False) if milestone != "e" else hours[:size]:
            p = None if rng.random() < 0.1 else round(float(rng.choice([0.1, 0.2, 0.35, 0.5, 0.7, 0.9])), 4)
            forecasts.append(Forecast(milestone_id=milestone, as_of=(start + pd.Timedelta(hours=int(h))).to_pydatetime(),
                                      status="ok" if p is not None else "insufficient_history", probability=p,
                                      basis="model" if p is not None else None,
                                      risk_band=None if p is None else band(p, bands), model=model))
            projects.append("P")
    assert ledger.record(forecasts, projects, [None] * len(forecasts)) == len(forecasts)
    subs = [AlertSubscription(url="http://127.0.0.1:9/hook", secret_env="UNSET", min_points=0.3, within_days=7),
            AlertSubscription(url="http://127.0.0.1:9/hook", secret_env="UNSET", band_rise=False, min_points=0.15,
                              within_days=2)]
    lookback = timedelta(days=30)
    for day in (3, 12, 25, 39):
        as_of = (start + pd.Timedelta(days=day, hours=5)).to_pydatetime()
        every: dict[str, list[dict]] = {}
        for r in ledger.forecasts(backfilled=False):  # the full scan: every live record in the lookback
            if as_of - lookback <= r["as_of"] < as_of:
                every.setdefault(r["milestone_id"], []).append(r)
        few = ledger.compared(["a", "b", "c", "d", "e"], as_of, lookback, [timedelta(days=s.within_days) for s in subs])
        assert set(few) == set(every) and ("e" in few) == (day < 30)  # e found by its latest within the lookback
        assert sum(map(len, few.values())) <= 5 * len(few) < sum(map(len, every.values()))
        for milestone in every:
            for p in (0.0, 0.1, 0.35, 0.55, 0.9, None):
                now = SimpleNamespace(as_of=as_of, probability=p, risk_band=None if p is None else band(p, bands))
                for sub in subs:
                    assert reasons(sub, now, few[milestone], bands) == reasons(sub, now, every[milestone], bands)


def test_a_ledger_made_before_its_time_index_gets_it_and_an_alert_window_uses_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = Ledger(url).engine
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX forecasts_by_time"))
    assert "forecasts_by_time" not in {i["name"] for i in sa.inspect(engine).get_indexes("forecasts")}
    ledger = Ledger(url)
    assert "forecasts_by_time" in {i["name"] for i in sa.inspect(ledger.engine).get_indexes("forecasts")}
    window = sa.select(FORECASTS.c.id).where(FORECASTS.c.as_of >= pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime())
    with ledger.engine.connect() as conn:
        plan = conn.execute(sa.text("EXPLAIN QUERY PLAN " + str(window.compile(
            ledger.engine, compile_kwargs={"literal_binds": True})))).fetchall()
    assert "forecasts_by_time" in str(plan)  # a range of the index, not a scan of every record


def _broken_ledger(kind: str, root) -> tuple[str, object]:
    """A ledger URL that cannot be used as it is, of one ``kind``, and how to mend it (None: it
    cannot be mended from here). "missing" is a folder not made yet: that one must simply work."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "ledger.db"
    if kind == "missing":
        return f"sqlite:///{root / 'fresh' / 'work' / 'ledger.db'}", None
    if kind == "random":
        path.write_bytes(os.urandom(8192))
        return f"sqlite:///{path}", path.unlink
    if kind == "truncated":  # a ledger with records, cut short (a disk filled, a copy interrupted)
        ledger = Ledger(f"sqlite:///{path}")
        model = ModelRef(name="m", version="1", run_id=None, candidate=None, source="registry")
        start = pd.Timestamp("2026-01-01", tz="UTC")
        ledger.record([Forecast(milestone_id=f"m{i}", as_of=(start + pd.Timedelta(hours=i)).to_pydatetime(),
                                status="ok", probability=0.5, basis="model", risk_band="medium", model=model)
                       for i in range(3000)], ["P"] * 3000, [None] * 3000)
        ledger.engine.dispose()
        path.write_bytes(path.read_bytes()[:4096 * 3])
        return f"sqlite:///{path}", path.unlink
    if kind == "parent_is_a_file":  # a folder that cannot be made or written, even by root
        (root / "work").write_text("not a folder")
        return f"sqlite:///{root / 'work' / 'ledger.db'}", (root / "work").unlink
    if kind == "read_only":  # a ledger the database opens read-only (what chmod is not for root)
        Ledger(f"sqlite:///{path}").engine.dispose()
        return f"sqlite:///file:{path}?mode=ro&uri=true", None
    raise ValueError(kind)


BROKEN = ["random", "truncated", "parent_is_a_file", "read_only"]


@pytest.mark.parametrize("kind", ["missing", *BROKEN])
def test_a_missing_folder_is_made_and_a_broken_ledger_is_reported_while_forecasts_are_served(setup, tmp_path, kind,
                                                                                             caplog):
    """The service starts whatever the ledger's state, reports a broken one in /readyz, /v1/model
    and the log, answers forecasts meanwhile, and records again once the ledger is mended."""
    url, mend = _broken_ledger(kind, tmp_path)
    s = setup["settings"]
    s = s.model_copy(update={"home": tmp_path, "work_dir": tmp_path / "work-dir",
                             "serving": s.serving.model_copy(update={"ledger_url": url})})
    now = setup["now"]
    clock = [now]
    app = create_app(s, clock=lambda: clock[0].to_pydatetime())
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        info = client.get("/v1/model").json()
        items = client.get("/v1/milestones", params={"limit": 500})
        assert ready.status_code == 200 and items.status_code == 200 and items.json()["items"]
        one = items.json()["items"][0]["milestone_id"]
        assert client.get(f"/v1/milestones/{one}").status_code == 200
        ledger = ready.json()["ledger"]
        assert info["ledger"] == ledger
        if kind == "missing":
            assert ledger == {"state": "ok", "error": None}
            assert len(Ledger(url).forecasts()) == len(items.json()["items"])
            return
        assert ledger["state"] == "failing" and ledger["error"], ledger
        assert "ledger" in ledger["error"] and str(tmp_path) not in ledger["error"]  # no absolute paths shown
        assert "ledger" in caplog.text and "Traceback" not in caplog.text
        if mend is None:
            return
        mend()  # the ledger is tried again at the next refresh
        clock[0] = now + timedelta(hours=1)
        assert app.state.live.refresh()
        assert client.get("/readyz").json()["ledger"] == {"state": "ok", "error": None}
        published = len(app.state.live.get().published)
    assert len(Ledger(url).forecasts(backfilled=False)) == published > 0


def _command(setup, url: str, *args: str, home=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SLIPCAST_SERVING__LEDGER_URL": url, "SLIPCAST_TRACKING_URI": setup["settings"].tracking_uri,
           "SLIPCAST_MODELS_DIR": str(setup["settings"].models_dir), "SLIPCAST_HOME": str(home or setup["root"])}
    return subprocess.run([sys.executable, "-m", "slipcast.cli", *args, "--store", str(setup["store"]), "--quiet"],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("kind", BROKEN)
def test_backfill_and_monitor_stop_with_one_line_naming_the_ledger(setup, tmp_path, kind):
    url, _ = _broken_ledger(kind, tmp_path)
    for command in ("backfill", "monitor"):
        if kind == "read_only" and command == "monitor":
            continue  # a ledger that can be read is all the monitor needs: below
        done = _command(setup, url, command, home=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, (command, done.stderr)
        assert lines[0].startswith(f"slipcast {command}: error: ledger ") and "ledger.db" in lines[0], lines


def test_backfill_makes_a_missing_folder_and_monitor_reads_a_read_only_ledger(setup, tmp_path):
    url, _ = _broken_ledger("missing", tmp_path)
    done = _command(setup, url, "backfill", home=tmp_path)
    assert done.returncode == 0 and "backfilled" in done.stdout, done.stderr
    path = url.removeprefix("sqlite:///")
    done = _command(setup, f"sqlite:///file:{path}?mode=ro&uri=true", "monitor", home=tmp_path)
    assert done.returncode in (0, 1) and "published forecasts" in done.stdout and "Traceback" not in done.stderr, \
        done.stderr


def test_serve_in_a_fresh_folder_makes_its_work_folder_and_records(setup, tmp_path):
    """``slipcast serve`` where work/ does not exist yet: the default ledger's folder is made."""
    from slipcast.tools.service import free_port, running_service

    s = setup["settings"]
    env = {"SLIPCAST_HOME": str(tmp_path), "SLIPCAST_TRACKING_URI": s.tracking_uri, "SLIPCAST_MODELS_DIR":
           str(s.models_dir), "SLIPCAST_SERVING__STORE": str(setup["store"]),
           "SLIPCAST_SERVING__AS_OF": setup["now"].isoformat(), "SLIPCAST_SERVING__LEDGER_URL": None,
           "SLIPCAST_WORK_DIR": None, "MLFLOW_TRACKING_URI": None}
    assert not (tmp_path / "work").exists()
    with running_service(free_port(), env) as base:
        import httpx

        assert httpx.get(f"{base}/readyz").json()["ledger"] == {"state": "ok", "error": None}
        items = httpx.get(f"{base}/v1/milestones", params={"limit": 500}).json()["items"]
    assert len(Ledger(f"sqlite:///{tmp_path / 'work' / 'ledger.db'}").forecasts()) == len(items) > 0
