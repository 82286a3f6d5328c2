"""Time-ordered splits: rolling-origin backtest folds (and, with one fold, calibration splits).

A fold with cutoff c trains on rows whose label was known by c and tests on rows with as_of
after c (up to the next cutoff); a milestone never sits on both sides of one fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class InsufficientHistory(ValueError):
    """Too little labelled history to train or evaluate honestly."""


@dataclass(frozen=True)
class Fold:
    """One backtest fold: positions into the labelled frame."""

    number: int
    cutoff: pd.Timestamp
    train: np.ndarray
    test: np.ndarray


def backtest_folds(frame: pd.DataFrame, n_folds: int, first_quantile: float,
                   min_train_rows: int, min_positives: int) -> list[Fold]:
    """Rolling-origin folds over ``frame`` (labelled rows with as_of, label_known_at, label,
    milestone_id). Raises InsufficientHistory naming what is missing."""
    if len(frame) < min_train_rows:
        raise InsufficientHistory(
            f"insufficient history: {len(frame)} labelled snapshots, at least {min_train_rows} needed")
    times = frame["as_of"]
    quantiles = np.linspace(first_quantile, 1.0, n_folds + 1)
    cutoffs = [times.quantile(q) for q in quantiles]
    folds = []
    group = pd.factorize(frame["milestone_id"])[0]  # integer codes: np.isin on strings is quadratic
    for k in range(n_folds):
        c, nxt = cutoffs[k], cutoffs[k + 1]
        train = np.flatnonzero((frame["label_known_at"] <= c).to_numpy())
        in_window = (times > c) & ((times <= nxt) if k < n_folds - 1 else True)
        test = np.flatnonzero(in_window.to_numpy() & ~np.isin(group, group[train]))
        y = frame["label"].to_numpy()[train]
        if len(train) < min_train_rows or min((y == 1).sum(), (y == 0).sum()) < min_positives or not len(test):
            continue
        folds.append(Fold(len(folds) + 1, c, train, test))
    if not folds:
        raise InsufficientHistory(
            "insufficient history: no fold has enough labelled history before its cutoff "
            f"({min_train_rows} rows with {min_positives} of each outcome) and later rows to test")
    return folds
