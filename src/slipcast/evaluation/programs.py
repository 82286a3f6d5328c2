"""Program forecasts backtested forward, beside the rules peers use (docs/results.md, "Programs").

A milestone model is fitted on the labels known before each cutoff (rolling origin, as the
backtest's folds), and every group of milestones open together after it is forecast weekly until
the next cutoff, by:

- ``joint``: Slipcast's Monte Carlo (correlated draws, slips carried along dependencies);
- ``independent``: the product of the milestones' own chances, as if teams were independent;
- ``worst``: the worst single milestone's chance;
- ``throughput``: the product of each milestone's raw throughput Monte Carlo chance.

A group lands when every milestone open in it at as_of (with something committed) is done by
its own due date, each judged by the milestone label's rules (docs/features.md, "Labels").
Groups are formed as the data allows: programs (epics, shared names), milestones joined by
dependency edges, or one project's releases due within the same weeks.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, roc_auc_score

from slipcast.core.contracts import ModelMetadata
from slipcast.core.model_format import Classifier
from slipcast.core.settings import Settings
from slipcast.core.vocabulary import MilestoneKind, ProgramSource
from slipcast.features.pipeline import build_training_sets, feature_columns
from slipcast.features.programs import Program, programs_at
from slipcast.features.store_history import History
from slipcast.features.timeline import NAT, micros
from slipcast.ingest.simulator import SimulationConfig
from slipcast.ingest.tables import Tables
from slipcast.live.programs import ProgramContext, forecast_programs, program_context
from slipcast.scoring.model_store import LoadedModel
from slipcast.training.fitting import fit_candidate, split_columns
from slipcast.training.metrics import calibrated_ece, expected_calibration_error

RULES = ("joint", "independent", "worst", "throughput")
GROUPINGS = {"programs": "programs found in the tracker (epics across projects, shared milestone names)",
             "dependencies": "milestones joined by dependency edges (connected, at as_of)",
             "same_weeks": "one project's releases due within the same two weeks"}
# the simulated ground truth of docs/results.md's program tables: teams that commit less than the
# default's (so a group of milestones lands often enough to score), long spells shared by every team,
# a program a month, half of a later team's program tickets waiting on an earlier team's
PROGRAM_SIMULATION = SimulationConfig(projects=8, tickets=8000, seed=3, optimism=(0.4, 0.8), capacity_sigma=0.5,
                                      shared_shock=0.9, program_every_days=30, program_dependency_share=0.5)
PROGRAM_SIMULATION_TEXT = (
    f"`slipcast generate` of {PROGRAM_SIMULATION.projects} teams, {PROGRAM_SIMULATION.tickets:,} tickets, seed "
    f"{PROGRAM_SIMULATION.seed}, teams committing {PROGRAM_SIMULATION.optimism[0]:.0%} to "
    f"{PROGRAM_SIMULATION.optimism[1]:.0%} of their expected capacity, weekly capacity of log-sigma "
    f"{PROGRAM_SIMULATION.capacity_sigma} of which {PROGRAM_SIMULATION.shared_shock:.0%} of the variance is a spell "
    f"every team meets, a program (an epic across 2 to 4 teams) every {PROGRAM_SIMULATION.program_every_days} days "
    f"with {PROGRAM_SIMULATION.program_dependency_share:.0%} of a later team's program tickets waiting on an earlier "
    "team's, so a blocker's slip reaches its dependents.")
SAME_WEEKS_DAYS = 14
STEP_DAYS = 7
BACKTEST_DRAWS = 2000  # per group and week: the chance to within about 1 point


def fold_models(tables: Tables, settings: Settings, folds: int = 3, first_share: float = 0.5,
                candidate: str = "logistic") -> tuple[History, list[tuple[pd.Timestamp, pd.Timestamp, LoadedModel]]]:
    """The store's history, and per fold (its start, its end, the model): ``candidate`` fitted on
    the milestone labels known before the fold's start, as ``slipcast train`` fits it."""
    frame = build_training_sets(tables, settings.features)["milestone"]
    frame = frame.sort_values("as_of", kind="stable").reset_index(drop=True)
    features = feature_columns("milestone")
    numeric, _ = split_columns(frame, features)
    cuts = frame["as_of"].quantile([first_share + k * (1 - first_share) / folds for k in range(folds + 1)]).tolist()
    out = []
    for start, end in zip(cuts[:-1], cuts[1:]):
        idx = np.flatnonzero(frame["label"].notna() & (frame["label_known_at"] < start))
        model, recipe = fit_candidate(candidate, frame, idx, features, settings.training)
        rate = float(frame["label"].to_numpy()[idx].mean())
        metadata = {"features": [{"name": c, "type": "number" if c in numeric else "category"} for c in features],
                    "base_rate_served": rate, "base_rate_basis": "whole", "candidate": candidate,
                    "recipe": recipe, "model_name": "backtest"}
        out.append((start, end, LoadedModel("milestone", cast(Classifier, model), cast(ModelMetadata, metadata),
                                            "export", f"fold-{start.date()}")))
    return History(tables, settings.features), out


def groups_at(history: History, ctx: ProgramContext, t: int, grouping: str, settings: Settings) -> list[Program]:
    """The groups of milestones open at ``t`` (µs) that ``grouping`` forms (two milestones or more)."""
    tl = history.tl
    open_ = set(history.open_at(pd.Timestamp(t, unit="us", tz="UTC")))
    if grouping == "programs":
        found = programs_at(tl, history.names, t, settings.programs.model_copy(update={"declared": []}))
        return [p for p in found if len(open_ & set(p.milestones)) >= 2]
    if grouping == "dependencies":
        edges = [(e.blocker, e.dependent) for e in ctx.graph.edges
                 if not e.external and e.blocker in open_ and e.dependent in open_]
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.get(x, x) != x:
                x = parent[x]
            return x
        for a, b in edges:
            parent.setdefault(a, a)
            parent.setdefault(b, b)
            parent[root(a)] = root(b)
        members: dict[str, list[str]] = {}
        for x in parent:
            members.setdefault(root(x), []).append(x)
        return [Program(f"deps:{min(m)}", "joined by dependencies", ProgramSource.DECLARED, tuple(sorted(m)))
                for m in members.values() if len(m) >= 2]
    ids = np.asarray(sorted(open_), dtype=object)
    code = tl.milestones.get_indexer(pd.Index(ids))
    due = tl.due.get("due", tl.due.find(code, np.full(len(code), t, dtype=np.int64)), NAT)
    kind = np.asarray(tl.milestone_kind, dtype=object)[code] if len(code) else np.zeros(0, object)
    frame = pd.DataFrame({"id": ids, "project": tl.milestone_project[code], "window": due // (SAME_WEEKS_DAYS * 86_400_000_000),
                          "kind": kind})
    frame = frame[(due != NAT) & (frame["kind"] == MilestoneKind.RELEASE)]
    return [Program(f"weeks:{g['id'].min()}", "due within the same weeks", ProgramSource.DECLARED, tuple(sorted(g["id"])))
            for _, g in frame.groupby(["project", "window"]) if len(g) >= 2]


def backtest_programs(history: History, models: list[tuple[pd.Timestamp, pd.Timestamp, LoadedModel]],
                      settings: Settings, grouping: str, draws: int = BACKTEST_DRAWS) -> pd.DataFrame:
    """One row per (group, week after the first cutoff) whose outcome is known: its label and
    each rule's probability that it slips, each week forecast by its fold's model."""
    rows = []
    for start, end, model in models:
        for as_of in pd.date_range(start, end, freq=f"{STEP_DAYS}D", inclusive="left"):
            t = int(micros([as_of])[0])
            ctx = program_context(history, as_of.to_pydatetime(), settings)
            groups = groups_at(history, ctx, t, grouping, settings)
            if not groups:
                continue
            states = forecast_programs(ctx, groups, model, settings, draws=draws, ripples=0)
            for group, state in zip(groups, states):
                open_ = [m for m in state.milestones if m.state == "open"]
                if len(open_) < 2:
                    continue
                ids = [m.milestone_id for m in open_]
                label, _ = history.labels_at(ids, [as_of] * len(ids))
                if np.isnan(label).any():
                    continue
                _, feats, _ = history.features(ids, [as_of] * len(ids))
                chances = np.asarray([m.done_by_deadline for m in open_], dtype=float)
                rows.append({"group": group.program_id, "as_of": as_of, "members": len(ids),
                             "label": float(label.max()), "joint": state.probability,
                             "independent": 1 - float(np.prod(chances)), "worst": 1 - float(chances.min()),
                             "throughput": 1 - float(np.prod(np.nan_to_num(feats["monte_carlo_on_time"], nan=1.0)))})
    return pd.DataFrame(rows, columns=["group", "as_of", "members", "label", *RULES])


def evaluate_programs(datasets: dict[str, Tables], settings: Settings) -> pd.DataFrame:
    """Every rule's scores per dataset and grouping (no rows where no group could be formed)."""
    out = []
    for name, tables in datasets.items():
        history, models = fold_models(tables, settings)
        for grouping in GROUPINGS:
            frame = backtest_programs(history, models, settings, grouping)
            if frame.empty:
                out.append(pd.DataFrame([{"data": name, "grouping": grouping, "rows": 0}]))
                continue
            scores = rule_scores(frame, settings.training.bootstrap_rounds, settings.training.seed)
            out.append(scores.assign(data=name, grouping=grouping))
    return pd.concat(out, ignore_index=True)


def rule_scores(frame: pd.DataFrame, rounds: int = 200, seed: int = 0) -> pd.DataFrame:
    """Per rule: rows, groups, slip rate, Brier, AUC, ECE and the ECE calibrated forecasts would
    show on these rows (its noise floor, each group one piece of evidence)."""
    y = frame["label"].to_numpy(dtype=float)
    out = []
    for rule in RULES:
        p = np.clip(frame[rule].to_numpy(dtype=float), 0, 1)
        out.append({"rule": rule, "rows": len(y), "groups": frame["group"].nunique(), "slip_rate": y.mean(),
                    "brier": brier_score_loss(y, p) if len(y) else np.nan,
                    "auc": roc_auc_score(y, p) if len(np.unique(y)) == 2 else np.nan,
                    "ece": expected_calibration_error(y, p) if len(y) else np.nan,
                    "ece_floor": calibrated_ece(p, frame["group"].to_numpy(), rounds, seed) if len(y) else np.nan})
    return pd.DataFrame(out)

