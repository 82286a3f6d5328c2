"""Candidates and scores for the public datasets, built from the training/ candidates.

Binary targets use the product's own recipe: a candidate from ``training.candidates``, fitted
on the earlier training rows and calibrated on the later ones (``training.calibration``).
Beside them: the base rate, the team's own past rate (``project_rate`` on a
``past_slip_rate`` column) and the papers' random baseline (stratified coin flips).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from slipcast.core.settings import TrainingSettings
from slipcast.training.calibration import calibrate, can_calibrate
from slipcast.training.candidates import BASELINES, make_candidate
from slipcast.training.metrics import scores
from slipcast.training.splits import ForwardShares

MODELS = ("logistic", "gradient_boosting")


def _columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    return [c for c in X.columns if c not in categorical], categorical


def fit_binary(name: str, X: pd.DataFrame, y: np.ndarray, settings: TrainingSettings):
    """``name`` fitted on (X, y), rows oldest first; models calibrated on the latest share."""
    if name == "random":
        return DummyClassifier(strategy="stratified", random_state=settings.seed).fit(X, y)
    model = make_candidate(name, *_columns(X), settings)
    if name in BASELINES:
        return model.fit(X, y)
    (fit, cal), = ForwardShares(1, 1 - settings.calibration_share).split(X)
    if not can_calibrate(y[cal]):
        return model.fit(X, y)  # the product's rule: too few later rows of each outcome, uncalibrated
    model.fit(X.iloc[fit], y[fit])
    return calibrate(model, X.iloc[cal], y[cal])[0]


def fit_classes(name: str, X: pd.DataFrame, y: np.ndarray, settings: TrainingSettings):
    """A multi-class candidate: base rate, random, or a model's pipeline on every class."""
    if name in ("base_rate", "random"):
        strategy = "prior" if name == "base_rate" else "stratified"
        return DummyClassifier(strategy=strategy, random_state=settings.seed).fit(X, y)
    return make_candidate(name, *_columns(X), settings).fit(X, y)


def binary_scores(y: np.ndarray, p: np.ndarray, prior) -> dict[str, float]:
    """Precision, recall and F1 of the positive class at 0.5, with every probabilistic score."""
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, (p >= 0.5).astype(int), average="binary", zero_division=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), **scores(y, p, prior)}


def class_scores(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Macro precision, recall, F1 and one-vs-rest AUC; multi-class Brier score."""
    predicted = classes[np.argmax(proba, axis=1)]
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="macro", zero_division=0)
    onehot = (y[:, None] == classes[None, :]).astype(float)
    present = np.unique(y)
    auc = (roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
           if len(present) == len(classes) else float("nan"))
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "roc_auc": float(auc),
            "brier": float(((proba - onehot) ** 2).sum(axis=1).mean()), "n": float(len(y))}
