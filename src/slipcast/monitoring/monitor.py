"""``slipcast monitor``: the forecasts the service published, against what happened.

Each live (never backfilled) ledger row gets its outcome by the training rules
(``features.store_history.History.labels_at``: the scope committed at its as_of, judged at the due date
known then), counted only once known by now. For those: Brier score, Brier skill against the
base rate current at each forecast (the share of milestones known to have slipped before it),
ECE and the reliability table, overall and by model version, horizon, project and month, with
95 % bootstrap intervals over milestones (``training.metrics``). Before outcomes arrive, the
calibrated probabilities themselves give the expected Brier score. Drift: the population
stability index of each feature, the latest ``monitoring.drift_days`` of published forecasts
against the champion's training rows, and of the published probabilities, latest days against
the ones before. Thresholds (``monitoring``) that break beyond noise (``judge``) are listed; the
command exits 1 then (docs/architecture.md, "Monitoring").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.core.contracts import MONITOR_FILE, horizons_of
from slipcast.core.settings import Settings
from slipcast.features.milestone_features import GROWS_WITH_HISTORY, TEAM_FEATURES
from slipcast.features.pipeline import feature_columns
from slipcast.features.store_history import History
from slipcast.ingest.tables import read_tables
from slipcast.live.ledger import Ledger
from slipcast.training.metrics import bootstrap, calibrated_ece, expected_calibration_error, scores

BINS = 10


@dataclass
class MonitorResult:
    as_of: str
    published: int
    with_outcome: int
    pending: int
    overall: dict = field(default_factory=dict)
    by: dict = field(default_factory=dict)  # dimension -> group -> scores and intervals
    reliability: list = field(default_factory=list)  # per probability bin: n, mean forecast, observed rate
    expected_pending_brier: float | None = None
    feature_psi: dict = field(default_factory=dict)
    prediction_psi: float | None = None
    breaches: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Share of ``values`` (rows of a 2-D array each) in each bin between ``edges``, floored so
    that an empty bin counts as rare rather than impossible."""
    values = np.atleast_2d(values)
    which = np.searchsorted(edges, values, side="right") + (len(edges) + 1) * np.arange(len(values))[:, None]
    counts = np.bincount(which.ravel(), minlength=(len(edges) + 1) * len(values)).reshape(len(values), -1)
    return np.clip(counts / values.shape[1], 1e-4, None)


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges at the reference's quantiles (fewer where values repeat)."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def psi(reference: np.ndarray, recent: np.ndarray, bins: int = BINS) -> float | None:
    """Population stability index of ``recent`` against ``reference``: bins at the reference's
    quantiles, sum of (recent share - reference share) x ln(recent share / reference share)."""
    reference, recent = reference[~np.isnan(reference)], recent[~np.isnan(recent)]
    if len(reference) < bins or len(recent) < bins:
        return None
    edges = _edges(reference, bins)
    ref, now = _shares(edges, reference)[0], _shares(edges, recent)[0]
    return float(np.sum((now - ref) * np.log(now / ref)))


def psi_floor(references: list[np.ndarray], n: int, rounds: int, seed: int, quantile: float = 0.99,
              bins: int = BINS) -> float:
    """The PSI that ``n`` rows drawn from the references themselves would show in the most
    drifted of them (the ``quantile`` over ``rounds`` draws of the largest PSI among them): what
    no drift at all looks like at this sample size, across a family of features, so that a
    check of forty features every week does not cry drift by chance. ``n`` is the evidence's size
    (the milestones behind the recent rows, not their daily repeats)."""
    rng = np.random.default_rng(seed)
    largest = np.zeros(rounds)
    for reference in references:
        reference = reference[~np.isnan(reference)]
        if len(reference) < bins or n < 1:
            continue
        edges = _edges(reference, bins)
        ref = _shares(edges, reference)[0]
        draws = _shares(edges, rng.choice(reference, (rounds, n)))
        largest = np.maximum(largest, np.sum((draws - ref) * np.log(draws / ref), axis=1))
    return float(np.quantile(largest, quantile))


def published_with_outcomes(ledger: Ledger, history: History, now: datetime) -> pd.DataFrame:
    """The live ledger rows with a probability, of milestones the store still holds, each with
    its outcome where known by ``now`` (``label``, NaN otherwise), its horizon and the base rate
    current when it was published."""
    rows = pd.DataFrame(ledger.forecasts(backfilled=False))
    if rows.empty:
        return rows
    rows = rows[rows["probability"].notna()]
    held = history.knows(rows["milestone_id"])
    gone = int((~held).sum())
    rows = rows[held].reset_index(drop=True)
    rows.attrs["gone"] = gone  # forecasts of milestones the store no longer holds, left out
    label, known_at = history.labels_at(rows["milestone_id"], rows["as_of"])
    known_by_now = known_at.notna().to_numpy() & (known_at <= pd.Timestamp(now)).to_numpy()
    rows["label"] = np.where(known_by_now, label, np.nan)
    rows["known_at"] = known_at.where(known_by_now).to_numpy()
    start = history.tl.milestone_start[history.tl.milestones.get_indexer(pd.Index(rows["milestone_id"], dtype=object))]
    start = pd.to_datetime(start, unit="us", utc=True)
    span = (rows["due_at"] - start).dt.total_seconds()
    rows["horizon"] = horizons_of(np.clip((rows["as_of"] - start).dt.total_seconds() / span, 0, 1))
    rows["month"] = rows["as_of"].dt.strftime("%Y-%m")
    known = history.outcomes.sort_values("known_at")
    at = np.searchsorted(known["known_at"].to_numpy(), rows["as_of"].to_numpy(), side="left")
    slipped = np.concatenate([[0.0], np.cumsum(known["slipped"].to_numpy())])
    rows["base_rate"] = np.where(at > 0, slipped[at] / np.maximum(at, 1), np.nan)
    return rows


def judged(rows: pd.DataFrame, now: datetime, settings: Settings) -> pd.DataFrame:
    """Of the published ``rows`` (label, known_at), those the thresholds are judged on: the
    forecasts of the model that published last (the one serving now; an earlier model's misses
    do not count against it) whose outcomes became known within the latest
    ``monitoring.judge_days`` by ``now`` (a change of behaviour shows within weeks, not diluted
    by years of good forecasts)."""
    if rows.empty:
        return rows
    latest = rows["model_version"].iloc[rows["as_of"].to_numpy().argmax()]
    now = pd.Timestamp(now)
    since = now - timedelta(days=settings.monitoring.judge_days)
    return rows[(rows["model_version"] == latest) & rows["label"].notna()
                & (rows["known_at"] > since) & (rows["known_at"] <= now)]


def judge(y: np.ndarray, p: np.ndarray, milestones: np.ndarray, base_rate: np.ndarray, settings: Settings) -> list[str]:
    """The thresholds these forecasts with known outcomes break, each only where the evidence is
    beyond noise: ECE above ``monitoring.max_ece`` and above what calibrated forecasts of this
    size would show 95 % of the time; Brier skill whose 95 % bootstrap interval over milestones
    lies wholly below ``monitoring.min_brier_skill``."""
    cfg, rounds, seed = settings.monitoring, settings.training.bootstrap_rounds, settings.training.seed
    out = []
    ece = expected_calibration_error(y, p)
    if ece > cfg.max_ece:
        floor = calibrated_ece(p, milestones, rounds, seed, 0.99)
        if ece > floor:
            out.append(f"live ECE {ece:.3f} above {cfg.max_ece} (calibrated forecasts would show at most {floor:.3f})")
    skill = scores(y, p, base_rate)["brier_skill"]
    if skill < cfg.min_brier_skill:  # then whether its whole interval is
        high = bootstrap(y, p, milestones, base_rate, rounds, seed)["brier_skill"][1] if len(set(milestones)) > 1 \
            else skill
        if high < cfg.min_brier_skill:
            out.append(f"live Brier skill {skill:+.3f} below {cfg.min_brier_skill} (95 % interval up to {high:+.3f})")
    return out


def serving_rows(rows: pd.DataFrame, history: History, days: float) -> pd.DataFrame:
    """The features of the milestones published in the latest ``days`` of ``rows`` (the latest
    forecast of each milestone per day), as the service computed them."""
    recent = rows[rows["as_of"] >= rows["as_of"].max() - timedelta(days=days)].sort_values("as_of")
    daily = recent.groupby(["milestone_id", recent["as_of"].dt.date]).tail(1)
    who, feats, _ = history.features(daily["milestone_id"], list(daily["as_of"]))
    return pd.DataFrame({"milestone_id": daily["milestone_id"].to_numpy(), "project": who["project"].to_numpy(),
                         **{name: feats[name] for name in feature_columns("milestone")}})


def feature_drift(training_rows: pd.DataFrame, served: pd.DataFrame, settings: Settings
                  ) -> tuple[dict[str, float], list[str]]:
    """PSI of each numeric feature of the ``served`` rows (milestone_id, project, features)
    against the model's ``training_rows``, and the breach it makes: the features above
    ``monitoring.max_psi`` and above what as many milestones (for a team's own figures, as many
    teams) drawn from the training rows themselves would show in the most drifted of those
    features (``psi_floor``). Counts that grow with the history are not compared."""
    cfg = settings.monitoring
    compared = [name for name in feature_columns("milestone") if name not in GROWS_WITH_HISTORY
                and name in training_rows and pd.api.types.is_numeric_dtype(training_rows[name])]
    values = {}
    for name in compared:
        value = psi(training_rows[name].to_numpy(np.float64), served[name].to_numpy(np.float64))
        if value is not None:
            values[name] = round(value, 4)
    # the evidence behind a feature: the milestones, or for a team's own figures its teams
    behind = {"milestone": served["milestone_id"].nunique(), "team": served["project"].nunique()}
    floors = {family: psi_floor([training_rows[c].to_numpy(np.float64) for c in compared
                                 if (c in TEAM_FEATURES) == (family == "team")],
                                n, settings.training.bootstrap_rounds, settings.training.seed)
              for family, n in behind.items()}
    drifted = {name: value for name, value in values.items()
               if value > cfg.max_psi and value > floors["team" if name in TEAM_FEATURES else "milestone"]}
    if not drifted:
        return values, []
    return values, [f"feature drift (PSI above {cfg.max_psi} and beyond what {behind['milestone']} milestones of "
                    f"{behind['team']} teams drawn from the training rows would show): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in sorted(drifted.items(), key=lambda kv: -kv[1]))]


def _scores(frame: pd.DataFrame, settings: Settings) -> dict:
    y, p = frame["label"].to_numpy(), frame["probability"].to_numpy()
    base = frame["base_rate"].fillna(frame["label"].mean()).to_numpy()
    out: dict = scores(y, p, base)
    if len(np.unique(frame["milestone_id"])) >= 2:
        out["intervals"] = bootstrap(y, p, frame["milestone_id"].to_numpy(), base,
                                     settings.training.bootstrap_rounds, settings.training.seed)
    return out


def monitor(settings: Settings, store: str | Path, now: datetime, training_rows: pd.DataFrame | None) -> MonitorResult:
    """Judge the published forecasts of the ledger at ``serving.ledger_url`` against the store."""
    if not settings.serving.ledger_url:
        raise ValueError("no ledger configured (serving.ledger_url): nothing was recorded to monitor")
    cfg = settings.monitoring
    ledger = Ledger(settings.resolved_uri(settings.serving.ledger_url))  # a broken one stops it before any work
    history = History(read_tables(store), settings.features)
    rows = published_with_outcomes(ledger, history, now)
    result = MonitorResult(as_of=pd.Timestamp(now).isoformat(), published=len(rows),
                           with_outcome=int(rows["label"].notna().sum()) if len(rows) else 0,
                           pending=int(rows["label"].isna().sum()) if len(rows) else 0)
    if rows.attrs.get("gone"):
        result.notes.append(f"{rows.attrs['gone']} published forecasts name milestones the store no longer holds "
                            "(deleted on the tracker, or no longer selected): left out")
    if rows.empty:
        result.notes.append("no published forecasts in the ledger yet")
        return result
    done = rows[rows["label"].notna()]
    pending = rows[rows["label"].isna()]
    if len(pending):
        q = pending["probability"].to_numpy()
        result.expected_pending_brier = float(np.mean(q * (1 - q)))  # if the forecasts are calibrated
    if len(done):
        result.overall = _scores(done, settings)
        for dimension in ("model_version", "horizon", "project", "month"):
            result.by[dimension] = {str(g): _scores(part, settings) for g, part in done.groupby(dimension, dropna=True)
                                    if len(part) >= 10}
        which = np.clip(np.digitize(done["probability"], np.linspace(0, 1, BINS + 1)[1:-1]), 0, BINS - 1)
        result.reliability = [{"bin": f"{b / BINS:.1f}-{(b + 1) / BINS:.1f}", "n": int((which == b).sum()),
                               "forecast": float(done["probability"][which == b].mean()),
                               "observed": float(done["label"][which == b].mean())}
                              for b in range(BINS) if (which == b).any()]
    recent = judged(rows, now, settings)
    if len(recent) >= cfg.min_outcomes:
        result.breaches += judge(recent["label"].to_numpy(), recent["probability"].to_numpy(),
                                 recent["milestone_id"].to_numpy(),
                                 recent["base_rate"].fillna(done["label"].mean()).to_numpy(), settings)
    else:
        result.notes.append(f"{len(recent)} forecasts of the serving model with outcomes known in the last "
                            f"{cfg.judge_days:g} days; thresholds are judged from {cfg.min_outcomes}")
    recent_from = rows["as_of"].max() - timedelta(days=cfg.drift_days)  # the latest days published
    result.prediction_psi = psi(rows[rows["as_of"] < recent_from]["probability"].to_numpy(),
                                rows[rows["as_of"] >= recent_from]["probability"].to_numpy())
    if training_rows is None:
        result.notes.append("no training rows given (--features): feature drift not measured")
    else:
        result.feature_psi, broken = feature_drift(training_rows, serving_rows(rows, history, cfg.drift_days), settings)
        result.breaches += broken
    return result


def log_to_mlflow(result: MonitorResult, settings: Settings, report: Path) -> str:
    """One run in the ``<prefix>monitoring`` experiment: the live figures as metrics (comparable
    across runs in the MLflow UI), the thresholds broken as a tag, the report as an artifact.
    Returns the run id."""
    from slipcast.training.tracking import configure, experiment_id

    client = configure(settings)
    run = client.create_run(experiment_id(client, settings, "monitoring"), run_name=f"monitor {result.as_of}")
    metrics: dict[str, float] = {"published": result.published, "with_outcome": result.with_outcome,
                                 "pending": result.pending}
    metrics.update({f"live_{k}": v for k, v in result.overall.items() if k in ("brier", "brier_skill", "ece", "roc_auc")})
    if result.feature_psi:
        metrics["max_feature_psi"] = max(result.feature_psi.values())
    if result.prediction_psi is not None:
        metrics["prediction_psi"] = result.prediction_psi
    for key, value in metrics.items():
        if value is not None and np.isfinite(value):
            client.log_metric(run.info.run_id, key, float(value))
    client.set_tag(run.info.run_id, "breaches", "; ".join(result.breaches) or "none")
    client.set_tag(run.info.run_id, "monitor_as_of", result.as_of)
    for name in ("monitor.md", "monitor.json"):
        client.log_artifact(run.info.run_id, str(report.parent / name))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def write_report(result: MonitorResult, folder: Path) -> Path:
    """``monitor.json`` (``core.contracts.MONITOR_FILE``, which the service reads) and
    ``monitor.md`` in ``folder``; returns the Markdown file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MONITOR_FILE).write_text(json.dumps(asdict(result), indent=2, default=str))
    o = result.overall
    lines = [f"# Slipcast monitor, {result.as_of}", "",
             f"{result.published} published forecasts: {result.with_outcome} with a known outcome, "
             f"{result.pending} pending.", ""]
    if o:
        lines += [f"Live Brier {o['brier']:.4f}, Brier skill {o['brier_skill']:+.3f} against the base rate current at "
                  f"each forecast, ECE {o['ece']:.3f}, ROC AUC {o['roc_auc']:.3f}.", "",
                  "| dimension | group | n | Brier | skill | skill 95 % interval | ECE |", "|---|---|---|---|---|---|---|"]
        for dimension, groups in result.by.items():
            for g, s in groups.items():
                low, high = s.get("intervals", {}).get("brier_skill", (float("nan"), float("nan")))
                lines.append(f"| {dimension} | {g} | {int(s['n'])} | {s['brier']:.4f} | {s['brier_skill']:+.3f} | "
                             f"[{low:+.3f}, {high:+.3f}] | {s['ece']:.3f} |")
        lines += ["", "| forecast bin | n | mean forecast | observed |", "|---|---|---|---|"]
        lines += [f"| {r['bin']} | {r['n']} | {r['forecast']:.3f} | {r['observed']:.3f} |" for r in result.reliability]
    if result.expected_pending_brier is not None:
        lines += ["", f"Expected Brier of the pending forecasts, if calibrated: {result.expected_pending_brier:.4f}."]
    if result.feature_psi:
        lines += ["", "| feature | PSI (latest days against training) |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in sorted(result.feature_psi.items(), key=lambda kv: -kv[1])]
    if result.prediction_psi is not None:
        lines += ["", f"Published probabilities, latest days against before: PSI {result.prediction_psi:.3f}."]
    lines += ["", "## Thresholds", ""] + ([f"- broken: {b}" for b in result.breaches] or ["- none broken"])
    lines += [f"- note: {n}" for n in result.notes]
    path = folder / "monitor.md"
    path.write_text("\n".join(lines) + "\n")
    return path
