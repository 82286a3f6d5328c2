"""Issue delay (emse2017-issue-delay): P(resolved after the due date), forward in time, with
and without the columns that may carry the outcome."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.tree import DecisionTreeClassifier

from slipcast.core.settings import EvaluationSettings, TrainingSettings
from slipcast.evaluation.classifiers import MODELS, binary_scores, fit_binary, guarded_forward
from slipcast.evaluation.datasets.emse2017_issue_delay import (
    PROJECTS,
    SUSPECT,
    TIMES,
    feature_columns,
    load_issues,
)
from slipcast.ingest.importers.report import ImportReport
from slipcast.training.splits import ForwardShares

CANDIDATES = ("base_rate", "random", "logistic", "gradient_boosting")
# the paper's Table 7: delayed class, Random Forest (precision, recall, F1, AUC)
PAPER_TABLE7 = {"apache": (0.80, 0.63, 0.71, 0.77), "duraspace": (0.95, 0.75, 0.83, 0.99),
                "javanet": (0.75, 0.57, 0.74, 0.88), "jboss": (0.96, 0.63, 0.77, 0.84),
                "jira": (0.90, 0.60, 0.72, 0.86)}
PAPER_AVERAGE = (0.79, 0.61, 0.68, 0.83)


def value_leaks(frame: pd.DataFrame, features: list[str], threshold: float) -> list[dict]:
    """Columns that alone predict the outcome: the AUC of the raw value (monotone effects) and
    of a small tree on it, out of fold (one value, such as RemainingDay = 1, that marks the
    outcome is invisible to the first and plain to the second)."""
    y = frame["delayed"].to_numpy()
    rows = []
    for name in features:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            continue
        x = frame[[name]].fillna(-1.0)
        tree = DecisionTreeClassifier(min_samples_leaf=20, max_depth=4, random_state=0)
        p = cross_val_predict(tree, x, y, cv=KFold(5), method="predict_proba")[:, 1]
        raw = roc_auc_score(y, x[name])
        rows.append({"feature": name, "raw_auc": max(raw, 1 - raw), "tree_auc": roc_auc_score(y, p)})
    rows.sort(key=lambda r: -r["tree_auc"])
    return [{**r, "flagged": r["tree_auc"] >= threshold} for r in rows]


def remaining_day_evidence(frame: pd.DataFrame) -> dict:
    """How delayed issues concentrate on single RemainingDay values."""
    delayed = frame["delayed"].to_numpy()
    one = (frame["RemainingDay"] == 1).to_numpy()
    return {"share_of_issues_at_1": float(one.mean()), "delayed_rate_at_1": float(delayed[one].mean()),
            "delayed_rate_elsewhere": float(delayed[~one].mean()),
            "share_of_delayed_at_1": float(one[delayed == 1].mean())}


def evaluate_file(frame: pd.DataFrame, suspects: bool, settings: EvaluationSettings,
                  training: TrainingSettings) -> tuple[list[dict], dict]:
    """Every candidate on forward-only folds by opening date (with the embargo); pooled scores,
    and the pooled forecasts as ``sprints.evaluate_frame`` returns them (the guard's included)."""
    X = frame[feature_columns(frame, suspects)]
    y = frame["delayed"].to_numpy()
    folds = list(ForwardShares(settings.forward_folds, settings.forward_first_share, order="openeddate",
                               embargo=np.timedelta64(int(settings.embargo_days * 86400), "s")).split(frame))
    test = np.concatenate([t for _, t in folds])
    prior = np.concatenate([np.full(len(t), y[tr].mean()) for tr, t in folds])
    p = {n: np.concatenate([fit_binary(n, X.iloc[tr], y[tr], training).predict_proba(X.iloc[t])[:, 1]
                            for tr, t in folds]) for n in CANDIDATES}
    fold = np.concatenate([np.full(len(t), k) for k, (_, t) in enumerate(folds)])
    for name in MODELS:
        p[f"{name}_served"], p[f"{name}_fell_back"] = guarded_forward(y[test], p[name], prior, fold, training)
    return ([{"candidate": n, **binary_scores(y[test], p[n], prior)} for n in CANDIDATES],
            {"y": y[test], "prior": prior, "fold": fold, **p})


def evaluate_issue_delay(root: Path, settings: EvaluationSettings, training: TrainingSettings, projects=PROJECTS, times=TIMES):
    """Scores per project, prediction time, with/without the suspect columns and candidate;
    the leak audit per file; the RemainingDay evidence; pooled forecasts; the load report."""
    report = ImportReport(source=str(root))
    results, leaks, evidence, pooled = [], [], [], {}
    for project in projects:
        for time in times:
            frame = load_issues(root, project, time, report)
            keys = {"project": project, "time": time}
            leaks += [{**keys, **row} for row in value_leaks(frame, feature_columns(frame, True),
                                                             settings.value_leak_auc)]
            evidence.append({**keys, **remaining_day_evidence(frame)})
            for suspects in (True, False):
                rows, p = evaluate_file(frame, suspects, settings, training)
                with_ = "with " + "+".join(SUSPECT) if suspects else "without"
                results += [{**keys, "columns": with_, **row} for row in rows]
                if not suspects:
                    pooled[(project, time)] = p
    report.check_reconciled()
    return pd.DataFrame(results), pd.DataFrame(leaks), pd.DataFrame(evidence), pooled, report
