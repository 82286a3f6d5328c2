"""Calibrating a fitted model on later rows than it was fitted on.

A model's training rows are split by time with the backtest's own rule (``RollingOrigin``
with one fold): the base model fits the earlier rows, and its scores on the later rows fit the
calibration. Sigmoid or isotonic is chosen on those later rows too, fitting each on their first
half and scoring it on their second. The result is a plain ``CalibratedClassifierCV`` around
the frozen base model: one pipeline to run at serving time, and one base fit per training
(instead of one per method, inner fold and calibration fold).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import KFold

from slipcast.training.splits import InsufficientHistory, RollingOrigin

METHODS = ("sigmoid", "isotonic")


UNCALIBRATED = "none (too few later rows of each outcome to calibrate on)"
MIN_PER_OUTCOME = 2  # rows of each outcome a calibration slice needs (each half of it is fitted)


def can_calibrate(y: np.ndarray) -> bool:
    """Whether labels ``y`` hold enough of each outcome to calibrate on; where not, a model is
    fitted on all its rows and left uncalibrated (``UNCALIBRATED``)."""
    return bool(np.bincount(np.asarray(y).astype(int), minlength=2).min() >= MIN_PER_OUTCOME)


def calibration_split(frame: pd.DataFrame, idx: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions in ``idx`` for the base fit (labels known by the cut) and for the calibration
    (as_of after the cut, no milestone on both sides); the cut leaves ``share`` of rows after it.

    None where the rows cannot be split so, or the later rows hold fewer than two of either
    outcome (a real tracker's slice often holds one outcome): the model is then fitted on all
    rows and left uncalibrated, and the report says so (``UNCALIBRATED``).
    """
    sub = frame.iloc[idx].reset_index(drop=True)
    try:
        (fold,) = RollingOrigin(1, first_quantile=1.0 - share, min_train_rows=20, min_positives=3).folds(sub)
    except InsufficientHistory:
        return None
    return (fold.train, fold.test) if can_calibrate(sub["label"].to_numpy()[fold.test]) else None


def _fit(base, method: str, X: pd.DataFrame, y: np.ndarray) -> CalibratedClassifierCV:
    # a frozen model is never refit: the splits only batch its predictions on every row, so
    # plain halves do (a stratified split would warn about rare outcomes for nothing)
    return CalibratedClassifierCV(FrozenEstimator(base), method=method, cv=KFold(2)).fit(X, y)


def calibrate(base, X: pd.DataFrame, y: np.ndarray) -> CalibratedClassifierCV:
    """The fitted ``base`` calibrated on (``X``, ``y``), rows later than its own, oldest first,
    with the method that scores the lower Brier on the later half of them."""
    half = len(y) // 2
    scores: dict[str, float] = {}
    if min(np.bincount(y[:half], minlength=2)) > 0 and len(np.unique(y[half:])) == 2:
        for method in METHODS:
            p = _fit(base, method, X.iloc[:half], y[:half]).predict_proba(X.iloc[half:])[:, 1]
            scores[method] = brier_score_loss(y[half:], p)
    method = min(scores, key=scores.__getitem__) if scores else "sigmoid"
    return _fit(base, method, X, y)
