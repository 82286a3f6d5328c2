"""Run every candidate on the same rolling-origin folds and score the pooled forecasts."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slipcast.core.contracts import horizon_of
from slipcast.core.progress import progress
from slipcast.core.settings import TrainingSettings
from slipcast.training.calibration import RECENCY_MARGIN
from slipcast.training.fitting import available_features, fit_candidate
from slipcast.training.metrics import (
    bootstrap,
    by_horizon,
    calibrated_ece,
    horizon_masks,
    leak_audit,
    project_guard,
    scores,
    skill_guard,
)
from slipcast.training.splits import Fold, RollingOrigin

log = logging.getLogger(__name__)
REFERENCE = "monte_carlo_raw"  # the practitioners' number used as is, scored beside the candidates


@dataclass
class CandidateResult:
    """One candidate's forecasts on every fold, and their scores."""

    name: str
    predictions: np.ndarray  # aligned with Backtest.test_rows
    folds: list[dict] = field(default_factory=list)
    overall: dict = field(default_factory=dict)
    horizons: dict = field(default_factory=dict)
    intervals: dict = field(default_factory=dict)
    calibration: list = field(default_factory=list)
    recipe_briers: list = field(default_factory=list)  # per fold: each calibration recipe's Brier in its choice
    last_model: object = None
    fit_seconds: float = 0.0


@dataclass
class Backtest:
    """The folds, the pooled test rows and every candidate's result."""

    target: str
    frame: pd.DataFrame  # labelled rows, sorted by as_of
    features: list[str]
    folds: list[Fold]
    test_rows: np.ndarray
    base_rate: np.ndarray  # per pooled test row: its fold's training slip rate
    results: dict[str, CandidateResult]
    leaks: list[dict]
    backtest_id: str
    unavailable: list[str] = field(default_factory=list)  # features with no value in this data
    recent_rate: np.ndarray | None = None  # per pooled test row: its fold's recent training slip rate

    def fallback(self, rows: int | None = None) -> str:
        """The base rate a guarded forecast serves: ``"recent"`` (the latest rows' slip rate) where
        it scored a Brier at least ``RECENCY_MARGIN`` lower than the whole history's on the first
        ``rows`` pooled test rows (all of them by default), else ``"whole history"``. Under drift
        the recent rate wins by far; where the slip rate only wanders, a small lead is noise from a
        few correlated milestones, and the whole history, with more rows, is the safer forecast."""
        y = self.frame["label"].to_numpy()[self.test_rows][:rows]
        if self.recent_rate is None or not len(y):
            return "whole history"
        whole = np.mean((self.base_rate[:rows] - y) ** 2)
        recent = np.mean((self.recent_rate[:rows] - y) ** 2)
        return "recent" if recent < (1 - RECENCY_MARGIN) * whole else "whole history"

    def guard(self, chosen: str, rounds: int, seed: int) -> dict[str, dict]:
        """The skill guard of ``chosen`` on these folds (``training.metrics.skill_guard``)."""
        rows = self.test_rows
        return skill_guard(self.frame["label"].to_numpy()[rows], self.results[chosen].predictions,
                           self.frame["span_elapsed"].to_numpy()[rows], self.frame["milestone_id"].to_numpy()[rows],
                           self.base_rate, rounds, seed)

    def project_guard(self, chosen: str, rounds: int, seed: int) -> dict[str, dict[str, dict]]:
        """The skill guard of ``chosen`` per project with enough milestones (``training.metrics.project_guard``)."""
        rows = self.test_rows
        return project_guard(self.frame["label"].to_numpy()[rows], self.results[chosen].predictions,
                             self.frame["span_elapsed"].to_numpy()[rows], self.frame["milestone_id"].to_numpy()[rows],
                             self.frame["project"].to_numpy()[rows], self.base_rate, rounds, seed)

    def served(self, chosen: str, settings: TrainingSettings) -> tuple[np.ndarray, np.ndarray]:
        """The forecasts the service would have served on each fold after the first, with the skill
        guard (pooled and per project) decided on the earlier folds alone and the base rate it serves
        taken from that fold's training rows: a forward-only test of the guard itself. Returns the
        positions (into ``test_rows``) of those folds and the served probabilities there."""
        p = self.results[chosen].predictions
        y = self.frame["label"].to_numpy()[self.test_rows]
        rows = self.frame.iloc[self.test_rows]
        elapsed, groups = rows["span_elapsed"].to_numpy(), rows["milestone_id"].to_numpy()
        projects = rows["project"].to_numpy()
        sizes = np.cumsum([0] + [len(f.test) for f in self.folds])
        positions, served = [], []
        for k in range(1, len(self.folds)):
            seen = slice(0, sizes[k])
            pooled = skill_guard(y[seen], p[seen], elapsed[seen], groups[seen], self.base_rate[seen],
                                 settings.bootstrap_rounds, settings.seed)
            own = project_guard(y[seen], p[seen], elapsed[seen], groups[seen], projects[seen], self.base_rate[seen],
                                settings.bootstrap_rounds, settings.seed)
            rate = base_rates(self.frame.iloc[self.folds[k].train], settings.calibration_share)[self.fallback(sizes[k])]
            here = np.arange(sizes[k], sizes[k + 1])
            out = p[here].copy()
            for j, i in enumerate(here):
                horizon = horizon_of(float(elapsed[i])) or ""
                cell = own.get(str(projects[i]), {}).get(horizon, pooled.get(horizon))
                if cell is not None and cell["guarded"]:
                    out[j] = rate
            positions.append(here)
            served.append(out)
        if not positions:
            return np.zeros(0, dtype=int), np.zeros(0)
        return np.concatenate(positions), np.concatenate(served)

    def served_scores(self, chosen: str, settings: TrainingSettings) -> dict:
        """The chosen model and the forecast the service would serve (``served``: the guard
        decided on earlier folds only) on the same later folds: overall and by horizon, each with
        ``ece_floor``, the ECE that calibrated forecasts of that size would show (95 %; a
        release's, or a ticket's, snapshots are one piece of evidence)."""
        where, served = self.served(chosen, settings)
        if not len(where):  # one fold: nothing is tested after a guard decided on earlier folds
            return {"model": {}, "served": {}, "horizons": {}}
        rows = self.test_rows[where]
        y, elapsed = self.frame["label"].to_numpy()[rows], self.frame["span_elapsed"].to_numpy()[rows]
        unit = "ticket_id" if "ticket_id" in self.frame else "milestone_id"  # whose snapshots share an outcome
        groups = self.frame[unit].to_numpy()[rows]
        model, base = self.results[chosen].predictions[where], self.base_rate[where]

        def scored(p, mask=slice(None)) -> dict:
            return {**scores(y[mask], p[mask], base[mask]),
                    "ece_floor": calibrated_ece(p[mask], groups[mask], settings.bootstrap_rounds, settings.seed)}

        horizons = {h: {"model": scored(model, mask), "served": scored(served, mask)}
                    for h, mask in horizon_masks(elapsed).items()}
        return {"model": scored(model), "served": scored(served), "horizons": horizons}

    def ranking(self) -> list[str]:
        """Candidates from lowest to highest pooled Brier score (the reference excluded)."""
        names = [n for n in self.results if n != REFERENCE]
        return sorted(names, key=lambda n: self.results[n].overall["brier"])


def withheld(served_scores: dict) -> dict[str, dict]:
    """The horizons where the served forecast, tested forward only (``Backtest.served_scores``),
    is not calibrated (ECE above what calibrated forecasts of that size would show) or worse than
    the base rate: there a probability would not be honest, and the service withholds it. Each
    with its reason, in numbers."""
    out = {}
    for horizon, cell in served_scores["horizons"].items():
        s = cell["served"]
        if s["ece"] > s["ece_floor"] or s["brier_skill"] < 0:
            out[horizon] = {"ece": s["ece"], "ece_floor": s["ece_floor"], "brier_skill": s["brier_skill"],
                            "reason": f"withheld {horizon}: tested forward, what would be served there has ECE "
                                      f"{s['ece']:.3f} against a noise floor of {s['ece_floor']:.3f} and Brier "
                                      f"skill {s['brier_skill']:+.3f}"}
    return out


def base_rates(frame: pd.DataFrame, share: float) -> dict[str, float]:
    """The slip rates a guarded forecast may serve: of the whole history, and of its latest
    ``share`` of labelled rows (by when their outcome became known)."""
    known = frame["label_known_at"]
    recent = frame[known >= known.quantile(1 - share)]
    return {"whole history": float(frame["label"].mean()), "recent": float(recent["label"].mean())}


def labelled_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose outcome is known, oldest first."""
    out = frame[frame["label"].notna()].sort_values(["as_of", "milestone_id"], kind="stable")
    return out.reset_index(drop=True)


def _backtest_id(frame: pd.DataFrame, folds: list[Fold], features: list[str], fingerprint: str) -> str:
    spec = {"fingerprint": fingerprint, "features": features,
            "folds": [(str(f.cutoff), len(f.train), len(f.test)) for f in folds]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def run_backtest(frame: pd.DataFrame, target: str, features: list[str], candidates: list[str],
                 settings, fingerprint: str = "") -> Backtest:
    """Backtest ``candidates`` on rolling-origin folds of the labelled rows of ``frame``."""
    data = labelled_rows(frame)
    folds = RollingOrigin(settings.folds, settings.first_cutoff_quantile, settings.min_train_rows,
                          settings.min_train_positives).folds(data)
    test_rows = np.concatenate([f.test for f in folds])
    y_all = data["label"].to_numpy().astype(int)
    base = np.concatenate([np.full(len(f.test), y_all[f.train].mean()) for f in folds])
    recent = np.concatenate([np.full(len(f.test), base_rates(data.iloc[f.train], settings.calibration_share)["recent"])
                             for f in folds])
    names = list(candidates) + ([REFERENCE] if "monte_carlo_on_time" in features else [])
    results = {n: CandidateResult(n, np.empty(len(test_rows))) for n in names}
    offset = 0
    for fold in progress(folds, f"{target} backtest", unit="fold"):
        y_test = y_all[fold.test]
        prior = y_all[fold.train].mean()
        sl = slice(offset, offset + len(fold.test))
        for name in names:
            res = results[name]
            started = time.perf_counter()
            if name == REFERENCE:
                mc = data["monte_carlo_on_time"].to_numpy()[fold.test]
                p = np.where(np.isnan(mc), prior, 1.0 - mc)
            else:
                model, recipe = fit_candidate(name, data, fold.train, features, settings)
                p = model.predict_proba(data.iloc[fold.test][features])[:, 1]  # type: ignore[attr-defined]
                res.last_model = model
                res.calibration.append(recipe)
                res.recipe_briers.append(getattr(model, "recipe_briers_", {}))
            res.fit_seconds += time.perf_counter() - started
            res.predictions[sl] = p
            res.folds.append({"fold": fold.number, "cutoff": str(fold.cutoff), "train": len(fold.train),
                              **scores(y_test, p, prior)})
        log.info("fold %d (cutoff %s): %d train, %d test", fold.number, fold.cutoff, len(fold.train), len(fold.test))
        offset += len(fold.test)
    y = y_all[test_rows]
    elapsed = data["span_elapsed"].to_numpy()[test_rows]
    groups = data["milestone_id"].to_numpy()[test_rows]
    for res in results.values():
        res.overall = scores(y, res.predictions, base)
        res.horizons = by_horizon(y, res.predictions, elapsed, base)
        res.intervals = bootstrap(y, res.predictions, groups, base, settings.bootstrap_rounds, settings.seed)
    leaks = leak_audit(data, [c for c in features if pd.api.types.is_numeric_dtype(data[c])], settings.leak_auc)
    unavailable = [c for c in features if c not in available_features(data, features)]
    return Backtest(target, data, features, folds, test_rows, base, results, leaks,
                    _backtest_id(data, folds, features, fingerprint), unavailable, recent)
