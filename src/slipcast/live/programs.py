"""Programs' joint forecasts from a store's history and the served model: as of one time, as of
every day of a program's history, and with a change (a what-if).

``program_context`` reads what every program shares at as_of (the dependency graph, how
milestones slip together, the lag after a blocker); ``forecast_programs`` forecasts programs in
one prediction for all their open milestones and one Monte Carlo each (``scoring.joint``), and
``forecast_at`` does so for programs each at its own time: ``program_history`` forecasts one
program on many days in one prediction (docs/architecture.md, "Programs in the API").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration, Settings
from slipcast.features.lateness import CoSlip, co_slip
from slipcast.features.programs import Graph, Program, dependency_graph, dependency_lag_days, programs_at
from slipcast.features.store_history import History
from slipcast.features.timeline import NAT, micros
from slipcast.live.completion import completion_curves, shaped
from slipcast.live.records import ProgramEdge, ProgramHistoryPoint, ProgramMilestone, ProgramState
from slipcast.scoring.forecast import band, model_ref
from slipcast.scoring.joint import Members, outcome, ripple, simulate, slip
from slipcast.scoring.model_store import LoadedModel

# the days after as_of a milestone's chance of being done is asked at (its deadline is added)
PROGRAM_DAYS = np.array([1, 2, 3, 4, 5, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, 56, 70, 84, 105, 126, 154, 182,
                         273, 365], dtype=np.float64)
RIPPLES = 10  # the most critical milestones whose ripple is drawn
SOONEST = 1e-3  # days: a deadline already passed is asked about as of now (the draws never come sooner)


@dataclass
class ProgramContext:
    """What every program's forecast at ``as_of`` shares: the dependency graph, the correlations
    and the lag, as known at ``as_of`` (or, in a program's history, at the start of its period)."""

    history: History
    as_of: datetime
    graph: Graph
    correlation: CoSlip
    lag_days: float


@dataclass(frozen=True)
class ProgramChange:
    """A what-if on a program: milestones finishing ``slips`` days later than drawn (what waits on
    them moving with them), milestones that must be done by other ``deadlines``, and tickets
    ``removed`` from milestones' scope at as_of (their chances asked again without them). A new
    target is the program's own (``Program.target_at``)."""

    slips: Mapping[str, float] = field(default_factory=dict)
    deadlines: Mapping[str, datetime] = field(default_factory=dict)
    removed: Mapping[str, Collection[str]] = field(default_factory=dict)


def program_context(history: History, as_of: datetime, settings: Settings,
                    dependencies: Sequence[DependencyDeclaration] = ()) -> ProgramContext:
    """The dependency graph at ``as_of`` (links, the settings' declarations and ``dependencies``,
    the API's), the correlations and the lag, each from what was known then."""
    t = int(micros([pd.Timestamp(as_of)])[0])
    cfg = settings.programs
    return ProgramContext(history, as_of, dependency_graph(history.tl, t, [*cfg.dependencies, *dependencies]),
                          co_slip(history.tl, history.outcomes, t, cfg.max_correlation, seed=cfg.seed),
                          dependency_lag_days(history.tl, t, cfg.default_lag_days, cfg.lag_quantile))


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
                      draws: int | None = None, ripples: int = RIPPLES, change: ProgramChange | None = None
                      ) -> list[ProgramState]:
    """Each program's joint forecast at the context's as_of (``forecast_at``)."""
    return forecast_at([(ctx, p) for p in programs], model, settings, draws, ripples, change)


def program_history(history: History, program: Program, days: Sequence[datetime], model: LoadedModel,
                    settings: Settings, dependencies: Sequence[DependencyDeclaration] = ()
                    ) -> list[ProgramHistoryPoint]:
    """``program`` (its milestones and target as they stand now) forecast on each of ``days``,
    each day from what was known then: its milestones open that day, their chances in one
    prediction for all days, the graph, correlations and lag as known at the start of the day's
    period of ``programs.history_context_days`` (counted from the epoch), and
    ``programs.history_draws`` draws a day. ``slipcast backfill`` records the same points."""
    cfg = settings.programs
    period = pd.Timedelta(days=cfg.history_context_days).value
    contexts: dict[int, ProgramContext] = {}
    asked = []
    for day in days:
        at = pd.Timestamp(day)
        start = at.value // period * period
        if start not in contexts:
            contexts[start] = program_context(history, pd.Timestamp(start, tz="UTC").to_pydatetime(), settings,
                                              dependencies)
        asked.append((replace(contexts[start], as_of=at.to_pydatetime()), program))
    return [state.point() for state in forecast_at(asked, model, settings, cfg.history_draws, ripples=0)]


def forecast_at(asked: Sequence[tuple[ProgramContext, Program]], model: LoadedModel, settings: Settings,
                draws: int | None = None, ripples: int = RIPPLES, change: ProgramChange | None = None
                ) -> list[ProgramState]:
    """Each program's joint forecast at its context's as_of: the open milestones' chances of
    being done by each day in one prediction for all of them, then one Monte Carlo each, with
    ``change`` applied where given (to every program asked)."""
    if not asked:
        return []
    cfg, change = settings.programs, change or ProgramChange()
    draws = draws or cfg.draws
    history = asked[0][0].history
    tl = history.tl
    # every (program asked, milestone) pair, and its state at that program's time
    job = np.asarray([j for j, (_, p) in enumerate(asked) for _ in p.milestones], dtype=np.int64)
    every = [m for _, p in asked for m in p.milestones]
    times = [ctx.as_of for ctx, _ in asked]
    t = micros([pd.Timestamp(a) for a in times])[job] if len(job) else np.zeros(0, dtype=np.int64)
    code = tl.milestones.get_indexer(pd.Index(every, dtype=object))
    known = (code >= 0) & history.knows(every)
    start = np.where(known, tl.milestone_start[np.maximum(code, 0)], NAT)
    completed = np.where(known, tl.milestone_completed[np.maximum(code, 0)], NAT)
    state = np.select([~known, start > t, (completed != NAT) & (completed <= t)], ["unknown", "not_started", "done"],
                      "open")
    info: list[dict[str, dict]] = [{} for _ in asked]
    for j, m, s in zip(job, every, state):
        info[j][m] = {"state": s}
    opened = np.flatnonzero(state == "open")
    cut = [change.removed.get(every[i], ()) for i in opened] if change.removed else None
    who, feats, _ = history.features([every[i] for i in opened], [times[job[i]] for i in opened], None, cut)
    empty = np.asarray(feats["scope_count"]) == 0 if len(opened) else np.zeros(0, dtype=bool)
    for i, row, nothing in zip(opened, who.itertuples(index=False), empty):
        info[job[i]][every[i]].update(project=row.project, due_at=row.due_at, name=row.name,
                                      state="empty" if nothing else "open")
    horizon = float(cfg.horizon_days)
    grid = PROGRAM_DAYS[PROGRAM_DAYS <= horizon]

    # one row per (program, open milestone): its grid with its deadline in it
    rows, row_times, deadlines, first, spans = [], [], [], 0, []
    for (ctx, p), mine in zip(asked, info):
        target = None if p.target_at is None else _days(p.target_at, ctx.as_of)
        for m in p.milestones:
            if mine[m]["state"] == "open":
                due = mine[m]["due_at"]
                moved = change.deadlines.get(m)
                deadline = (_days(moved, ctx.as_of) if moved is not None else target if target is not None
                            else _days(due, ctx.as_of) if pd.notna(due) else horizon)
                rows.append(m)
                row_times.append(ctx.as_of)
                deadlines.append(deadline)
        spans.append(slice(first, len(rows)))
        first = len(rows)
    deadline_arr = np.asarray(deadlines, dtype=np.float64)
    asked_days = np.sort(np.column_stack([np.tile(grid, (len(rows), 1)), np.maximum(deadline_arr, SOONEST)]),
                         axis=1)
    removed = [change.removed.get(m, ()) for m in rows] if change.removed else None
    served, own = completion_curves(history, rows, row_times, model, asked_days, removed)
    column = np.asarray([int(np.searchsorted(asked_days[i], max(deadline_arr[i], SOONEST)))
                         for i in range(len(rows))], dtype=np.intp)
    chances = shaped(served, own, column)
    at_deadline = np.where(deadline_arr > 0, served[np.arange(len(rows)), column], 0.0)
    return [_forecast(ctx, p, mine, history.names, rows[sl], asked_days[sl], chances[sl], deadline_arr[sl],
                      at_deadline[sl], model, settings, draws, ripples, horizon, change.slips)
            for (ctx, p), mine, sl in zip(asked, info, spans)]


def _forecast(ctx: ProgramContext, p: Program, info: dict, names: pd.Series, ids: list[str], asked: np.ndarray,
              chances: np.ndarray, deadline: np.ndarray, at_deadline: np.ndarray, model: LoadedModel,
              settings: Settings, draws: int, ripples: int, horizon: float, slips: Mapping[str, float]
              ) -> ProgramState:
    as_of, cfg = ctx.as_of, settings.programs
    position = {m: i for i, m in enumerate(ids)}
    inside = set(p.milestones)
    edges = ctx.graph.touching(inside)
    carried = [(position[e.blocker], position[e.dependent]) for e in edges
               if ctx.graph.propagated(e) and e.blocker in position and e.dependent in position]
    assumptions = []
    if any(e.external for e in edges):
        assumptions.append("a blocker outside the store is assumed done on time: it moves nothing")
    for c in ctx.graph.cycles:
        if set(c) & inside:
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
        later = {position[m]: float(d) for m, d in slips.items() if m in position}
        if later:  # the same draws, those milestones later: the change alone moves the answer
            drawn = slip(members, drawn, carried, ctx.lag_days, later)
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
    top = milestones[0] if milestones and milestones[0].criticality is not None else None
    return ProgramState(
        program_id=p.program_id, name=p.name, source=p.source, as_of=as_of, target_at=p.target_at,
        open_milestones=len(ids), chance=chance, probability=probability, risk_band=risk_band,
        independent_chance=independent, done_50=done_50, done_85=done_85,
        most_critical=None if top is None else top.milestone_id,
        most_critical_share=None if top is None else top.criticality,
        critical_path=path, critical_path_share=path_share, milestones=milestones,
        edges=[ProgramEdge(blocker=e.blocker, dependent=e.dependent, tickets=list(e.tickets),
                           open_blockers=e.open_blockers, source=e.source, external=e.external,
                           in_cycle=ctx.graph.in_cycle(e), propagated=ctx.graph.propagated(e)) for e in edges],
        cycles=[list(c) for c in ctx.graph.cycles if set(c) & inside],
        correlation={"team": round(ctx.correlation.team, 4), "period": round(ctx.correlation.period, 4)},
        lag_days=round(ctx.lag_days, 3), draws=draws, assumptions=assumptions,
        model=model_ref(model))
