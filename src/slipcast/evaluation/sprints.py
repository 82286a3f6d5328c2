"""Sprint delivery (tse2017-sprints): under-delivery as a probability, and the paper's three
classes, under the paper's protocol and forward-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.core.settings import EvaluationSettings, TrainingSettings
from slipcast.evaluation.classifiers import (
    MODELS,
    binary_scores,
    class_scores,
    fit_binary,
    fit_classes,
    guarded_forward,
)
from slipcast.evaluation.datasets.tse2017_sprints import (
    POINTS,
    PROJECTS,
    feature_columns,
    load_sprints,
)
from slipcast.ingest.importers.report import ImportReport
from slipcast.training.splits import ForwardShares, Interleaved

BINARY = ("base_rate", "random", "project_rate", "logistic", "gradient_boosting")
CLASSES = ("base_rate", "random", "logistic", "gradient_boosting")
# the paper's averages over its projects (TSE 2017), three classes
PAPER = {"precision": 0.79, "recall": 0.82, "f1": 0.79, "roc_auc": 0.86}


def three_classes(vel_diff: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """0 under, 1 on, 2 over target: split at the 33rd and 66th percentiles of ``reference``
    (the training rows' vel_diff, so a test row never shapes its own class boundaries)."""
    low, high = np.percentile(reference, [33, 66])
    return np.where(vel_diff <= low, 0, np.where(vel_diff <= high, 1, 2))


def _folds(frame: pd.DataFrame, protocol: str, settings: EvaluationSettings) -> list:
    splitter = (Interleaved(settings.paper_folds) if protocol == "paper" else
                ForwardShares(settings.forward_folds, settings.forward_first_share, order="sprintid"))
    return list(splitter.split(frame))


def evaluate_frame(frame: pd.DataFrame, protocol: str, settings: EvaluationSettings,
                   training: TrainingSettings) -> tuple[list[dict], list[dict], dict]:
    """Binary and three-class scores of every candidate on one project's sprints, predictions
    pooled over the protocol's folds; also the pooled binary forecasts (``y``, ``prior``, ``fold``,
    each candidate's, and each model's as the skill guard would have served it: ``<model>_served``,
    ``<model>_fell_back``)."""
    features = feature_columns(frame)
    X, gap = frame[features], frame["vel_diff"].to_numpy()
    y = (gap < 0).astype(int)
    folds = _folds(frame, protocol, settings)
    test = np.concatenate([t for _, t in folds])
    prior = np.concatenate([np.full(len(t), y[tr].mean()) for tr, t in folds])
    p = {name: np.concatenate([fit_binary(name, X.iloc[tr], y[tr], training).predict_proba(X.iloc[t])[:, 1]
                               for tr, t in folds]) for name in BINARY}
    binary = [{"candidate": n, **binary_scores(y[test], p[n], prior)} for n in BINARY]
    fold = np.concatenate([np.full(len(t), k) for k, (_, t) in enumerate(folds)])
    for name in MODELS:
        p[f"{name}_served"], p[f"{name}_fell_back"] = guarded_forward(y[test], p[name], prior, fold, training)
    classes = np.arange(3)
    y3 = np.concatenate([three_classes(gap[t], gap[tr]) for tr, t in folds])
    multi = []
    for name in CLASSES:
        parts = []
        for tr, t in folds:
            model = fit_classes(name, X.iloc[tr], three_classes(gap[tr], gap[tr]), training)
            proba = np.zeros((len(t), 3))
            proba[:, model.classes_] = model.predict_proba(X.iloc[t])
            parts.append(proba)
        multi.append({"candidate": name, **class_scores(y3, np.vstack(parts), classes)})
    return binary, multi, {"y": y[test], "prior": prior, "fold": fold, **p}


def evaluate_sprints(root: Path, settings: EvaluationSettings, training: TrainingSettings, projects=tuple(PROJECTS), points=POINTS
                     ) -> tuple[pd.DataFrame, pd.DataFrame, dict, ImportReport]:
    """Scores per project, prediction point, protocol and candidate (binary, three classes),
    the pooled forward-only forecasts by (project, point), and the load report."""
    report = ImportReport(source=str(root))
    binary, multi, pooled = [], [], {}
    for project in projects:
        for point in points:
            frame = load_sprints(root, project, point, report)
            for protocol in ("paper", "forward"):
                b, m, p = evaluate_frame(frame, protocol, settings, training)
                keys = {"project": project, "point": point, "protocol": protocol}
                binary += [{**keys, **row} for row in b]
                multi += [{**keys, **row} for row in m]
                if protocol == "forward":
                    pooled[(project, point)] = p
    report.check_reconciled()
    return pd.DataFrame(binary), pd.DataFrame(multi), pooled, report
