"""Programs' joint forecasts as of one time, from a store's history and the served model.

``program_context`` reads what every program shares at as_of (the dependency graph, how
milestones slip together, the lag after a blocker); ``forecast_programs`` forecasts programs in
one prediction for all their open milestones and one Monte Carlo each (``scoring.joint``;
docs/architecture.md, "Programs").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from slipcast.core.settings import ProgramDeclaration, Settings
from slipcast.features.lateness import CoSlip, co_slip
from slipcast.features.programs import Graph, Program, dependency_graph, dependency_lag_days, programs_at
from slipcast.features.store_history import History
from slipcast.features.timeline import NAT, micros
from slipcast.live.completion import done_chances
from slipcast.live.records import ProgramEdge, ProgramMilestone, ProgramState
from slipcast.scoring.forecast import band, model_ref
from slipcast.scoring.joint import Members, outcome, ripple, simulate
from slipcast.scoring.model_store import LoadedModel

# the days after as_of a milestone's chance of being done is asked at (its deadline is added)
PROGRAM_DAYS = np.array([1, 2, 3, 4, 5, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 56, 70, 84, 105, 126, 154, 182,
                         273, 365], dtype=np.float64)
RIPPLES = 10  # the most critical milestones whose ripple is drawn


@dataclass
class ProgramContext:
    """What every program's forecast at ``as_of`` shares."""

    history: History
    as_of: datetime
    graph: Graph
    correlation: CoSlip
    lag_days: float


def program_context(history: History, as_of: datetime, settings: Settings) -> ProgramContext:
    """The dependency graph at ``as_of`` (links and the settings' declarations), the correlations
    and the lag, each from what was known then."""
    t = int(micros([pd.Timestamp(as_of)])[0])
    cfg = settings.programs
    return ProgramContext(history, as_of, dependency_graph(history.tl, t, cfg.dependencies),
                          co_slip(history.tl, history.outcomes, t, cfg.max_correlation, seed=cfg.seed),
                          dependency_lag_days(history.tl, t, cfg.default_lag_days))


def programs_of(history: History, as_of: datetime, settings: Settings,
                declared: Sequence[ProgramDeclaration] = ()) -> list[Program]:
    """The programs of the store at ``as_of`` (``features.programs.programs_at``)."""
    t = int(micros([pd.Timestamp(as_of)])[0])
    return programs_at(history.tl, history.names, t, settings.programs, declared)


def _days(a, b) -> float:
    return (pd.Timestamp(a) - pd.Timestamp(b)) / pd.Timedelta(days=1)


def _time(as_of: datetime, days: float, horizon: float) -> datetime | None:
    return None if not np.isfinite(days) or days > horizon else as_of + timedelta(days=float(days))


def forecast_programs(ctx: ProgramContext, programs: Sequence[Program], model: LoadedModel, settings: Settings,
                      draws: int | None = None, ripples: int = RIPPLES) -> list[ProgramState]:
    """Each program's joint forecast at the context's as_of: its open milestones' chances of
    being done by each day in one prediction for all programs, then one Monte Carlo each."""
    history, as_of, cfg = ctx.history, ctx.as_of, settings.programs
    draws = draws or cfg.draws
    tl = history.tl
    t = int(micros([pd.Timestamp(as_of)])[0])
    every = sorted({m for p in programs for m in p.milestones})
    code = tl.milestones.get_indexer(pd.Index(every, dtype=object))
    known = (code >= 0) & history.knows(every)
    start = np.where(known, tl.milestone_start[np.maximum(code, 0)], NAT)
    completed = np.where(known, tl.milestone_completed[np.maximum(code, 0)], NAT)
    state = np.select([~known, start > t, (completed != NAT) & (completed <= t)], ["unknown", "not_started", "done"],
                      "open")
    ids = [m for m, s in zip(every, state) if s == "open"]
    who, feats, _ = history.features(ids, [as_of] * len(ids))
    empty = dict(zip(ids, np.asarray(feats["scope_count"]) == 0)) if ids else {}
    info = {m: {"state": s} for m, s in zip(every, state)}
    for row in who.itertuples(index=False):
        info[row.milestone_id].update(project=row.project, due_at=row.due_at, name=row.name,
                                      state="empty" if empty[row.milestone_id] else "open")
    names = history.names
    horizon = float(cfg.horizon_days)
    grid = PROGRAM_DAYS[PROGRAM_DAYS <= horizon]

    # one row per (program, open milestone): its grid with its deadline in it
    rows, deadlines = [], []
    for p in programs:
        target = None if p.target_at is None else _days(p.target_at, as_of)
        for m in p.milestones:
            if info[m]["state"] == "open":
                due = info[m]["due_at"]
                deadline = target if target is not None else (_days(due, as_of) if pd.notna(due) else horizon)
                rows.append(m)
                deadlines.append(deadline)
    deadline_arr = np.asarray(deadlines, dtype=np.float64)
    asked = np.sort(np.column_stack([np.tile(grid, (len(rows), 1)), np.maximum(deadline_arr, grid[0] / 2)]), axis=1)
    chances = done_chances(history, rows, as_of, model, asked) if rows else np.zeros((0, len(grid) + 1))
    at_deadline = np.where(deadline_arr > 0, chances[np.arange(len(rows)), [
        int(np.searchsorted(asked[i], max(deadline_arr[i], grid[0] / 2))) for i in range(len(rows))]], 0.0)

    out, first = [], 0
    for p in programs:
        n = sum(info[m]["state"] == "open" for m in p.milestones)
        sl = slice(first, first + n)
        first += n
        out.append(_forecast(ctx, p, info, names, rows[sl], asked[sl], chances[sl], deadline_arr[sl],
                             at_deadline[sl], model, settings, draws, ripples, horizon))
    return out


def _forecast(ctx: ProgramContext, p: Program, info: dict, names: pd.Series, ids: list[str], asked: np.ndarray,
              chances: np.ndarray, deadline: np.ndarray, at_deadline: np.ndarray, model: LoadedModel,
              settings: Settings, draws: int, ripples: int, horizon: float) -> ProgramState:
    as_of, cfg = ctx.as_of, settings.programs
    position = {m: i for i, m in enumerate(ids)}
    edges = [e for e in ctx.graph.edges if e.dependent in p.milestones or e.blocker in p.milestones]
    carried = [(position[e.blocker], position[e.dependent]) for e in edges
               if ctx.graph.propagated(e) and e.blocker in position and e.dependent in position]
    assumptions = []
    if any(e.external for e in edges):
        assumptions.append("a blocker outside the store is assumed done on time: it moves nothing")
    for c in ctx.graph.cycles:
        if set(c) & set(p.milestones):
            assumptions.append(f"{', '.join(c)} wait on one another (a cycle): their dependencies are reported, "
                               "not carried")
    for m in p.milestones:
        s = info[m]["state"]
        if s in ("not_started", "empty", "unknown"):
            assumptions.append(f"{m} is not in the forecast: " + {"not_started": "it has not started",
                                                                    "empty": "nothing is committed to it yet",
                                                                    "unknown": "the store does not hold it"}[s])
    milestones, chance, probability, risk_band, independent = [], None, None, None, None
    done_50 = done_85 = None
    path: list[str] = []
    path_share = None
    crit, rip, when = {}, {}, {}
    if ids:
        team = pd.factorize(pd.Series([info[m]["project"] for m in ids]))[0]
        window = np.clip([_days(info[m]["due_at"], as_of) if pd.notna(info[m]["due_at"]) else horizon for m in ids],
                         1.0, horizon)
        members = Members(ids, asked, chances, window, deadline, team)
        drawn = simulate(members, carried, ctx.lag_days, ctx.correlation.team, ctx.correlation.period, draws, cfg.seed)
        result = outcome(members, drawn)
        chance = round(result.chance, 4)
        probability = round(1 - result.chance, 4)
        risk_band = band(probability, settings.serving.risk_bands)
        independent = round(float(np.prod(at_deadline)), 4)
        done_50, done_85 = _time(as_of, result.done_50, horizon), _time(as_of, result.done_85, horizon)
        path, path_share = [ids[i] for i in result.critical_path], round(result.path_share, 4)
        q50, q85 = np.quantile(drawn.finish, [0.5, 0.85], axis=1)
        for i, m in enumerate(ids):
            crit[m] = round(float(result.criticality[i]), 4)
            when[m] = (_time(as_of, q50[i], horizon), _time(as_of, q85[i], horizon), round(float(at_deadline[i]), 4))
        for i in np.argsort(-result.criticality, kind="stable")[:ripples]:
            if result.criticality[i] > 0:
                rip[ids[i]] = round(ripple(members, drawn, carried, ctx.lag_days, int(i), cfg.ripple_days), 4)
    for m in p.milestones:
        s = info[m]
        due = s.get("due_at")
        open_ = m in when
        milestones.append(ProgramMilestone(
            milestone_id=m, project=s.get("project"), name=s.get("name", names.get(m)), state=s["state"],
            due_at=None if due is None or pd.isna(due) else pd.Timestamp(due).to_pydatetime(),
            deadline_at=_time(as_of, deadline[position[m]], float("inf")) if open_ else None,
            done_by_deadline=when[m][2] if open_ else None, when_50=when[m][0] if open_ else None,
            when_85=when[m][1] if open_ else None, criticality=crit.get(m), ripple=rip.get(m)))
    milestones.sort(key=lambda x: (-(x.criticality or 0.0), x.milestone_id))
    return ProgramState(
        program_id=p.program_id, name=p.name, source=p.source, as_of=as_of, target_at=p.target_at,
        open_milestones=len(ids), chance=chance, probability=probability, risk_band=risk_band,
        independent_chance=independent, done_50=done_50, done_85=done_85, critical_path=path,
        critical_path_share=path_share, milestones=milestones,
        edges=[ProgramEdge(blocker=e.blocker, dependent=e.dependent, tickets=list(e.tickets),
                           open_blockers=e.open_blockers, source=e.source, external=e.external,
                           in_cycle=ctx.graph.in_cycle(e), propagated=ctx.graph.propagated(e)) for e in edges],
        cycles=[list(c) for c in ctx.graph.cycles if set(c) & set(p.milestones)],
        correlation={"team": round(ctx.correlation.team, 4), "period": round(ctx.correlation.period, 4)},
        lag_days=round(ctx.lag_days, 3), draws=draws, assumptions=assumptions,
        model=model_ref(model))
