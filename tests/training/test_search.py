"""Model search within honest folds (``training.fitting``): the inner folds choose a candidate's
setting from its own training rows alone, and on a small history they choose the regularised fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from slipcast.training.backtest import run_backtest
from slipcast.training.fitting import choose_point, fit_candidate

NOISE = [f"noise{i}" for i in range(15)]


def small_history(milestones: int = 120, seed: int = 0) -> pd.DataFrame:
    """A few dozen milestones, five snapshots each: one weak signal among fifteen noise columns."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01", tz="UTC")
    rows = []
    for i in range(milestones):
        signal = rng.normal()
        slipped = float(rng.uniform() < 1 / (1 + np.exp(-(0.8 + 0.8 * signal))))
        begun = start + pd.Timedelta(days=7 * i)
        for share in (0.1, 0.3, 0.5, 0.7, 0.9):
            rows.append({"milestone_id": f"m{i}", "project": "TEAM", "as_of": begun + pd.Timedelta(days=28 * share),
                         "label_known_at": begun + pd.Timedelta(days=28), "span_elapsed": share,
                         "x": signal + rng.normal(scale=0.5), "label": slipped,
                         **{c: rng.normal() for c in NOISE}})
    return pd.DataFrame(rows)


def test_the_choice_sees_only_the_rows_it_is_given(settings):
    frame = small_history()
    idx = np.arange(400)
    later = frame.copy()
    later.loc[400:, "label"] = 1 - later.loc[400:, "label"]  # what happens after never reaches the choice
    later.loc[400:, "x"] = -later.loc[400:, "x"]
    features = ["x", *NOISE]
    assert choose_point("logistic", frame, idx, features, settings.training) == \
        choose_point("logistic", later, idx, features, settings.training)
    model, _ = fit_candidate("logistic", frame, idx, features, settings.training)
    again, _ = fit_candidate("logistic", later, idx, features, settings.training)
    X = frame[features].iloc[:50]
    assert np.allclose(model.predict_proba(X), again.predict_proba(X))  # type: ignore[attr-defined]


def test_on_a_small_history_the_search_chooses_a_regularised_fit_that_forecasts_better(settings):
    frame = small_history()
    features = ["x", *NOISE]
    quick = settings.training.model_copy(update={"folds": 4, "bootstrap_rounds": 10})
    searched = run_backtest(frame, "milestone", features, ["logistic"], quick).results["logistic"]
    default = run_backtest(frame, "milestone", features, ["logistic"],
                           quick.model_copy(update={"search": {}})).results["logistic"]
    assert any("uncalibrated" in r for r in searched.calibration)
    assert all(r is not None and "uncalibrated" not in r for r in default.calibration)
    assert searched.overall["brier"] < default.overall["brier"]
