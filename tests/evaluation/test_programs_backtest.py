"""The program backtest on a planted simulator: forward only, every rule scored, and the joint
forecast calibrated (its ECE within the noise floor of calibrated forecasts at this size)."""

from __future__ import annotations

import numpy as np
import pytest

from slipcast.evaluation.programs import RULES, backtest_programs, fold_models, rule_scores
from slipcast.ingest.simulator import SimulationConfig, generate

PLANTED = SimulationConfig(projects=6, tickets=5000, seed=3, optimism=(0.4, 0.8), capacity_sigma=0.5,
                           shared_shock=0.9, program_every_days=30, program_dependency_share=0.5)


@pytest.mark.slow
def test_programs_are_backtested_forward_and_the_joint_forecast_is_calibrated(settings):
    history, models = fold_models(generate(PLANTED), settings)
    starts = [start for start, _, _ in models]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # rolling origins, one model each
    frame = backtest_programs(history, models, settings, "programs", draws=2000)
    assert len(frame) >= 30 and frame["group"].nunique() >= 10
    assert frame["as_of"].min() >= starts[0]
    assert set(frame["label"].unique()) == {0.0, 1.0}
    scores = rule_scores(frame, rounds=200, seed=0).set_index("rule")
    assert list(scores.index) == list(RULES)
    joint = scores.loc["joint"]
    assert joint["ece"] <= joint["ece_floor"], scores
    assert joint["auc"] > 0.7 and np.isfinite(joint["brier"])
    assert (frame["independent"] >= frame["worst"] - 1e-9).all()  # all land no likelier than the worst one
