"""Ticket forecasts that are neither calibrated nor skilful at a horizon, tested forward, are
withheld there with the reason (issue 35): no number that is not honest is shown as a probability."""

from __future__ import annotations

import numpy as np
import pandas as pd

from slipcast.training.backtest import run_backtest, withheld
from tests.helpers import configured


def _history(rows: int, seed: int, flip: bool) -> pd.DataFrame:
    """Tickets whose feature ``x`` sets their chance of slipping; with ``flip`` the outcomes of the
    history's last third go the other way (what the model learnt before, and the guard decided on
    earlier folds, is then miscalibrated there, forward)."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, 700, rows)), unit="D")
    x, elapsed = rng.uniform(0, 1, rows), rng.uniform(0, 1, rows)
    p = 0.15 + 0.7 * x
    if flip:
        p = np.where(np.arange(rows) > 2 * rows // 3, 1 - p, p)
    y = (rng.uniform(size=rows) < p).astype(float)
    return pd.DataFrame({"as_of": as_of, "label_known_at": as_of + pd.Timedelta(days=20), "label": y, "x": x,
                         "span_elapsed": elapsed, "milestone_id": [f"M{i // 15}" for i in range(rows)],
                         "ticket_id": [f"T{i}" for i in range(rows)], "project": "P"})


def test_a_horizon_whose_served_forecast_is_not_calibrated_forward_is_withheld(settings, tmp_path):
    quick = configured(settings, tmp_path).training.model_copy(update={"folds": 3})
    steady = run_backtest(_history(6000, 1, False), "ticket", ["x"], ["base_rate", "logistic"], quick)
    assert withheld(steady.served_scores("logistic", quick)) == {}
    flipped = run_backtest(_history(6000, 1, True), "ticket", ["x"], ["base_rate", "logistic"], quick)
    held = withheld(flipped.served_scores("logistic", quick))
    assert held  # every horizon's served forecast went wrong forward
    for horizon, cell in held.items():
        assert cell["ece"] > cell["ece_floor"] or cell["brier_skill"] < 0
        assert horizon in cell["reason"] and "noise floor" in cell["reason"]
