"""Scores of probabilistic forecasts: Brier (and skill), log loss, ROC/PR AUC, calibration
error, by horizon, with bootstrap intervals over milestones; and the single-feature leak audit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from slipcast.core.contracts import HORIZONS, horizons_of

EPS = 1e-6


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean forecast| over equal-width probability bins, weighted by size."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / len(y))


def calibrated_ece(p: np.ndarray, units: np.ndarray, rounds: int, seed: int, quantile: float = 0.95) -> float:
    """The ECE that forecasts ``p`` would show at this sample size if they were calibrated (the
    ``quantile`` of the ECE of outcomes drawn from ``p`` itself): on a few dozen outcomes ECE is
    mostly noise, and this is how much. ``units`` names whose outcome each forecast judges (a
    milestone, a ticket, a row of its own): the forecasts of one unit share their draw (one
    uniform number per unit per round), as their outcomes go together: a milestone forecast
    every week is one piece of evidence, not a dozen."""
    rng = np.random.default_rng(seed)
    _, group = np.unique(units, return_inverse=True)
    draws = rng.random((rounds, int(group.max()) + 1 if len(group) else 0))[:, group] < p
    return float(np.quantile([expected_calibration_error(d.astype(float), p) for d in draws], quantile))


def scores(y: np.ndarray, p: np.ndarray, base_rate) -> dict[str, float]:
    """Every metric of the backtest for one set of forecasts (docs/architecture.md, "Honest
    evaluation"); Brier skill is measured against the base-rate forecast ``base_rate`` (a number,
    or one per row when folds differ)."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    brier = brier_score_loss(y, p)
    ref = np.clip(np.broadcast_to(np.asarray(base_rate, dtype=float), p.shape), EPS, 1 - EPS)
    reference = brier_score_loss(y, ref)
    both = len(np.unique(y)) == 2
    return {
        "n": float(len(y)),
        "slip_rate": float(y.mean()),
        "brier": float(brier),
        "brier_skill": float(1 - brier / reference) if reference > 0 else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "ece": expected_calibration_error(y, p),
    }


def horizon_masks(elapsed, min_rows: int = 10) -> dict[str, np.ndarray]:
    """Per horizon bucket (share of the planned span elapsed) with at least ``min_rows`` rows,
    which rows fall in it."""
    names = np.array(horizons_of(elapsed), dtype=object)
    masks = {name: names == name for *_, name in HORIZONS}
    return {name: mask for name, mask in masks.items() if mask.sum() >= min_rows}


def by_horizon(y, p, elapsed, base_rate) -> dict[str, dict[str, float]]:
    """Scores per share of the planned span elapsed."""
    base = np.broadcast_to(np.asarray(base_rate, dtype=float), np.shape(p))
    return {name: scores(y[mask], p[mask], base[mask]) for name, mask in horizon_masks(elapsed).items()}


def _skill_and_auc(y: np.ndarray, p: np.ndarray, ref: np.ndarray, auc: bool = True) -> dict[str, float]:
    """Brier, Brier skill and (with ``auc``) ROC AUC in plain numpy (a bootstrap computes them
    thousands of times)."""
    brier = float(np.mean((p - y) ** 2))
    reference = float(np.mean((ref - y) ** 2))
    out = {"brier": brier, "brier_skill": 1 - brier / reference if reference > 0 else float("nan")}
    if auc:
        out["roc_auc"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
    return out


def bootstrap(y, p, groups, base_rate, rounds: int, seed: int, auc: bool = True) -> dict[str, tuple[float, float]]:
    """95 % intervals of Brier, Brier skill and (with ``auc``, the costly one) ROC AUC,
    resampling whole milestones."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(groups)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    base = np.clip(np.broadcast_to(np.asarray(base_rate, dtype=float), p.shape), EPS, 1 - EPS)
    sizes = np.diff(starts)
    draws: dict[str, list[float]] = {"brier": [], "brier_skill": [], **({"roc_auc": []} if auc else {})}
    for _ in range(rounds):
        pick = rng.integers(0, len(uniques), len(uniques))
        # the rows of every picked milestone, in pick order: each one's start, plus 0..size-1
        lengths = sizes[pick]
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        idx = order[np.repeat(starts[pick], lengths) + offsets]
        for name, value in _skill_and_auc(y[idx], p[idx], base[idx], auc).items():
            draws[name].append(value)
    return {m: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for m, v in draws.items()}


def leak_audit(frame: pd.DataFrame, features: list[str], threshold: float) -> list[dict]:
    """Features that alone separate the outcomes almost perfectly (AUC >= threshold either way)."""
    y = frame["label"].to_numpy()
    flagged: list[dict] = []
    if len(np.unique(y)) < 2:
        return flagged
    for name in features:
        x = pd.to_numeric(frame[name], errors="coerce")
        mask = x.notna().to_numpy()
        if mask.sum() < 20 or len(np.unique(y[mask])) < 2 or x[mask].nunique() < 2:
            continue
        auc = roc_auc_score(y[mask], x[mask])
        auc = max(auc, 1 - auc)
        if auc >= threshold:
            flagged.append({"feature": name, "auc": float(auc)})
    return flagged


def project_guard(y, p, elapsed, groups, projects, base_rate, rounds: int, seed: int,
                  min_milestones: int = 20) -> dict[str, dict[str, dict]]:
    """The skill guard of each project with at least ``min_milestones`` milestones in the test
    rows, by horizon (``skill_guard`` on its rows alone): a team the pooled model does not serve
    well is guarded even where the pooled cell is not, and a team it serves well is not guarded
    where the pooled cell is (docs/architecture.md, "The skill guard")."""
    projects, groups = np.asarray(projects), np.asarray(groups)
    base = np.broadcast_to(np.asarray(base_rate, dtype=float), np.shape(p))
    out = {}
    for project in sorted(set(projects.tolist())):
        mask = projects == project
        if len(set(groups[mask].tolist())) < min_milestones:
            continue
        cells = skill_guard(np.asarray(y)[mask], np.asarray(p)[mask], np.asarray(elapsed)[mask], groups[mask],
                            base[mask], rounds, seed)
        if cells:
            out[str(project)] = {h: {**cell, "project": str(project)} for h, cell in cells.items()}
    return out


def skill_guard(y, p, elapsed, groups, base_rate, rounds: int, seed: int) -> dict[str, dict]:
    """Per horizon bucket, whether a model's forecasts beat the base rate with confidence: its
    Brier skill and the 95 % bootstrap interval over milestones. ``guarded`` where the interval
    does not lie above 0: there the service serves the base rate instead
    (docs/architecture.md, "The skill guard"). A bucket with fewer than 10 rows is not judged."""
    y, p, elapsed = np.asarray(y, dtype=float), np.asarray(p, dtype=float), np.asarray(elapsed, dtype=float)
    groups = np.asarray(groups)
    base = np.broadcast_to(np.asarray(base_rate, dtype=float), p.shape)
    out = {}
    for name, mask in horizon_masks(elapsed).items():
        skill = scores(y[mask], p[mask], base[mask])["brier_skill"]
        low, high = bootstrap(y[mask], p[mask], groups[mask], base[mask], rounds, seed)["brier_skill"]
        out[name] = {"rows": int(mask.sum()), "brier_skill": float(skill), "interval": [low, high],
                     "guarded": bool(not low > 0)}
    return out
