"""The splitters: forward-only in time, groups on one side, scikit-learn's interface."""

import numpy as np
import pandas as pd
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from slipcast.training.splits import ForwardShares, InsufficientHistory, Interleaved, RollingOrigin


def test_interleaved_folds_partition_the_rows():
    folds = list(Interleaved(10).split(np.zeros((25, 1))))
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests) == list(range(25))
    assert list(folds[3][1]) == [3, 13, 23]
    assert all(len(np.intersect1d(tr, t)) == 0 and len(tr) + len(t) == 25 for tr, t in folds)


def test_forward_shares_never_train_on_later_rows():
    frame = pd.DataFrame({"t": np.repeat(np.arange(50), 2)})  # ties never straddle a cutoff
    for train, test in ForwardShares(4, 0.5, embargo=3, order="t").split(frame):
        assert frame["t"].to_numpy()[train].max() + 3 <= frame["t"].to_numpy()[test].min()
    folds = list(ForwardShares(4, 0.5, order="t").split(frame))
    assert folds[0][1][0] == 50 and folds[-1][1][-1] == 99


def test_one_forward_share_is_the_latest_rows_cut():
    train, test = next(ForwardShares(1, 0.75).split(np.zeros((10, 2))))
    assert list(train) == list(range(7)) and list(test) == [7, 8, 9]


def test_splitters_plug_into_scikit_learn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = (X[:, 0] + rng.normal(scale=0.5, size=200) > 0).astype(int)
    for cv in (ForwardShares(3, 0.4), Interleaved(5)):
        scores = cross_val_score(LogisticRegression(), X, y, cv=cv, scoring="neg_brier_score")
        assert len(scores) == cv.get_n_splits() and np.all(scores > -0.25)


@st.composite
def histories(draw):
    n = draw(st.integers(100, 300))
    milestones = draw(st.integers(10, 80))  # enough that most histories have a fold (the rest are assumed away)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    as_of = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.sort(rng.integers(0, 400, n)), unit="D")
    lag = pd.to_timedelta(rng.integers(0, 60, n), unit="D")
    return pd.DataFrame({"as_of": as_of, "label_known_at": as_of + lag, "label": rng.integers(0, 2, n).astype(float),
                         "milestone_id": rng.integers(0, milestones, n).astype(str)})


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 5), st.floats(0.2, 0.8))
def test_rolling_origin_trains_only_on_known_labels_and_keeps_groups_apart(frame, n_splits, first):
    splitter = RollingOrigin(n_splits, first, min_train_rows=5, min_positives=1)
    try:
        folds = splitter.folds(frame)
    except InsufficientHistory:
        folds = None
    # a history without a fold has nothing to check: hypothesis draws others, and fails the test
    # (filter_too_much) where most have none, so a splitter that always refused could not pass
    assume(folds is not None)
    assert folds
    for fold in folds:
        assert (frame["label_known_at"].iloc[fold.train] <= fold.cutoff).all()
        assert (frame["as_of"].iloc[fold.test] > fold.cutoff).all()
        assert not set(frame["milestone_id"].iloc[fold.train]) & set(frame["milestone_id"].iloc[fold.test])
    assert [(list(a), list(b)) for a, b in splitter.split(frame)] == [(list(f.train), list(f.test)) for f in folds]
