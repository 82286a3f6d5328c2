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
from slipcast.training.metrics import bootstrap, scores
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
    # the fixed directions are a chance of slipping's: classes have none
    return make_candidate(name, *_columns(X), settings.model_copy(update={"monotone": False})).fit(X, y)


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


def guarded_forward(y: np.ndarray, p: np.ndarray, prior: np.ndarray, fold: np.ndarray, settings: TrainingSettings,
                    min_rows: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """What a service with the skill guard would have served on pooled forward folds (``fold``:
    each row's fold, in time order): on every fold after the first, the model's forecast where,
    on the earlier folds' rows alone, its Brier skill beats the base rate with confidence (the
    95 % bootstrap interval over rows above 0, as ``training.metrics.skill_guard`` decides for
    a milestone target), else that fold's base rate ``prior``. Returns the served forecasts
    (NaN on the first fold, which has no earlier evidence) and whether each row fell back."""
    served, fell_back = np.full(len(p), np.nan), np.zeros(len(p), dtype=bool)
    for k in np.unique(fold)[1:]:
        seen, here = fold < k, fold == k
        low = -np.inf
        if seen.sum() >= min_rows:
            low = bootstrap(y[seen], p[seen], np.flatnonzero(seen), prior[seen], settings.bootstrap_rounds,
                            settings.seed, auc=False)["brier_skill"][0]
        guarded = not low > 0
        fell_back[here] = guarded
        served[here] = prior[here] if guarded else p[here]
    return served, fell_back
