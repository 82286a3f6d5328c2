"""How rows are split into training and test sets: the papers' protocol and forward-only.

Rows come ordered (by sprint id, by opening date). ``paper_folds`` is the TSE 2017 protocol:
k folds, every k-th row in one fold, so each test row has later rows in its training set.
``forward_folds`` is ours: each fold trains only on rows before its cutoff (less an embargo,
for outcomes that may not yet have been known at the cutoff) and tests on the rows after it.
"""

from __future__ import annotations

import numpy as np


def paper_folds(n: int, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k interleaved folds over n ordered rows: fold j tests rows j, j+k, j+2k, ..."""
    rows = np.arange(n)
    return [(rows[rows % k != j], rows[rows % k == j]) for j in range(k)]


def forward_folds(order: np.ndarray, n_folds: int, first_share: float, embargo=0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Rolling-origin folds over rows sorted by ``order``: cutoffs at shares ``first_share``..1
    of the rows; train on ``order <= cutoff - embargo``, test on the rows up to the next cutoff."""
    order = np.asarray(order)
    n = len(order)
    edges = np.linspace(first_share, 1.0, n_folds + 1)
    folds = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        start, stop = int(lo * n), int(hi * n)
        if start >= stop:
            continue
        train = np.flatnonzero(order <= order[start - 1] - embargo) if start else np.array([], dtype=int)
        test = np.arange(start, stop)
        test = test[order[test] > order[start - 1]] if start else test
        if len(train) and len(test):
            folds.append((train, test))
    return folds
