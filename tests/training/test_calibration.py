"""Calibration under drift: a team whose slip rate shifts part way through its history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slipcast.training.backtest import run_backtest
from slipcast.training.calibration import recency_weights
from slipcast.training.metrics import expected_calibration_error


def shifting_history(milestones: int = 1500, seed: int = 0, before: float = 0.15, after: float = 0.85,
                     shift_at: float = 0.6) -> pd.DataFrame:
    """A training set in which each milestone's slip follows one signal ``x`` at a slip rate that
    jumps from ``before`` to ``after`` at ``shift_at`` of the history (a reorganised team)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2020-01-01", tz="UTC")
    rows = []
    for i in range(milestones):
        rate = before if i < shift_at * milestones else after
        signal = rng.normal()
        slipped = rng.uniform() < 1 / (1 + np.exp(-(np.log(rate / (1 - rate)) + signal)))
        begun = start + pd.Timedelta(days=2 * i)
        for share in (0.1, 0.4, 0.7):
            rows.append({"milestone_id": f"m{i}", "as_of": begun + pd.Timedelta(days=28 * share),
                         "label_known_at": begun + pd.Timedelta(days=28), "span_elapsed": share,
                         "x": signal + rng.normal(scale=0.5), "label": float(slipped)})
    return pd.DataFrame(rows)


def _later_folds_ece(settings, frame, half_lives) -> tuple[float, list]:
    quick = settings.training.model_copy(update={"calibration_half_lives": half_lives, "folds": 4,
                                                  "bootstrap_rounds": 10, "search": {}})  # calibrated only
    bt = run_backtest(frame, "milestone", ["x"], ["logistic"], quick)
    later = len(bt.folds[-1].test) + len(bt.folds[-2].test)
    y = bt.frame["label"].to_numpy()[bt.test_rows][-later:]
    result = bt.results["logistic"]
    return expected_calibration_error(y, result.predictions[-later:]), result.calibration


@pytest.mark.parametrize("seed", [0, 1])
def test_after_a_shift_in_slip_rate_recency_weighted_calibration_stays_calibrated(settings, seed):
    frame = shifting_history(seed=seed)
    today, _ = _later_folds_ece(settings, frame, [None])
    chosen, recipes = _later_folds_ece(settings, frame, [None, 0.25])
    # the bounds docs/architecture.md ("Honest evaluation") states for this history
    assert today > 0.07  # equal weights average the old rate into the new
    assert chosen < 0.03
    assert any("recency-weighted" in r for r in recipes[-2:])  # chosen by Brier where the shift shows


def test_without_drift_the_recency_weighted_choice_costs_nothing(settings):
    frame = shifting_history(before=0.5, after=0.5)
    today, _ = _later_folds_ece(settings, frame, [None])
    chosen, _ = _later_folds_ece(settings, frame, [None, 0.25])
    assert chosen <= 0.05 and chosen <= today + 0.01


def test_recency_weights_halve_every_half_life():
    when = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    w = recency_weights(when, 0.25)  # a half-life of one day over a four-day span
    assert w is not None and np.allclose(w, [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1])
    assert recency_weights(when, None) is None and recency_weights(when[:1], 0.25) is None


def test_the_served_forecast_uses_a_guard_decided_on_earlier_folds_only(settings):
    from slipcast.core.contracts import horizon_of
    from slipcast.training.backtest import base_rates
    from slipcast.training.metrics import skill_guard

    frame = shifting_history(milestones=900).assign(project="TEAM")
    quick = settings.training.model_copy(update={"folds": 4, "bootstrap_rounds": 20})
    bt = run_backtest(frame, "milestone", ["x"], ["base_rate", "logistic"], quick)
    where, served = bt.served("logistic", quick)
    first = len(bt.folds[0].test)
    assert np.array_equal(where, np.arange(first, len(bt.test_rows)))  # every fold but the first
    model = bt.results["logistic"].predictions[where]
    sizes = np.cumsum([0] + [len(f.test) for f in bt.folds])
    rows = bt.frame.iloc[bt.test_rows]
    for k in range(1, len(bt.folds)):
        here = (where >= sizes[k]) & (where < sizes[k + 1])
        rate = base_rates(bt.frame.iloc[bt.folds[k].train], quick.calibration_share)[bt.fallback(sizes[k])]
        seen = slice(0, sizes[k])
        guard = skill_guard(rows["label"].to_numpy()[seen], bt.results["logistic"].predictions[seen],
                            rows["span_elapsed"].to_numpy()[seen], rows["milestone_id"].to_numpy()[seen],
                            bt.base_rate[seen], quick.bootstrap_rounds, quick.seed)
        shares = rows["span_elapsed"].to_numpy()[where[here]]
        expect = np.array([rate if guard.get(horizon_of(s) or "", {}).get("guarded") else m
                           for s, m in zip(shares, model[here])])
        assert np.allclose(served[here], expect)


def test_a_guarded_forecast_serves_the_base_rate_that_scored_better_in_the_backtest(settings):
    quick = settings.training.model_copy(update={"folds": 4, "bootstrap_rounds": 10})
    shifted = run_backtest(shifting_history(milestones=900), "milestone", ["x"], ["base_rate"], quick)
    assert shifted.fallback() == "recent"  # after the shift the latest rows know the new rate
    steady = run_backtest(shifting_history(milestones=900, before=0.5, after=0.5), "milestone", ["x"],
                          ["base_rate"], quick)
    assert steady.fallback() == "whole history"  # nothing drifts: more rows, less noise


def test_the_training_report_compares_every_calibration_recipe_on_each_fold(settings, tmp_path):
    from slipcast.training.calibration import RECENCY_MARGIN
    from slipcast.training.report import write_report

    quick = settings.training.model_copy(update={"calibration_half_lives": [None, 0.25], "folds": 4,
                                                 "bootstrap_rounds": 10, "search": {}})
    bt = run_backtest(shifting_history(seed=0), "milestone", ["x"], ["logistic"], quick)
    result = bt.results["logistic"]
    assert len(result.recipe_briers) == len(result.calibration) == len(bt.folds)
    for briers, took in zip(result.recipe_briers, result.calibration):
        assert {"sigmoid", "isotonic"} < set(briers) and any("recency-weighted" in r for r in briers)
        chosen = max((r for r in briers if took.endswith(r)), key=len)
        equal = min((r for r in briers if "recency" not in r), key=briers.__getitem__)
        best = min(briers, key=briers.__getitem__)
        # the lowest, or equal weights where a recency-weighted lowest wins by less than the margin
        assert chosen == best or (chosen == equal and briers[best] > (1 - RECENCY_MARGIN) * briers[equal])
    report = write_report(bt, "logistic", {"promoted": True, "reason": "test"}, tmp_path, 0, "test", "fp").read_text()
    assert "Calibration recipes compared" in report and report.count("**") >= 2 * len(bt.folds)
