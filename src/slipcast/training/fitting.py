"""Fitting one candidate on a slice of history: its settings chosen on inner forward folds, then
calibrated on later rows than it was fitted on, or not at all.

A model candidate may have several search points (``training.search``: estimator parameters,
and whether the model is calibrated). Where it has more than one, the rows it is given are split
again by the backtest's own rule (``RollingOrigin``, ``training.search_folds`` folds) and the
point with the lowest pooled Brier score on those inner folds is fitted on all of them: the
choice never sees a row the outer fold tests on (docs/architecture.md, "Model search").

On a small tracker a strongly regularised logistic regression fitted on every row, the latest
included, forecasts better than one fitted on the earlier rows and calibrated on a few later
ones: its penalty already pulls it toward the base rate, and calibrating on a few dozen
milestones adds more noise than it removes. On a large one the calibrated fit wins. The inner
folds tell which, per fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slipcast.core.settings import SearchPoint, TrainingSettings
from slipcast.training.calibration import UNCALIBRATED, calibrate, calibration_split
from slipcast.training.candidates import BASELINES, make_candidate
from slipcast.training.splits import InsufficientHistory, RollingOrigin

DEFAULT = SearchPoint(params={}, calibrated=True)


def available_features(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """The features with at least one value in ``frame``."""
    return [c for c in features if frame[c].notna().any()]


def split_columns(frame: pd.DataFrame, features: list[str]) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns."""
    categorical = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    return [c for c in features if c not in categorical], categorical


def fit_point(name: str, point: SearchPoint, frame: pd.DataFrame, idx: np.ndarray, features: list[str],
              settings: TrainingSettings) -> tuple[object, str | None]:
    """Fit candidate ``name`` with the search ``point`` on the rows ``idx`` of ``frame`` (oldest
    first). A calibrated point fits the earlier rows and is calibrated on the later ones; an
    uncalibrated one fits them all. A feature with no value in those rows (a tracker without
    story points, say) is left out of the model, which still takes it as an input. Returns the
    model and its recipe (None for a baseline; ``UNCALIBRATED`` where too few later rows could
    calibrate)."""
    X = frame.iloc[idx][features]
    numeric, categorical = split_columns(X, available_features(X, features))
    model = make_candidate(name, numeric, categorical, settings)
    y = frame["label"].to_numpy()[idx].astype(int)
    if name in BASELINES:
        return model.fit(X, y), None
    model.set_params(**{f"model__{k}": v for k, v in point.params.items()})
    if not point.calibrated:
        return model.fit(X, y), str(point)
    split = calibration_split(frame, idx, settings.calibration_share)
    if split is None:
        return model.fit(X, y), UNCALIBRATED
    fit, cal = split
    model.fit(X.iloc[fit], y[fit])
    when = frame["as_of"].to_numpy()[idx][cal]
    calibrated, recipe = calibrate(model, X.iloc[cal], y[cal], when, settings.calibration_half_lives)
    return calibrated, f"{point.describe_params()}{recipe}"


def choose_point(name: str, frame: pd.DataFrame, idx: np.ndarray, features: list[str],
                 settings: TrainingSettings) -> SearchPoint:
    """The search point of ``name`` with the lowest pooled Brier score on inner forward folds of
    the rows ``idx`` (the latest ``training.search_rows`` of them), or the first point where there
    is one, or too little history to split."""
    points = settings.search.get(name) or [DEFAULT]
    if len(points) == 1:
        return points[0]
    sub = frame.iloc[idx[-settings.search_rows:]].reset_index(drop=True)
    try:
        inner = RollingOrigin(settings.search_folds, settings.first_cutoff_quantile, settings.min_train_rows,
                              settings.min_train_positives).folds(sub)
    except InsufficientHistory:
        return points[0]
    test = np.concatenate([f.test for f in inner])
    y = sub["label"].to_numpy()[test]
    briers = []
    for point in points:
        p = np.concatenate([fit_point(name, point, sub, f.train, features, settings)[0]
                            .predict_proba(sub.iloc[f.test][features])[:, 1] for f in inner])  # type: ignore[attr-defined]
        briers.append(float(np.mean((p - y) ** 2)))
    return points[int(np.argmin(briers))]


def fit_candidate(name: str, frame: pd.DataFrame, idx: np.ndarray, features: list[str],
                  settings: TrainingSettings) -> tuple[object, str | None]:
    """Fit one candidate on the rows ``idx`` of ``frame`` (oldest first), at the search point the
    inner folds of those rows choose (``choose_point``); see ``fit_point`` for what is returned."""
    point = DEFAULT if name in BASELINES else choose_point(name, frame, idx, features, settings)
    return fit_point(name, point, frame, idx, features, settings)
