"""Splits of rows into training and test sets, as scikit-learn splitters (``split(X, y, groups)``).

Training, calibration and the public-data evaluation all split through these
(docs/architecture.md, "Honest evaluation"):

- ``RollingOrigin``: the backtest's forward-only folds. A fold with cutoff c trains on rows whose
  label was known by c and tests on rows with as_of after c (up to the next cutoff); a group
  (a milestone) never sits on both sides of one fold. With one fold it is the calibration split.
- ``ForwardShares``: forward-only folds over rows ordered by one column (a sprint id, an opening
  date), cutoffs at shares of the rows, training rows ending an embargo before the cutoff (for
  outcomes that may not yet have been known then).
- ``Interleaved``: the TSE 2017 papers' protocol, every k-th row in one fold, so each test row
  has later rows in its training set (reported beside the forward-only figures, never alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils.validation import _num_samples


class InsufficientHistory(ValueError):
    """Too little labelled history to train or evaluate honestly."""


@dataclass(frozen=True)
class Fold:
    """One backtest fold: positions into the labelled frame."""

    number: int
    cutoff: pd.Timestamp
    train: np.ndarray
    test: np.ndarray


class _Splitter(BaseCrossValidator):
    n_splits: int

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """The folds asked for (a splitter may leave out one without rows to train or test on)."""
        return self.n_splits


class RollingOrigin(_Splitter):
    """Rolling-origin folds over labelled rows (columns ``as_of``, ``label_known_at``, ``label``).

    ``groups`` (default: the ``milestone_id`` column) are kept off the test side of a fold that
    trains on them. A fold with too few training rows or outcomes, or no test rows, is left out;
    none left raises InsufficientHistory naming what is missing.
    """

    def __init__(self, n_splits: int = 4, first_quantile: float = 0.5, min_train_rows: int = 100,
                 min_positives: int = 10):
        self.n_splits = n_splits
        self.first_quantile = first_quantile
        self.min_train_rows = min_train_rows
        self.min_positives = min_positives

    def folds(self, X: pd.DataFrame, y=None, groups=None) -> list[Fold]:
        """The folds with their numbers and cutoffs."""
        if len(X) < self.min_train_rows:
            raise InsufficientHistory(
                f"insufficient history: {len(X)} labelled snapshots, at least {self.min_train_rows} needed")
        labels = np.asarray(X["label"] if y is None else y)
        times = X["as_of"]
        cutoffs = [times.quantile(q) for q in np.linspace(self.first_quantile, 1.0, self.n_splits + 1)]
        # integer codes: np.isin on strings is quadratic
        group = pd.factorize(np.asarray(X["milestone_id"] if groups is None else groups))[0]
        out: list[Fold] = []
        for k in range(self.n_splits):
            c, nxt = cutoffs[k], cutoffs[k + 1]
            train = np.flatnonzero((X["label_known_at"] <= c).to_numpy())
            in_window = (times > c) & ((times <= nxt) if k < self.n_splits - 1 else True)
            test = np.flatnonzero(in_window.to_numpy() & ~np.isin(group, group[train]))
            y_train = labels[train]
            if (len(train) < self.min_train_rows or not len(test)
                    or min((y_train == 1).sum(), (y_train == 0).sum()) < self.min_positives):
                continue
            out.append(Fold(len(out) + 1, c, train, test))
        if not out:
            raise InsufficientHistory(
                "insufficient history: no fold has enough labelled history before its cutoff "
                f"({self.min_train_rows} rows with {self.min_positives} of each outcome) and later rows to test")
        return out

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for fold in self.folds(X, y, groups):
            yield fold.train, fold.test


class ForwardShares(_Splitter):
    """Forward-only folds over rows sorted by ``order`` (a column of X; None: row position).

    Cutoffs sit at shares ``first_share``..1 of the rows; a fold trains on rows with
    ``order <= cutoff - embargo`` and tests on its rows up to the next cutoff that come after it.
    """

    def __init__(self, n_splits: int = 5, first_share: float = 0.5, embargo=0, order: str | None = None):
        self.n_splits = n_splits
        self.first_share = first_share
        self.embargo = embargo
        self.order = order

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = _num_samples(X)
        order = np.arange(n) if self.order is None else np.asarray(X[self.order])
        edges = np.linspace(self.first_share, 1.0, self.n_splits + 1)
        for lo, hi in zip(edges[:-1], edges[1:]):
            start, stop = int(lo * n), int(hi * n)
            if start >= stop or start == 0:
                continue
            train = np.flatnonzero(order <= order[start - 1] - self.embargo)
            test = np.arange(start, stop)
            test = test[order[test] > order[start - 1]]
            if len(train) and len(test):
                yield train, test


class Interleaved(_Splitter):
    """k folds over ordered rows: fold j tests rows j, j + k, j + 2k, ... and trains on the rest."""

    def __init__(self, n_splits: int = 10):
        self.n_splits = n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        rows = np.arange(_num_samples(X))
        for j in range(self.n_splits):
            yield rows[rows % self.n_splits == j]
