"""The scores and the calibration choice against their definitions."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import KFold

from slipcast.training.calibration import calibrate
from slipcast.training.metrics import bootstrap, calibrated_ece, expected_calibration_error, scores

probabilities = arrays(np.float64, st.integers(1, 80), elements=st.floats(0, 1))


@given(probabilities, st.data())
def test_ece_is_the_weighted_gap_per_bin(p, data):
    y = data.draw(arrays(np.float64, len(p), elements=st.sampled_from([0.0, 1.0])))
    edges = np.linspace(0, 1, 11)
    bins = (p[:, None] >= edges[None, 1:-1]).sum(axis=1)  # [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0]
    expected = sum((bins == b).sum() * abs(y[bins == b].mean() - p[bins == b].mean())
                   for b in range(10) if (bins == b).any()) / len(y)
    assert expected_calibration_error(y, p) == pytest.approx(expected, abs=1e-12)


@given(probabilities, st.data(), st.floats(0.05, 0.95))
def test_brier_skill_is_one_minus_the_ratio_to_the_base_rate(p, data, base):
    y = data.draw(arrays(np.float64, len(p), elements=st.sampled_from([0.0, 1.0])))
    out = scores(y, p, base)
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    brier, reference = np.mean((clipped - y) ** 2), np.mean((base - y) ** 2)
    assert out["brier"] == pytest.approx(brier)
    assert out["brier_skill"] == pytest.approx(1 - brier / reference)
    assert scores(y, np.full(len(y), base), base)["brier_skill"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.slow  # seconds of real waits or resampling: make test runs it
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000))
def test_bootstrap_resamples_whole_groups_and_repeats_for_a_seed(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60).astype(float)
    p = rng.uniform(size=60)
    groups = np.repeat(np.arange(12), 5)
    a = bootstrap(y, p, groups, 0.5, rounds=50, seed=seed)
    assert a == bootstrap(y, p, groups, 0.5, rounds=50, seed=seed)
    assert all(lo <= hi for lo, hi in a.values())
    # one group: every resample is the whole sample, so the interval is the point
    one = bootstrap(y, p, np.zeros(60), 0.5, rounds=20, seed=seed)
    point = scores(y, p, 0.5)
    for name in ("brier", "brier_skill"):
        assert one[name][0] == pytest.approx(point[name]) and one[name][1] == pytest.approx(point[name])


def _later_half_brier(base, method, X, y):
    half = len(y) // 2
    fit = CalibratedClassifierCV(FrozenEstimator(base), method=method, cv=KFold(2)).fit(X.iloc[:half], y[:half])
    return brier_score_loss(y[half:], fit.predict_proba(X.iloc[half:])[:, 1])


@pytest.mark.parametrize("shape", ["step", "logistic"])
def test_calibration_takes_the_method_with_the_lower_brier_on_the_later_half(shape):
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"x": rng.normal(size=2000)})
    truth = (np.where(X["x"] > 0.5, 0.9, 0.1) if shape == "step" else 1 / (1 + np.exp(-2 * X["x"])))
    y = (rng.uniform(size=2000) < truth).astype(int)
    base = LogisticRegression().fit(X.iloc[:1000], y[:1000])
    later_X, later_y = X.iloc[1000:].reset_index(drop=True), y[1000:]
    chosen, _ = calibrate(base, later_X, later_y)
    briers = {m: _later_half_brier(base, m, later_X, later_y) for m in ("sigmoid", "isotonic")}
    assert chosen.method == min(briers, key=briers.__getitem__)
    if shape == "step":
        assert chosen.method == "isotonic"  # a sigmoid of a linear score cannot draw a step


def test_calibration_falls_back_to_sigmoid_when_the_earlier_half_has_one_outcome():
    X = pd.DataFrame({"x": np.linspace(-1, 1, 200)})
    y = np.r_[np.zeros(100, int), (np.arange(100) % 2)]
    base = LogisticRegression().fit(pd.DataFrame({"x": [-1.0, 1.0]}), [0, 1])
    assert calibrate(base, X, y)[0].method == "sigmoid"


def test_a_calibration_slice_with_one_outcome_leaves_the_model_uncalibrated_and_says_so(settings):
    from slipcast.training.calibration import UNCALIBRATED
    from slipcast.training.fitting import fit_candidate

    rng = np.random.default_rng(0)
    n = 400
    as_of = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), unit="D")
    label = np.r_[rng.integers(0, 2, 300), np.ones(100)].astype(float)  # the latest rows: one outcome
    frame = pd.DataFrame({"as_of": as_of, "label_known_at": as_of + pd.Timedelta(days=1), "label": label,
                          "milestone_id": [f"m{i}" for i in range(n)], "x": rng.normal(size=n) + label,
                          "kind": np.where(np.arange(n) % 2, "release", "sprint")})
    for name in ("logistic", "gradient_boosting"):
        model, recipe = fit_candidate(name, frame, np.arange(n), ["x", "kind"], settings.training)
        assert recipe == UNCALIBRATED
        p = model.predict_proba(frame[["x", "kind"]])[:, 1]
        assert np.all((p >= 0) & (p <= 1))


def test_the_skill_guard_flags_the_horizons_where_the_model_does_not_beat_the_base_rate():
    from slipcast.training.metrics import skill_guard

    rng = np.random.default_rng(1)
    n = 900
    elapsed = np.tile([0.1, 0.45, 0.8], n // 3)
    y = (rng.uniform(size=n) < 0.5).astype(float)
    informative = np.where(y == 1, 0.8, 0.2)
    p = np.where(elapsed < 0.3, rng.uniform(size=n), informative)  # early: noise; later: signal
    guard = skill_guard(y, p, elapsed, np.arange(n) // 3, 0.5, rounds=100, seed=0)
    assert guard["early (0-30%)"]["guarded"] and guard["early (0-30%)"]["brier_skill"] < 0
    assert not guard["middle (30-60%)"]["guarded"] and not guard["late (60-100%)"]["guarded"]
    low, high = guard["late (60-100%)"]["interval"]
    assert 0 < low <= guard["late (60-100%)"]["brier_skill"] <= high


def test_a_project_the_model_serves_badly_is_guarded_though_the_pool_is_not():
    from slipcast.training.metrics import project_guard, skill_guard

    rng = np.random.default_rng(1)
    n = 3000
    project = np.where(np.arange(n) % 4 == 0, "BAD", "GOOD")
    truth = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < truth).astype(float)
    p = np.where(project == "GOOD", truth, rng.uniform(0, 1, n))  # no skill for one team in four
    elapsed, groups = np.tile([0.1, 0.5, 0.8], n // 3), np.arange(n) // 3
    pooled = skill_guard(y, p, elapsed, groups, 0.5, rounds=100, seed=0)
    assert not any(cell["guarded"] for cell in pooled.values())
    cells = project_guard(y, p, elapsed, groups, project, 0.5, rounds=100, seed=0)
    assert all(c["guarded"] and c["project"] == "BAD" for c in cells["BAD"].values())
    assert not any(c["guarded"] for c in cells["GOOD"].values())
    few = project_guard(y[:45], p[:45], elapsed[:45], groups[:45], project[:45], 0.5, rounds=20, seed=0)
    assert few == {}  # too few milestones per project to judge one: the pooled cells decide


def test_the_ece_floor_is_what_calibrated_forecasts_show_at_that_size():
    """Outcomes drawn from the forecasts themselves stay at or below the floor about 95 % of the
    time; snapshots sharing a milestone's outcome are less evidence, so their floor is higher;
    forecasts off by 0.15 break it."""
    rng = np.random.default_rng(4)
    p = rng.uniform(0.1, 0.9, 400)
    floor = calibrated_ece(p, np.arange(400), 400, 0)
    below = np.mean([expected_calibration_error((rng.random(400) < p).astype(float), p) <= floor
                     for _ in range(400)])
    assert 0.9 <= below <= 0.99
    assert calibrated_ece(p, np.repeat(np.arange(40), 10), 400, 0) > 1.5 * floor
    shifted = np.clip(p + 0.15, 0, 1)
    assert expected_calibration_error((rng.random(400) < p).astype(float), shifted) > floor
