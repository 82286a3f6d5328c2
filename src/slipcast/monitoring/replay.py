"""``slipcast replay``: the monitoring loop run over a stored history, as a team would have lived it.

From ``start``, every ``every_days``: the milestones open then are forecast by the model trained
on what was known then (training rows whose label was known by that time; their features are
point in time), and the forecasts recorded (those the service would give: not past due, with
scope and history, ``scoring.forecast.forecastable``); each week the forecasts of the current
model whose outcomes are known by then are judged as the monitor judges them
(``monitor.judge``, once ``monitoring.min_outcomes`` are known), and the features served in the
latest ``monitoring.drift_days`` against the model's training rows, once per such window
(``monitor.feature_drift``);
a break retrains the model on
what is known at that moment, but only where such a challenger, fitted ``HOLDOUT_DAYS`` earlier,
beats the current model on the labels learnt since, which neither has seen (the champion guard).
The result is the live calibration a team would have seen, with
and without the loop (docs/architecture.md, "Monitoring").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

from slipcast.core.settings import Settings
from slipcast.features.pipeline import build_training_sets, feature_columns
from slipcast.features.store_history import History
from slipcast.ingest.tables import Tables
from slipcast.monitoring.monitor import feature_drift, judge, judged
from slipcast.scoring.forecast import forecastable
from slipcast.training.fitting import fit_candidate
from slipcast.training.metrics import expected_calibration_error, scores

FEATURES = feature_columns("milestone")
HOLDOUT_DAYS = 56  # the latest labels a challenger must forecast better than the current model to replace it


@dataclass
class ReplayReport:
    start: str
    weeks: int
    forecasts: pd.DataFrame  # milestone_id, as_of, probability, model_version, label, known_at
    retrains: list = field(default_factory=list)  # (as_of, why)
    kept: list = field(default_factory=list)  # (as_of, why): a break whose challenger did not beat the model
    overall: dict = field(default_factory=dict)
    drifts: list = field(default_factory=list)  # (as_of, why): feature drift the monitor would have flagged

    def ece_between(self, since: pd.Timestamp, until: pd.Timestamp | None = None) -> float:
        """Live ECE of the forecasts published in [since, until) whose outcomes are known."""
        rows = self.forecasts[(self.forecasts["as_of"] >= since) & self.forecasts["label"].notna()]
        if until is not None:
            rows = rows[rows["as_of"] < until]
        return expected_calibration_error(rows["label"].to_numpy(), rows["probability"].to_numpy())


def write_replay(report: ReplayReport, frozen: ReplayReport | None, folder) -> str:
    """``replay.md`` in ``folder``: the loop's live figures (and a frozen model's beside them);
    returns its text."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = report.forecasts[report.forecasts["label"].notna()]
    half = done["as_of"].quantile(0.5) if len(done) else None
    lines = [f"# Replay from {report.start[:10]}, every week the loop ran ({report.weeks} steps)", "",
             f"{len(report.forecasts)} forecasts, {len(done)} with known outcomes; {len(report.retrains)} retrains.", "",
             "| model | Brier | Brier skill | ECE | ECE, first half | ECE, second half |", "|---|---|---|---|---|---|"]
    for name, r in (("with the loop", report), ("frozen at the start", frozen)):
        if r is not None and r.overall:
            lines.append(f"| {name} | {r.overall['brier']:.4f} | {r.overall['brier_skill']:+.3f} | {r.overall['ece']:.3f} | "
                         f"{r.ece_between(pd.Timestamp(report.start), half):.3f} | {r.ece_between(half):.3f} |")
    lines += ["", "Retrains:", ""] + [f"- {str(t)[:10]}: {why}" for t, why in report.retrains]
    lines += ["", f"Breaks whose challenger did not beat the model (kept): {len(report.kept)}."]
    lines += ["", f"Weeks with feature drift (as `slipcast monitor` flags it): {len(report.drifts)}.", ""]
    lines += [f"- {str(t)[:10]}: {why}" for t, why in report.drifts[:20]]
    text = "\n".join(lines) + "\n"
    (folder / "replay.md").write_text(text)
    return text


def replay(settings: Settings, tables: Tables, start: pd.Timestamp, every_days: float = 7, retrain: bool = True,
           candidate: str = "logistic", until: pd.Timestamp | None = None) -> ReplayReport:
    """Replay the loop over ``tables`` from ``start`` to ``until`` (the end of the history by default)."""
    history = History(tables, settings.features)
    sets = build_training_sets(tables, settings.features)["milestone"]
    labelled = sets[sets["label"].notna()].sort_values(["as_of", "milestone_id"], kind="stable").reset_index(drop=True)
    cfg = settings.monitoring

    def fit_at(t: pd.Timestamp):
        known = labelled[labelled["label_known_at"] <= t].reset_index(drop=True)
        return fit_candidate(candidate, known, np.arange(len(known)), FEATURES, settings.training)[0]

    def beats(challenger, current, current_fitted: pd.Timestamp, t: pd.Timestamp) -> bool:
        """The champion guard: the challenger, fitted on what was known ``HOLDOUT_DAYS`` ago,
        scores a lower Brier than the current model on the rows labelled since (and after the
        current model's own fit): rows neither has seen."""
        rows = labelled[(labelled["label_known_at"] > t - timedelta(days=HOLDOUT_DAYS))
                        & (labelled["label_known_at"] <= t) & (labelled["as_of"] > current_fitted)]
        if len(rows) < cfg.min_outcomes:
            return False
        y, X = rows["label"].to_numpy(), rows[FEATURES]
        return bool(np.mean((challenger.predict_proba(X)[:, 1] - y) ** 2) < np.mean((current.predict_proba(X)[:, 1] - y) ** 2))

    end = pd.Timestamp(tables.events["at"].max()) if until is None else min(until, pd.Timestamp(tables.events["at"].max()))
    model, version, retrains, kept, drifts, fitted = fit_at(start), 1, [], [], [], start
    published = pd.DataFrame(columns=["milestone_id", "as_of", "probability", "model_version", "label", "known_at"])
    rows_served: list[pd.DataFrame] = []  # the features of what was published, for drift
    window = max(1, round(cfg.drift_days / every_days))  # steps per drift window
    t, weeks = start, 0
    while t <= end:
        ids = history.open_at(t)
        if len(ids):
            who, feats, _ = history.features(ids, [t] * len(ids))
            served = forecastable(feats, settings)
            ids, feats = ids[served], {c: v[served] for c, v in feats.items() if c in FEATURES}
        if len(ids):
            p = model.predict_proba(pd.DataFrame({c: feats[c] for c in FEATURES}))[:, 1]
            label, known_at = history.labels_at(ids, [t] * len(ids))
            now = pd.DataFrame({"milestone_id": ids, "as_of": t, "probability": p, "model_version": version,
                                "label": label, "known_at": known_at.to_numpy()})
            published = now if published.empty else pd.concat([published, now], ignore_index=True)
            rows_served.append(pd.DataFrame({"milestone_id": ids, "project": who["project"].to_numpy()[served],
                                             "as_of": t, **feats}))
        if len(published):
            broken = []
            if weeks % window == 0:  # drift as the monitor measures it, once per window: the latest
                # drift_days served against the model's training rows
                latest = pd.concat(rows_served[-window - 1:], ignore_index=True)
                latest = latest[latest["as_of"] > t - timedelta(days=cfg.drift_days)]
                broken = feature_drift(labelled[labelled["label_known_at"] <= fitted], latest, settings)[1]
                drifts += [(t, why) for why in broken]
            recent = judged(published, t, settings)
            if len(recent) >= cfg.min_outcomes:
                rate = labelled[labelled["label_known_at"] <= t]["label"].mean()
                broken = [f"{why} on {len(recent)} outcomes" for why in judge(
                    recent["label"].to_numpy(), recent["probability"].to_numpy(), recent["milestone_id"].to_numpy(),
                    np.full(len(recent), rate), settings)] + broken
            if retrain and broken and beats(fit_at(t - timedelta(days=HOLDOUT_DAYS)), model, fitted, t):
                model, version, fitted = fit_at(t), version + 1, t
                retrains.append((t, "; ".join(broken)))
            elif retrain and broken:
                kept.append((t, "; ".join(broken)))
        t, weeks = t + timedelta(days=every_days), weeks + 1
    forecasts = published
    done = forecasts[forecasts["label"].notna()]
    overall = scores(done["label"].to_numpy(), done["probability"].to_numpy(), labelled["label"].mean()) if len(done) else {}
    return ReplayReport(start.isoformat(), weeks, forecasts, retrains, kept, overall, drifts)
