"""The candidates: honest baselines and calibrated models, all plain scikit-learn objects.

Every candidate is a Pipeline or meta-estimator built from scikit-learn parts only, so a
saved model loads anywhere scikit-learn is installed, without this package.

- ``base_rate``: the training slip rate (the Brier-skill reference).
- ``project_rate``: the project's own past slip rate (``past_slip_rate``), mapped to a probability.
- ``throughput_rule``: does remaining work need more throughput than the team has shown?
- ``monte_carlo``: the practitioners' Monte Carlo on-time probability, calibrated.
- ``logistic``, ``gradient_boosting``: every feature, then calibrated (sigmoid or isotonic)
  on rows later than those they were fitted on (``training.calibration``); gradient boosting
  held monotone in the features whose direction the domain fixes (``training.monotone``).
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    Binarizer,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

from slipcast.core.settings import TrainingSettings
from slipcast.features.milestone_features import monotone_directions

BASELINES = ("base_rate", "project_rate", "throughput_rule", "monte_carlo")
MODELS = ("logistic", "gradient_boosting")
ALL = BASELINES + MODELS


def _single_feature(column: str, step=None) -> Pipeline:
    """A probability from one column: impute, optionally transform, logistic link."""
    prep = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if step is not None:
        prep.append(step)
    select = ColumnTransformer([(column, Pipeline(prep), [column])], remainder="drop")
    return Pipeline([("select", select), ("link", LogisticRegression())])


def _logistic(numeric: list[str], categorical: list[str]) -> Pipeline:
    prep = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                          ("scale", StandardScaler())]), numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=0.5, max_iter=2000))])


def monotone_constraints(numeric: list[str], categorical: list[str]) -> list[int]:
    """Per column of the boosting candidate's input (categorical first): the sign its effect is
    held to (``monotone_directions``), 0 where it is free."""
    directions = monotone_directions(numeric)
    return [0] * len(categorical) + [directions.get(c, 0) for c in numeric]


def _boosting(numeric: list[str], categorical: list[str], max_iter: int, seed: int, monotone: bool) -> Pipeline:
    prep = ColumnTransformer([
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                               encoded_missing_value=np.nan), categorical),
        ("num", "passthrough", numeric),
    ])
    model = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.08, max_leaf_nodes=15, min_samples_leaf=40,
        l2_regularization=1.0, categorical_features=list(range(len(categorical))),
        early_stopping=False, random_state=seed,
        monotonic_cst=monotone_constraints(numeric, categorical) if monotone else None)
    return Pipeline([("prep", prep), ("model", model)])


def make_candidate(name: str, numeric: list[str], categorical: list[str], settings: TrainingSettings):
    """An unfitted candidate by name (models come uncalibrated: see ``training.calibration``)."""
    if name == "base_rate":
        return DummyClassifier(strategy="prior")
    if name == "project_rate":
        return _single_feature("past_slip_rate")
    if name == "throughput_rule":
        return _single_feature("required_vs_observed", ("fires", Binarizer(threshold=1.0)))
    if name == "monte_carlo":
        return _single_feature("monte_carlo_on_time")
    if name == "logistic":
        return _logistic(numeric, categorical)
    if name == "gradient_boosting":
        return _boosting(numeric, categorical, settings.max_iter, settings.seed, settings.monotone)
    raise ValueError(f"unknown candidate {name!r}; known: {list(ALL)}")
