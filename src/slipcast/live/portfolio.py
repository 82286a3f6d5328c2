"""The live state: every open milestone of the canonical store, forecast as of one time.

A ``Portfolio`` holds every milestone of the store open at its as_of, forecast (with its open
tickets) in one vectorised call per model, with the dates by which the model expects it done
("when"), the week's change and per-project counts, and every program with an open milestone,
forecast jointly (``live.programs``), with what it was forecast from, so that its daily history
and a what-if are forecast on request as it was. ``build_portfolio`` makes one from the store's
coded history (``features.store_history.History``); ``live.state`` keeps the current one
(docs/architecture.md, "Live state", "Programs in the API").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration, Settings
from slipcast.core.vocabulary import Basis, ForecastStatus
from slipcast.features.programs import Program
from slipcast.features.store_history import History
from slipcast.features.timeline import NAT
from slipcast.live.completion import done_chances
from slipcast.live.programs import ProgramChange, forecast_programs, program_context, program_history, programs_of
from slipcast.live.records import HistoryPoint, MilestoneState, ProgramHistoryPoint, ProgramState, ProjectState
from slipcast.scoring.forecast import forecasts_of, ticket_forecasts_of
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.records import Forecast, TicketForecast

CHANGE_DAYS = 7  # ``change_7d``: against the forecast with what was known this many days earlier
# "when": the due dates a milestone is re-scored at (days after as_of), and the chances of being done asked for
WHEN_DAYS = (2, 4, 7, 10, 14, 21, 28, 42, 56, 84, 126, 182)
WHEN_CHANCES = (0.5, 0.85)
MAX_HISTORY_DAYS = 400  # the most daily points a milestone's history holds (its latest days)


@dataclass
class Portfolio:
    """One refresh: the open milestones' forecasts, their tickets', per-project counts."""

    version: str
    as_of: datetime
    milestones: list[MilestoneState]
    features: dict[str, dict]  # milestone id -> its features as served
    tickets: dict[str, list[TicketForecast]]  # milestone id -> its open tickets, riskiest first
    projects: list
    history: History
    model: LoadedModel
    published: list[Forecast] = field(default_factory=list)  # as the ledger records them, in milestones' order
    programs: list[ProgramState] = field(default_factory=list)  # programs with an open milestone, riskiest first
    # what they were forecast from: each one's milestones (in their order) and target, and the API's declared
    # dependencies (the settings' are in the settings)
    members: dict[str, Program] = field(default_factory=dict)
    dependencies: list[DependencyDeclaration] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    encoded: dict[str, bytes] = field(default_factory=dict)  # milestone id -> its detail as JSON, once asked
    histories: dict[str, list[ProgramHistoryPoint]] = field(default_factory=dict)  # program id -> its days, once asked

    def __post_init__(self):
        self.positions = {m.milestone_id: i for i, m in enumerate(self.milestones)}

    def __getstate__(self) -> dict:
        """As another worker reads it (``live.shared``): without the model, which each process
        has loaded itself, the history, shared once per version of the store, and bodies encoded here."""
        return {**self.__dict__, "model": None, "history": None, "encoded": {}, "histories": {}}

    def program(self, program_id: str) -> ProgramState | None:
        return next((p for p in self.programs if p.program_id == program_id), None)

    def program_history(self, program_id: str, settings: Settings) -> list[ProgramHistoryPoint]:
        """One forecast of the program per day from its first milestone's start to this state's
        as_of (the latest ``MAX_HISTORY_DAYS``), each from what was known that day, by the model
        serving now (``live.programs.program_history``); computed once per state."""
        program = self.members.get(program_id)
        if program is None:
            return []
        if program_id not in self.histories:
            days = program_days(self.history, program, pd.Timestamp(self.as_of))
            self.histories[program_id] = program_history(self.history, program, days, self.model, settings,
                                                         self.dependencies)
        return self.histories[program_id]

    def get(self, milestone_id: str) -> MilestoneState | None:
        i = self.positions.get(milestone_id)
        return None if i is None else self.milestones[i]

    def daily(self, milestone_id: str, settings: Settings) -> list[HistoryPoint]:
        """One forecast per day from the milestone's start to this state's as_of, each from what
        was known that day, by the model serving now (the latest ``MAX_HISTORY_DAYS`` days)."""
        current = self.get(milestone_id)
        if current is None:
            return []
        days = daily(pd.Timestamp(current.start_at), pd.Timestamp(self.as_of))
        who, feats, _ = self.history.features([milestone_id] * len(days), list(days))
        out = forecasts_of(list(who["milestone_id"]), list(who["project"]), list(days), feats, np.zeros(0, int),
                           self.model, settings)
        return [HistoryPoint(as_of=f.as_of, status=f.status, probability=f.probability, risk_band=f.risk_band,
                             basis=f.basis, due_at=_when(due)) for f, due in zip(out, who["due_at"])]


    def what_if(self, program_id: str, change: ProgramChange, settings: Settings,
                target_at: datetime | None = None) -> ProgramState:
        """The program forecast again at this state's as_of with ``change`` (and a new target),
        on the same draws as its forecast here, so the difference is the change's."""
        program = self.members[program_id]
        if target_at is not None:
            program = replace(program, target_at=target_at)
        context = program_context(self.history, self.as_of, settings, self.dependencies)
        return forecast_programs(context, [program], self.model, settings, change=change)[0]


def floored(t: datetime, seconds: float) -> datetime:
    """``t`` rounded down to a multiple of ``seconds`` since the epoch: every worker refreshing
    within one period forecasts as of the same time, so they build the same state."""
    return datetime.fromtimestamp(t.timestamp() // seconds * seconds, tz=UTC)


def daily(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The as_of times of a milestone's daily history: its start, then every day after, up to
    ``end`` (the latest ``MAX_HISTORY_DAYS`` of them). ``slipcast backfill`` records the same days."""
    return pd.date_range(start, end, freq="D")[-MAX_HISTORY_DAYS:]


def program_days(history: History, program: Program, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The as_of times of a program's daily history: from its first milestone's start, every day
    (``daily``) up to ``end``, or to its last milestone's completion where every one of them was
    completed by then; none where none of them started by then."""
    code = history.tl.milestones.get_indexer(pd.Index(program.milestones, dtype=object))
    code = code[(code >= 0) & history.knows(list(program.milestones))]
    start, completed = history.tl.milestone_start[code], history.tl.milestone_completed[code]
    start = start[start != NAT]
    first = pd.Timestamp(int(start.min()), unit="us", tz="UTC") if len(start) else None
    if first is None or first > end:
        return pd.DatetimeIndex([], tz="UTC")
    if len(completed) and (completed != NAT).all():
        end = min(end, pd.Timestamp(int(completed.max()), unit="us", tz="UTC"))
    return daily(first, end)


def _when(value) -> datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _forecast_open(history: History, ids: np.ndarray, as_of: datetime, model: LoadedModel, settings: Settings,
                   explain: bool) -> tuple[pd.DataFrame, list[Forecast], dict, dict]:
    who, feats, tickets = history.features(ids, [as_of] * len(ids))
    rows = np.arange(len(ids)) if explain else np.zeros(0, int)
    return who, forecasts_of(list(who["milestone_id"]), list(who["project"]), [as_of] * len(ids), feats, rows,
                             model, settings), feats, tickets


def build_portfolio(history: History, as_of: datetime, models: Mapping[str, LoadedModel | None], settings: Settings,
                    version: str, declared: Sequence[ProgramDeclaration] = (),
                    dependencies: Sequence[DependencyDeclaration] = ()) -> Portfolio:
    """Forecast every milestone of ``history`` open at ``as_of`` (and the same ones with what was
    known ``CHANGE_DAYS`` earlier, for ``change_7d``), and their open tickets, by ``models``
    (target -> the model serving it), and every program with an open milestone (the store's, the
    settings' and ``declared``, with the settings' and ``dependencies`` declared beside the links)."""
    model = models.get("milestone")
    if model is None:
        raise LookupError("no milestone model loaded yet")
    ids = history.open_at(pd.Timestamp(as_of))
    who, now, feats, tickets = _forecast_open(history, ids, as_of, model, settings, explain=True)
    before = as_of - timedelta(days=CHANGE_DAYS)
    started = (who["start_at"] <= pd.Timestamp(before)).to_numpy()
    _, then, _, _ = _forecast_open(history, ids[started], before, model, settings, explain=False)
    earlier = dict(zip(ids[started], (f.probability for f in then)))
    ticket_model = models.get("ticket")
    risks: dict[str, list[TicketForecast]] = {str(i): [] for i in ids}
    if ticket_model is not None and len(tickets["ticket_id"]):
        for forecast, snap in zip(ticket_forecasts_of(tickets, list(who["project"]), ticket_model), tickets["snap"]):
            risks[str(ids[snap])].append(forecast)
        for items in risks.values():
            items.sort(key=lambda t: -(t.probability or 0.0))
    when = when_done(history, [f.milestone_id for f in now if f.basis == Basis.MODEL or f.status == ForecastStatus.PAST_DUE],
                     as_of, model)
    states = []
    for row, f in zip(who.itertuples(index=False), now):
        was = earlier.get(row.milestone_id)
        when_50, when_85 = when.get(row.milestone_id, (None, None))
        states.append(MilestoneState(
            milestone_id=row.milestone_id, project=row.project, name=row.name, kind=row.kind,
            start_at=row.start_at, due_at=_when(row.due_at), as_of=as_of, status=f.status,
            probability=f.probability, risk_band=f.risk_band, basis=f.basis,
            change_7d=None if f.probability is None or was is None else round(f.probability - was, 4),
            when_50=when_50, when_85=when_85,
            message=f.message, drivers=f.drivers, factors=f.factors, reason=f.reason, model=f.model))
    order = sorted(range(len(states)), key=lambda i: (-_risk(states[i]), states[i].milestone_id))
    programs = open_programs(history, as_of, settings, declared)
    return Portfolio(version=version, as_of=as_of, milestones=[states[i] for i in order],
                     published=[now[i] for i in order],
                     programs=forecast_open(history, as_of, programs, model, settings, dependencies),
                     members={p.program_id: p for p in programs}, dependencies=list(dependencies),
                     features={f.milestone_id: f.features for f in now}, tickets=risks,
                     projects=project_states(states, history.outcomes, pd.Timestamp(as_of), settings),
                     history=history, model=model)


def open_programs(history: History, as_of: datetime, settings: Settings,
                  declared: Sequence[ProgramDeclaration] = ()) -> list[Program]:
    """The programs with a milestone open at ``as_of`` (the store's, the settings' and ``declared``)."""
    ids = set(history.open_at(pd.Timestamp(as_of)))
    return [p for p in programs_of(history, as_of, settings, declared) if ids & set(p.milestones)]


def forecast_open(history: History, as_of: datetime, programs: Sequence[Program], model: LoadedModel,
                  settings: Settings, dependencies: Sequence[DependencyDeclaration] = ()) -> list[ProgramState]:
    """The joint forecasts of ``programs`` at ``as_of``, riskiest first."""
    if not programs:
        return []
    states = forecast_programs(program_context(history, as_of, settings, dependencies), programs, model, settings)
    return sorted(states, key=lambda p: (-(p.probability if p.probability is not None else -1.0), p.program_id))


def _risk(m: MilestoneState) -> float:
    """The probability to rank by (a milestone without one ranks last)."""
    return -1.0 if m.probability is None else m.probability


def when_done(history: History, milestones: list[str], as_of: datetime, model: LoadedModel
              ) -> dict[str, list[datetime | None]]:
    """For each milestone, the earliest due date among as_of + ``WHEN_DAYS`` by which the served
    forecast gives at least each of ``WHEN_CHANCES`` of being done (``completion.done_chances``),
    so the dates are ordered as the chances are."""
    done = done_chances(history, milestones, as_of, model, WHEN_DAYS)
    dues = [as_of + timedelta(days=d) for d in WHEN_DAYS]
    return {milestone_id: [dues[int(np.argmax(done[i] >= c))] if (done[i] >= c).any() else None
                           for c in WHEN_CHANCES] for i, milestone_id in enumerate(milestones)}


def project_states(states: list[MilestoneState], outcomes: pd.DataFrame, as_of: pd.Timestamp,
                   settings: Settings) -> list[ProjectState]:
    """Per project: its open milestones by band, past due or without a forecast, and how often its
    finished milestones (outcomes known by ``as_of``) slipped."""
    known = outcomes[outcomes["known_at"] <= as_of]
    rates = known.groupby("project")["slipped"].agg(["mean", "size"])
    finished = dict(zip(rates.index, zip(rates["mean"].to_numpy(), rates["size"].to_numpy())))
    mine: dict[str, list[MilestoneState]] = {}
    for m in states:
        mine.setdefault(m.project, []).append(m)
    out = []
    for project in sorted(set(mine) | set(finished)):
        open_ = mine.get(project, [])
        bands = Counter(m.risk_band for m in open_ if m.risk_band is not None)
        done = finished.get(project)
        out.append(ProjectState(
            project=project, open_milestones=len(open_),
            by_band={b: bands.get(b, 0) for b in settings.serving.risk_bands},
            past_due=sum(m.status == ForecastStatus.PAST_DUE for m in open_),
            insufficient_history=sum(m.status == ForecastStatus.INSUFFICIENT_HISTORY for m in open_),
            slipped_share=None if done is None else round(float(done[0]), 4),
            finished_milestones=0 if done is None else int(done[1])))
    return out
