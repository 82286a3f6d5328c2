"""The evaluation report of a training run: Markdown with plots beside it."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from slipcast.features.milestone_features import monotone_directions  # noqa: E402
from slipcast.training.backtest import REFERENCE, Backtest  # noqa: E402
from slipcast.training.calibration import RECENCY_MARGIN, UNCALIBRATED

SHOWN = ("base_rate", "monte_carlo", REFERENCE)


def _plot_reliability(bt: Backtest, chosen: str, path: Path) -> None:
    y = bt.frame["label"].to_numpy()[bt.test_rows]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    for name in (chosen,) + tuple(n for n in SHOWN if n in bt.results and n != chosen):
        frac, mean = calibration_curve(y, bt.results[name].predictions, n_bins=10, strategy="quantile")
        ax.plot(mean, frac, "o-", label=name)
    ax.set(xlabel="forecast probability of slipping", ylabel="observed slip rate",
           title=f"Reliability ({bt.target}, pooled backtest)")
    ax.legend()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _plot_roc(bt: Backtest, path: Path) -> None:
    y = bt.frame["label"].to_numpy()[bt.test_rows]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k:")
    for name, res in bt.results.items():
        fpr, tpr, _ = roc_curve(y, res.predictions)
        ax.plot(fpr, tpr, label=f"{name} (AUC {res.overall['roc_auc']:.2f})")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({bt.target})")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _plot_horizons(bt: Backtest, path: Path) -> None:
    names = list(bt.results)
    horizons = sorted({h for r in bt.results.values() for h in r.horizons})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [bt.results[name].horizons.get(h, {}).get("brier", np.nan) for h in horizons]
        ax.bar(np.arange(len(horizons)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(horizons)) + 0.4 - width / 2, horizons)
    ax.set(ylabel="Brier score (lower is better)", title=f"Brier by horizon ({bt.target})")
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def permutation_table(bt: Backtest, chosen: str, seed: int, max_rows: int = 3000) -> pd.DataFrame:
    """Permutation importance of the chosen candidate on the last fold's test rows."""
    fold = bt.folds[-1]
    model = bt.results[chosen].last_model
    rows = bt.frame.iloc[fold.test]
    if len(rows) > max_rows:
        rows = rows.sample(max_rows, random_state=seed)
    result = permutation_importance(model, rows[bt.features], rows["label"].astype(int),
                                    scoring="neg_brier_score", n_repeats=5, random_state=seed)
    return (pd.DataFrame({"feature": bt.features, "importance": result.importances_mean,
                          "std": result.importances_std})
            .sort_values("importance", ascending=False).reset_index(drop=True))


def against_domain(model, rows: pd.DataFrame, features: list[str], moved: float = 0.005) -> dict[str, float]:
    """Per feature whose direction the domain fixes (``monotone_directions``): the share of ``rows`` where
    raising it by half its spread (a share kept within 0 to 1) moves ``model``'s probability
    against that direction by more than ``moved``. For a logistic model it is the sign check of
    its coefficient; a model held monotone has 0 (docs/features.md, "Monotone features")."""
    base = model.predict_proba(rows[features])[:, 1]
    shares = {}
    directions = monotone_directions(features)
    for name in (f for f in directions if rows[f].notna().any()):
        nudged = rows[features].copy()
        nudged[name] = nudged[name] + 0.5 * np.nanstd(nudged[name].to_numpy(float))
        if name.endswith("_share"):
            nudged[name] = nudged[name].clip(0, 1)
        change = (model.predict_proba(nudged)[:, 1] - base) * directions[name]
        shares[name] = float(np.mean(change < -moved))
    return shares


def _plot_importance(table: pd.DataFrame, path: Path, target: str) -> None:
    top = table.head(15).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.barh(top["feature"], top["importance"], xerr=top["std"])
    ax.set(xlabel="increase in Brier score when shuffled", title=f"Permutation importance ({target})")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _fmt(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"


def write_report(bt: Backtest, chosen: str, decision: dict, out_dir: Path, seed: int,
                 command: str, fingerprint: str, guard: dict | None = None,
                 project_guard: dict | None = None) -> Path:
    """Write ``report.md`` and its plots into ``out_dir``; return the report path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot_reliability(bt, chosen, out_dir / "reliability.png")
    _plot_roc(bt, out_dir / "roc.png")
    _plot_horizons(bt, out_dir / "brier_by_horizon.png")
    importance = permutation_table(bt, chosen, seed)
    _plot_importance(importance, out_dir / "feature_importance.png", bt.target)
    importance.to_csv(out_dir / "feature_importance.csv", index=False)

    ch = bt.results[chosen].overall
    lines = [
        f"# Slipcast evaluation: {bt.target}",
        "",
        f"- Command: `{command}`",
        f"- Data fingerprint: `{fingerprint}`; backtest id `{bt.backtest_id}`",
        f"- Labelled snapshots: {len(bt.frame)}; pooled test rows: {len(bt.test_rows)} over {len(bt.folds)} folds",
        f"- Chosen: **{chosen}** (lowest pooled Brier score)",
        f"- Champion decision: **{'promoted' if decision['promoted'] else 'not promoted'}**: {decision['reason']}",
        "",
        "## Candidates side by side (pooled over folds; 95 % bootstrap intervals over milestones)",
        "",
        "| candidate | Brier | Brier skill [95 % CI] | log loss | ROC AUC | PR AUC | ECE |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in bt.ranking() + ([REFERENCE] if REFERENCE in bt.results else []):
        o, ci = bt.results[name].overall, bt.results[name].intervals["brier_skill"]
        lines.append(f"| {name} | {_fmt(o['brier'])} | {_fmt(o['brier_skill'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
                     f"{_fmt(o['log_loss'])} | {_fmt(o['roc_auc'])} | {_fmt(o['pr_auc'])} | {_fmt(o['ece'])} |")
    lines += ["", f"`{REFERENCE}` is the Monte Carlo on-time probability used as is, the way "
              "practitioner tools report it; `monte_carlo` is the same number calibrated on training data.", "",
              "## How much the chosen model beats each baseline", ""]
    for name in bt.results:
        if name != chosen:
            b = bt.results[name].overall["brier"]
            change = 100 * (b - ch["brier"]) / b
            lines.append(f"- vs {name}: Brier {_fmt(b)} -> {_fmt(ch['brier'])} "
                         f"({abs(change):.1f} % {'lower' if change >= 0 else 'higher'})")
    lines += ["", "## By horizon (share of the planned span elapsed)", "",
              "| candidate | horizon | n | Brier | Brier skill | ROC AUC | ECE |", "|---|---|---|---|---|---|---|"]
    for name, res in bt.results.items():
        for h, s in res.horizons.items():
            lines.append(f"| {name} | {h} | {int(s['n'])} | {_fmt(s['brier'])} | {_fmt(s['brier_skill'])} | "
                         f"{_fmt(s['roc_auc'])} | {_fmt(s['ece'])} |")
    lines += ["", "## Per fold", "", "| candidate | fold | cutoff | train | test | Brier | skill | AUC |",
              "|---|---|---|---|---|---|---|---|"]
    for name, res in bt.results.items():
        for f in res.folds:
            lines.append(f"| {name} | {f['fold']} | {f['cutoff'][:10]} | {f['train']} | {int(f['n'])} | "
                         f"{_fmt(f['brier'])} | {_fmt(f['brier_skill'])} | {_fmt(f['roc_auc'])} |")
    cal = bt.results[chosen].calibration
    if any(cal):
        lines += ["", "Setting (chosen on inner forward folds of each fold's training rows) and calibration (chosen "
                      f"on the latest of them), per fold: {'; '.join(map(str, cal))}."]
    briers = bt.results[chosen].recipe_briers
    if any(briers):
        recipes = list(dict.fromkeys(r for fold in briers for r in fold))
        lines += ["", "Calibration recipes compared, per fold: each fitted on the earlier half of the fold's "
                      "calibration rows (its latest training rows) and scored (Brier) on the later half; the lowest "
                      "is taken (bold), a recency-weighted one only when it beats equal weights by "
                      f"{RECENCY_MARGIN:.0%}, and is then refitted on all of them.", "",
                  "| fold | " + " | ".join(recipes) + " |", "|---|" + "---|" * len(recipes)]
        for f, fold, took in zip(bt.results[chosen].folds, briers, cal):
            cells = [("**{:.4f}**" if str(took).endswith(r) else "{:.4f}").format(fold[r]) if r in fold else ""
                     for r in recipes]
            lines.append(f"| {f['fold']} | " + " | ".join(cells) + " |")
    if UNCALIBRATED in cal:
        lines += ["", f"In {cal.count(UNCALIBRATED)} of {len(cal)} folds the latest training rows held fewer than "
                      "two of either outcome: the model was fitted on all of them and left uncalibrated."]
    if bt.unavailable:
        lines += ["", f"Not available in this data (no value in any labelled row; left out of the models): "
                      f"{', '.join(f'`{c}`' for c in bt.unavailable)}."]
    if guard:
        lines += ["", "## Skill guard (the chosen model against the base rate, by horizon)", "",
                  "Where the 95 % interval of the Brier skill does not lie above 0, the service serves the recent "
                  "base rate instead of the model, and says so.", "",
                  "| horizon | rows | Brier skill | 95 % interval | served |", "|---|---|---|---|---|"]
        lines += [f"| {h} | {g['rows']} | {g['brier_skill']:+.3f} | [{g['interval'][0]:+.3f}, {g['interval'][1]:+.3f}] | "
                  f"{'base rate' if g['guarded'] else 'model'} |" for h, g in guard.items()]
    if project_guard:
        lines += ["", "Per project (projects with enough milestones in the test rows; a project's cell overrides the "
                      "pooled one for its milestones):", "",
                  "| project | horizon | rows | Brier skill | 95 % interval | served |", "|---|---|---|---|---|---|"]
        lines += [f"| {p} | {h} | {g['rows']} | {g['brier_skill']:+.3f} | [{g['interval'][0]:+.3f}, "
                  f"{g['interval'][1]:+.3f}] | {'base rate' if g['guarded'] else 'model'} |"
                  for p, cells in project_guard.items() for h, g in cells.items()]
    against = against_domain(bt.results[chosen].last_model, bt.frame.iloc[bt.folds[-1].test], bt.features)
    if against:
        lines += ["", "## Directions the domain fixes (chosen model, last fold's test rows)", "",
                  "Share of rows where raising the feature by half its spread moves the chance of slipping the "
                  "other way than the domain says (more done never raises it, more work left never lowers it, more "
                  "time left never raises it), by more than half a point:", "",
                  "| feature | direction | rows against it |", "|---|---|---|"]
        lines += [f"| {f} | {'raises' if monotone_directions(bt.features)[f] > 0 else 'lowers'} risk | {share:.1%} |"
                  for f, share in against.items()]
    lines += ["", "## Leak audit", ""]
    if bt.leaks:
        lines += [f"- **FLAGGED** `{x['feature']}` alone reaches AUC {x['auc']:.3f}: check it cannot see the outcome"
                  for x in bt.leaks]
    else:
        lines.append("No single feature reaches the near-perfect AUC that would suggest a leak.")
    lines += ["", "## Plots", "", "![reliability](reliability.png) ![roc](roc.png)", "",
              "![brier by horizon](brier_by_horizon.png) ![importance](feature_importance.png)", "",
              "## Permutation importance (chosen model, last fold)", "", "| feature | importance | std |", "|---|---|---|"]
    lines += [f"| {r.feature} | {r.importance:.4f} | {r.std:.4f} |" for r in importance.head(15).itertuples()]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
