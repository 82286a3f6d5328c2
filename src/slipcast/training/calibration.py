"""Calibrating a fitted model on later rows than it was fitted on.

A model's training rows are split by time with the backtest's own rule (``RollingOrigin``
with one fold): the base model fits the earlier rows, and its scores on the later rows fit the
calibration. The recipe (sigmoid or isotonic; every row alike, or recent rows weighing more)
is chosen on those later rows too, fitting each on their first half and scoring it on their
second: under drift (slip rates that change over the years a tracker covers) the recency
weighted recipes follow the latest rate, and win there; where nothing drifts, equal weights
win by having less variance. The result is a plain ``CalibratedClassifierCV`` around the
frozen base model: one pipeline to run at serving time, and one base fit per training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

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
# recency weights leave fewer effective rows, so their choice is noisier: they are taken only for a
# sigmoid (two parameters; isotonic on few effective rows overfits) and only when they beat equal
# weights by this share of the Brier score (tests/training/test_calibration.py); the recent base rate is
# served over the whole history's by the same rule (``Backtest.fallback``)
RECENCY_MARGIN = 0.05


@dataclass(frozen=True)
class Recipe:
    """How a calibration is fitted: the method, and the half-life of its recency weights as a
    share of the calibration rows' time span (None: every row weighs the same)."""

    method: str
    half_life: float | None = None

    def __str__(self) -> str:
        if self.half_life is None:
            return self.method
        return f"{self.method}, recency-weighted (half-life {self.half_life:.0%} of the calibration span)"


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


def recency_weights(when, half_life: float | None) -> np.ndarray | None:
    """Weights halving every ``half_life`` (a share of the span of ``when``) back from the latest
    time; None for equal weights (or times that span no time at all)."""
    if half_life is None or when is None:
        return None
    t = pd.to_datetime(pd.Series(when), utc=True).astype("int64").to_numpy(dtype=np.float64)
    span = t.max() - t.min()
    if span <= 0:
        return None
    return 0.5 ** ((t.max() - t) / (half_life * span))


def _fit(base, recipe: Recipe, X: pd.DataFrame, y: np.ndarray, when) -> CalibratedClassifierCV:
    # a frozen model is never refit: the splits only batch its predictions on every row, so
    # plain halves do (a stratified split would warn about rare outcomes for nothing)
    weights = recency_weights(when, recipe.half_life)
    with warnings.catch_warnings():
        # the weights are meant for the calibration alone: the frozen model is not refit
        warnings.filterwarnings("ignore", message="Since FrozenEstimator does not appear to accept sample_weight")
        return CalibratedClassifierCV(FrozenEstimator(base), method=recipe.method, cv=KFold(2)).fit(
            X, y, sample_weight=weights)


def calibrate(base, X: pd.DataFrame, y: np.ndarray, when=None,
              half_lives: tuple[float | None, ...] | list[float | None] = (None,)) -> tuple[CalibratedClassifierCV, str]:
    """The fitted ``base`` calibrated on (``X``, ``y``), rows later than its own, oldest first
    (``when``: their times, for recency weights), with the recipe that scores the lower Brier on
    the later half of them; returned with the recipe's name. Every recipe's Brier in that choice
    is kept on the model (``recipe_briers_``; empty where the halves could not be scored)."""
    half = len(y) // 2
    recipes = [Recipe(m, h) for m in METHODS for h in half_lives
               if h is None or (when is not None and m == "sigmoid")]
    early = None if when is None else np.asarray(when)[:half]
    scores: dict[Recipe, float] = {}
    if can_calibrate(y[:half]) and len(np.unique(y[half:])) == 2:
        for recipe in recipes:
            p = _fit(base, recipe, X.iloc[:half], y[:half], early).predict_proba(X.iloc[half:])[:, 1]
            scores[recipe] = brier_score_loss(y[half:], p)
    chosen = min(scores, key=scores.__getitem__) if scores else Recipe("sigmoid")
    equal = min((r for r in scores if r.half_life is None), key=scores.__getitem__, default=chosen)
    if chosen.half_life is not None and scores[chosen] > (1 - RECENCY_MARGIN) * scores[equal]:
        chosen = equal
    calibrated = _fit(base, chosen, X, y, when)
    # every recipe's score in the choice, kept as a fitted attribute for the training report
    calibrated.recipe_briers_ = {str(recipe): float(brier) for recipe, brier in scores.items()}
    return calibrated, str(chosen)
