"""`slipcast monitor`: the service's published forecasts (a ledger filled by six weeks of daily
refreshes over a simulated history) judged against their outcomes, and drift against training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.features.milestone_features import GROWS_WITH_HISTORY
from slipcast.features.pipeline import feature_columns
from slipcast.features.store_history import History
from slipcast.ingest.tables import write_tables
from slipcast.live.ledger import Ledger
from slipcast.monitoring.monitor import (
    judged,
    monitor,
    psi,
    psi_floor,
    published_with_outcomes,
    serving_rows,
    write_report,
)
from slipcast.scoring.records import Forecast, ModelRef
from slipcast.serving.app import create_app


@pytest.fixture(scope="module")
def published(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    tables = trained["tables"]
    store = write_tables(tables, root / "store")
    s = trained["settings"]
    s = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": store, "ledger_url": f"sqlite:///{root / 'ledger.db'}"})})
    starts = tables.milestones["start_at"].sort_values()
    first = starts.iloc[int(len(starts) * 0.55)].floor("D")
    clock = [first]
    app = create_app(s, clock=lambda: clock[0].to_pydatetime())
    with TestClient(app):
        for day in range(1, 43):  # one refresh a day for six weeks
            clock[0] = first + timedelta(days=day)
            assert app.state.live.refresh()
    # the monitor runs when these forecasts' outcomes are known and recent (``monitoring.judge_days``)
    end = min(pd.Timestamp(tables.events["at"].max()), clock[0] + timedelta(days=120))
    return {"settings": s, "store": store, "root": root, "end": end.to_pydatetime(), "last": clock[0].to_pydatetime(),
            "training": trained["sets"]["milestone"], "tables": tables}


def _inverted(published, name: str):
    """The same forecasts as if a model had said the opposite, in a ledger of their own."""
    s = published["settings"]
    url = f"sqlite:///{published['root'] / name}"
    rows = Ledger(s.serving.ledger_url).forecasts(backfilled=False)
    Ledger(url).record([Forecast(milestone_id=r["milestone_id"], as_of=r["as_of"], status=r["status"],
                                 probability=None if r["probability"] is None else round(1 - r["probability"], 4),
                                 basis=r["basis"], risk_band=r["risk_band"],
                                 model=ModelRef(name=r["model_name"], version=r["model_version"], run_id=r["run_id"],
                                                candidate=None, source="registry")) for r in rows],
                       [r["project"] for r in rows], [r["due_at"] for r in rows])
    return s.model_copy(update={"serving": s.serving.model_copy(update={"ledger_url": url})})


def test_the_published_forecasts_are_scored_against_their_outcomes(published):
    s = published["settings"]
    result = monitor(s, published["store"], published["end"], published["training"])
    live = [r for r in Ledger(s.serving.ledger_url).forecasts(backfilled=False) if r["probability"] is not None]
    assert result.published == len(live) and result.with_outcome + result.pending == len(live)
    assert result.with_outcome >= s.monitoring.min_outcomes
    rows = published_with_outcomes(Ledger(s.serving.ledger_url), History(published["tables"], s.features),
                                   published["end"])
    done = rows[rows["label"].notna()]
    assert set(done["label"]) <= {0.0, 1.0}
    assert result.overall["brier"] == pytest.approx(np.mean((done["probability"] - done["label"]) ** 2))
    assert set(result.by) == {"model_version", "horizon", "project", "month"}
    assert sum(b["n"] for b in result.reliability) == result.with_outcome
    # drift measured against the training rows: every feature compared, none that grows with the history
    compared = {c for c in feature_columns("milestone") if c not in GROWS_WITH_HISTORY
                and pd.api.types.is_numeric_dtype(published["training"][c])}
    assert set(result.feature_psi) <= compared and len(result.feature_psi) >= len(compared) - 3
    assert all(np.isfinite(v) and v >= 0 for v in result.feature_psi.values())
    assert np.isfinite(result.prediction_psi) and result.prediction_psi >= 0
    # an outcome counts only once known: right after the last refresh the open milestones' are pending
    then = monitor(s, published["store"], published["last"], published["training"])
    assert then.pending > 0 and then.with_outcome < result.with_outcome and then.expected_pending_brier > 0


def test_outcomes_are_the_training_labels_and_the_brier_is_scored_on_them(published, tmp_path):
    """Forecasts published at the training set's own (milestone, as_of) pairs get the outcome the
    training pipeline labelled them with, and the Brier score of those labels: the monitor's
    outcomes are checked against the features' code, not recomputed by the monitor's."""
    s = published["settings"]
    train = published["training"]
    rows = train[train["label"].notna() & (train["label_known_at"] <= pd.Timestamp(published["end"]))]
    rows = rows[rows["as_of"] > rows["as_of"].quantile(0.5)].head(400)
    p = np.random.default_rng(7).uniform(0.05, 0.95, len(rows)).round(4)
    model = ModelRef(name="slipcast-milestone", version="1", run_id="r", candidate=None, source="registry")
    url = f"sqlite:///{tmp_path / 'pairs.db'}"
    Ledger(url).record([Forecast(milestone_id=m, as_of=a, status="ok", probability=float(q), basis="model",
                                 risk_band="medium", model=model)
                        for m, a, q in zip(rows["milestone_id"], rows["as_of"], p)],
                       list(rows["project"]), list(rows["as_of"] + pd.to_timedelta(rows["days_left"], unit="D")))
    local = s.model_copy(update={"serving": s.serving.model_copy(update={"ledger_url": url}),  # its own MLflow run store
                                 "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    scored = published_with_outcomes(Ledger(url), History(published["tables"], local.features), published["end"])
    by_pair = dict(zip(zip(rows["milestone_id"], rows["as_of"]), rows["label"]))
    assert len(scored) == len(rows)
    assert [by_pair[(m, a)] for m, a in zip(scored["milestone_id"], scored["as_of"])] == list(scored["label"])
    result = monitor(local, published["store"], published["end"], train)
    assert result.with_outcome == len(rows)
    assert result.overall["brier"] == pytest.approx(float(np.mean((p - rows["label"].to_numpy()) ** 2)))


def test_forecasts_of_a_milestone_deleted_from_the_store_are_left_out_and_said_so(published, tmp_path):
    from slipcast.ingest.tables import Tables

    s, tables = published["settings"], published["tables"]
    live = [r for r in Ledger(s.serving.ledger_url).forecasts(backfilled=False) if r["probability"] is not None]
    gone = live[0]["milestone_id"]
    fewer = Tables(tables.milestones[tables.milestones["milestone_id"] != gone], tables.tickets,
                   tables.events[tables.events["milestone_id"] != gone], tables.links)
    result = monitor(s, write_tables(fewer, tmp_path / "store"), published["end"], published["training"])
    dropped = sum(r["milestone_id"] == gone for r in live)
    assert result.published == len(live) - dropped
    assert any(n.startswith(f"{dropped} published forecasts name milestones the store no longer holds")
               for n in result.notes)


def test_a_model_saying_the_opposite_breaks_the_calibration_thresholds(published):
    good = monitor(published["settings"], published["store"], published["end"], published["training"])
    bad = monitor(_inverted(published, "inverted.db"), published["store"], published["end"], published["training"])
    assert bad.overall["brier_skill"] < 0 < good.overall["brier_skill"]
    assert bad.overall["ece"] > published["settings"].monitoring.max_ece
    assert any("ECE" in b for b in bad.breaches)
    # a Brier skill below the threshold breaks it only where its whole 95 % interval does (beyond noise)
    below = bad.overall["intervals"]["brier_skill"][1] < published["settings"].monitoring.min_brier_skill
    assert any("Brier skill" in b for b in bad.breaches) == below
    assert not any("ECE" in b or "Brier skill" in b for b in good.breaches)


def test_features_that_drifted_from_training_are_named(published):
    """Against rows like the ones it serves, nothing drifts; against rows whose commitments were a
    quarter the size, the scope is named."""
    s = published["settings"]
    history = History(published["tables"], s.features)
    rows = published_with_outcomes(Ledger(s.serving.ledger_url), history, published["end"])
    served = serving_rows(rows, history, s.monitoring.drift_days)
    steady = monitor(s, published["store"], published["end"], served)
    shifted = monitor(s, published["store"], published["end"], served.assign(scope_count=served["scope_count"] * 4))
    assert steady.feature_psi["scope_count"] == pytest.approx(0, abs=1e-3)
    assert shifted.feature_psi["scope_count"] > s.monitoring.max_psi
    assert any("scope_count" in b for b in shifted.breaches) and not any("drift" in b for b in steady.breaches)
    assert "past_milestones_known" not in shifted.feature_psi  # grows with the history: not drift
    report = write_report(shifted, published["root"] / "report")
    assert "scope_count" in report.read_text() and (report.parent / "monitor.json").exists()


def test_monitor_on_the_command_line_logs_to_mlflow_feeds_the_service_and_exits_1_when_broken(published):
    from mlflow import MlflowClient

    s = _inverted(published, "cli.db")
    out = published["root"] / "cli-report"
    env = {**os.environ, "SLIPCAST_SERVING__LEDGER_URL": s.serving.ledger_url, "SLIPCAST_TRACKING_URI": s.tracking_uri,
           "SLIPCAST_SERVING__AS_OF": pd.Timestamp(published["end"]).isoformat()}
    done = subprocess.run([sys.executable, "-m", "slipcast.cli", "monitor", "--store", str(published["store"]),
                           "--out", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 1, done.stderr
    assert "broken: live ECE" in done.stdout and (out / "monitor.md").exists()
    client = MlflowClient(s.resolved_uri(), s.resolved_uri())
    (run,) = client.search_runs(  # this command's run: other tests on the shared store log monitor runs too
        [client.get_experiment_by_name(s.training.experiment_prefix + "monitoring").experiment_id],
        order_by=["attributes.start_time DESC"], max_results=1)
    assert run.data.metrics["live_ece"] > s.monitoring.max_ece and "ECE" in run.data.tags["breaches"]
    shown = s.model_copy(update={"monitoring": s.monitoring.model_copy(update={"report_dir": out})})
    with TestClient(create_app(shown)) as service:
        figures = service.get("/v1/model").json()["monitor"]
        teams = service.get("/v1/projects").json()["items"]
        page = service.get("/").text
    assert figures["with_outcome"] > 0 and figures["live"]["ece"] == pytest.approx(run.data.metrics["live_ece"])
    assert "Live, on" in page and "broken" in page
    judged = json.loads((out / "monitor.json").read_text())["by"]["project"]
    assert judged and all(t["live"]["n"] == judged[t["project"]]["n"] for t in teams if t["project"] in judged)


def test_drift_counts_only_beyond_what_the_training_rows_themselves_would_show():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    few, many = psi_floor([reference], 15, 200, 0), psi_floor([reference], 500, 200, 0)
    assert few > many  # fifteen milestones show a large PSI by chance alone
    same = [psi(reference, rng.normal(size=15)) for _ in range(50)]
    assert sum(v > few for v in same) <= 3  # about 1 % of draws from the reference itself
    assert psi(reference, rng.normal(1.0, size=500)) > many
    # forty features checked at once: the floor is that of the most drifted of them by chance
    family = [rng.normal(size=5000) for _ in range(40)]
    assert psi_floor(family, 15, 200, 0) > few


def test_thresholds_judge_only_the_serving_models_recently_known_outcomes(settings):
    """An earlier model's misses, outcomes known before the window and pending forecasts are
    not held against the model serving now."""
    now = pd.Timestamp("2026-06-30", tz="UTC")
    day = lambda d: now - timedelta(days=d)  # noqa: E731
    rows = pd.DataFrame({
        "milestone_id": ["a", "b", "c", "d", "e"],
        "model_version": ["1", "1", "2", "2", "2"],
        "as_of": [day(300), day(250), day(150), day(100), day(5)],
        "label": [1.0, 0.0, 1.0, 0.0, np.nan],
        "known_at": [day(260), day(200), day(settings.monitoring.judge_days + 1), day(20), pd.NaT],
    })
    assert judged(rows, now, settings)["milestone_id"].tolist() == ["d"]
    # the window ends at now: a month earlier, d's outcome was not known yet, and c's was recent
    assert judged(rows, day(30), settings)["milestone_id"].tolist() == ["c"]
    assert judged(rows.iloc[:2], now, settings).empty  # model 1's outcomes are too old


def test_retrain_if_needed_runs_only_when_the_monitor_breaks_and_keeps_the_champion_guard(published, tmp_path):
    """On a copy of the registry: forecasts that came true leave it alone; forecasts that did
    not retrain both targets, and the challenger takes the alias only by beating the champion."""
    import shutil

    from mlflow import MlflowClient

    from slipcast.monitoring.retrain import retrain

    base = published["settings"]
    shutil.copy(base.sqlite_path(), tmp_path / "mlflow.db")
    shutil.copytree(base.models_dir, tmp_path / "models")
    isolated = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "models_dir": tmp_path / "models",
                "work_dir": tmp_path / "work"}
    calm = retrain(base.model_copy(update=isolated), published["store"], published["end"], if_needed=True)
    assert not calm.ran and "no monitoring threshold broken" in calm.format()
    broken = _inverted(published, "retrain.db").model_copy(update=isolated)
    client = MlflowClient(broken.resolved_uri(), broken.resolved_uri())
    before = client.get_model_version_by_alias("slipcast-milestone", "champion").version
    report = retrain(broken, published["store"], published["end"], if_needed=True)
    assert report.ran and "ECE" in report.reason and set(report.trained) == {"milestone", "ticket"}
    after = client.get_model_version_by_alias("slipcast-milestone", "champion").version
    decision = report.trained["milestone"]["decision"]
    assert (after != before) == decision["promoted"]  # the alias moved only on the guard's say
    assert (report.backfilled > 0) == decision["promoted"]
