"""The live state: every open milestone of the canonical store, forecast as of the latest refresh.

``slipcast serve --store DIR`` (or ``serving.store``) reads the tables that ``slipcast import``
and ``slipcast sync`` write, codes the history once (``features.current.History``) and forecasts
every open milestone, and its open tickets, in one vectorised call per model, with the dates by
which the model expects it done ("when"). ``LiveState``
rebuilds that in a background thread when the store or a champion changes, and at least every
``serving.refresh_seconds`` (time moves on even when nothing else does), and swaps the new
``Portfolio`` in with one assignment: a request reads whichever is current, never waits for a
refresh and never sees half of one (docs/architecture.md, "Live state"). Each new state's
forecasts go to the ledger (``serving.ledger``), and the alerts they raise to their webhooks
(``serving.alerts``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from slipcast import __version__
from slipcast.core.contracts import served_base_rate
from slipcast.core.settings import Settings
from slipcast.features.current import History
from slipcast.features.tables import read_tables, store_signature
from slipcast.serving.alerts import send_alerts
from slipcast.serving.background import Every
from slipcast.serving.forecast import forecasts_of, guarded_cells, ticket_forecasts_of
from slipcast.serving.ledger import Ledger
from slipcast.serving.metrics import Metrics
from slipcast.serving.model_store import LoadedModel, ModelStore
from slipcast.serving.schemas import Forecast, HistoryPoint, MilestoneState, ProjectState, TicketForecast
from slipcast.serving.shared import built_once

log = logging.getLogger(__name__)
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
    positions: dict[str, int] = field(default_factory=dict)
    encoded: dict[str, bytes] = field(default_factory=dict)  # milestone id -> its detail as JSON, once asked

    def __post_init__(self):
        self.positions = {m.milestone_id: i for i, m in enumerate(self.milestones)}

    def __getstate__(self) -> dict:
        """As another worker reads it (``serving.shared``): without the model, which each process
        has loaded itself, and without bodies encoded here."""
        return {**self.__dict__, "model": None, "encoded": {}}

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


def daily(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """The as_of times of a milestone's daily history: its start, then every day after, up to
    ``end`` (the latest ``MAX_HISTORY_DAYS`` of them). ``slipcast backfill`` records the same days."""
    return pd.date_range(start, end, freq="D")[-MAX_HISTORY_DAYS:]


def _when(value) -> datetime | None:
    return None if pd.isna(value) else pd.Timestamp(value).to_pydatetime()


def _forecast_open(history: History, ids: np.ndarray, as_of: datetime, model: LoadedModel, settings: Settings,
                   explain: bool) -> tuple[pd.DataFrame, list[Forecast], dict, dict]:
    who, feats, tickets = history.features(ids, [as_of] * len(ids))
    rows = np.arange(len(ids)) if explain else np.zeros(0, int)
    return who, forecasts_of(list(who["milestone_id"]), list(who["project"]), [as_of] * len(ids), feats, rows,
                             model, settings), feats, tickets


def build_portfolio(history: History, as_of: datetime, models: ModelStore, settings: Settings,
                    version: str) -> Portfolio:
    """Forecast every milestone of ``history`` open at ``as_of`` (and the same ones with what was
    known ``CHANGE_DAYS`` earlier, for ``change_7d``), and their open tickets."""
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
    when = when_done(history, [f.milestone_id for f in now if f.basis == "model" or f.status == "past_due"],
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
            message=f.message, drivers=f.drivers, model=f.model))
    order = sorted(range(len(states)), key=lambda i: (-_risk(states[i]), states[i].milestone_id))
    return Portfolio(version=version, as_of=as_of, milestones=[states[i] for i in order],
                     published=[now[i] for i in order],
                     features={f.milestone_id: f.features for f in now}, tickets=risks,
                     projects=project_states(states, history.outcomes, pd.Timestamp(as_of), settings),
                     history=history, model=model)


def _risk(m: MilestoneState) -> float:
    """The probability to rank by (a milestone without one ranks last)."""
    return -1.0 if m.probability is None else m.probability


def when_done(history: History, milestones: list[str], as_of: datetime, model: LoadedModel
              ) -> dict[str, list[datetime | None]]:
    """For each milestone, the earliest due date among as_of + ``WHEN_DAYS`` by which the served
    forecast gives at least each of ``WHEN_CHANCES`` of being done, re-scoring it with its due
    date moved there now, as the what-if endpoint does (all milestones and dates in one
    prediction; where the moved date falls in a guarded horizon, the base rate is what the service
    would say). A later date never gets a lower chance than an earlier one (the running
    maximum), so the dates are ordered as the chances are."""
    if not milestones:
        return {}
    k = len(WHEN_DAYS)
    dues = [as_of + timedelta(days=d) for d in WHEN_DAYS]
    who, feats, _ = history.features(np.repeat(milestones, k), [as_of] * (len(milestones) * k), dues * len(milestones))
    p = model.predict(model.frame(feats))
    rate = served_base_rate(model.metadata)[0]
    _, cells = guarded_cells(model, feats["span_elapsed"], who["project"])
    p = np.where([cell is not None for cell in cells], rate, p)
    done = np.maximum.accumulate((1 - p).reshape(len(milestones), k), axis=1)
    out = {}
    for i, milestone_id in enumerate(milestones):
        out[milestone_id] = [dues[int(np.argmax(done[i] >= c))] if (done[i] >= c).any() else None for c in WHEN_CHANCES]
    return out


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
            past_due=sum(m.status == "past_due" for m in open_),
            insufficient_history=sum(m.status == "insufficient_history" for m in open_),
            slipped_share=None if done is None else round(float(done[0]), 4),
            finished_milestones=0 if done is None else int(done[1])))
    return out


def floored(t: datetime, seconds: float) -> datetime:
    """``t`` rounded down to a multiple of ``seconds`` since the epoch: every worker refreshing
    within one period forecasts as of the same time, so they build the same state."""
    return datetime.fromtimestamp(t.timestamp() // seconds * seconds, tz=UTC)


class LiveState:
    """The current ``Portfolio`` of the store at ``settings.serving.store``, refreshed in the
    background: when the store or a served model changes, and every ``refresh_seconds``."""

    def __init__(self, settings: Settings, models: ModelStore, clock, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self.models = models
        self.clock = clock
        self.store = settings.store_location(settings.serving.store) if settings.serving.store else None
        self.ledger = Ledger(settings.resolved_uri(settings.serving.ledger_url)) \
            if settings.serving.ledger_url and self.store is not None else None
        self.shared = settings.resolve(settings.work_dir) / "live"  # states built once for every worker here
        self.error: str | None = None
        self.refreshes = 0
        self.built = 0  # of those, the states this process built (the others it read as another worker built them)
        self.recorded = 0  # forecasts this process added to the ledger
        self.alerted = 0  # alerts this process sent
        self._current: Portfolio | None = None
        self._history: tuple[str, History] | None = None
        self._watching = Every("slipcast-live-state")
        self._seen: tuple = ()  # the inputs and the time of the last refresh the watcher made
        self._last = datetime.min.replace(tzinfo=UTC)

    def get(self) -> Portfolio | None:
        return self._current

    def refresh(self) -> bool:
        """Rebuild the state now; False (and ``error`` says why) where it cannot be, the last good
        state serving on."""
        store = self.store
        if store is None:
            return False
        try:
            signature, models = self._inputs()
            as_of = floored(self.clock(), self.settings.serving.refresh_seconds)
            version = hashlib.sha256(f"{signature}|{models}|{as_of.isoformat()}".encode()).hexdigest()[:16]
            state, built = built_once(self.shared, self._key(version),
                                      lambda: self._build(store, signature, as_of, version))
            if not built:  # read as another worker built it: given this process's model (the same, by the key)
                model = self.models.get("milestone")
                if model is None:
                    raise LookupError("no milestone model loaded yet")
                state.model, self._history = model, (signature, state.history)
            self.built += built
            self._current = state
            if self.metrics is not None:
                self.metrics.live_states.labels("built" if built else "read").inc()
                self.metrics.publish(state.milestones)
            if self.ledger is not None:
                self.recorded += self.ledger.record(state.published, [m.project for m in state.milestones],
                                                    [m.due_at for m in state.milestones])
                self.alerted += send_alerts(state.milestones, self.ledger, self.settings)
        except Exception as exc:  # keep serving the last good state whatever went wrong
            error = f"{type(exc).__name__}: {exc}"
            if error != self.error:  # once per new error, not once per try
                log.warning("live state not refreshed: %s", error)
            self.error = error
            return False
        self.error = None
        self.refreshes += 1
        return True

    def _key(self, version: str) -> str:
        """What a state shared among workers is named by: its version, and all else it is built
        from (Slipcast's release, the settings, the served models' metadata), so that only an
        equal state is shared."""
        models = json.dumps([getattr(self.models.get(t), "metadata", None) for t in ("milestone", "ticket")],
                            sort_keys=True, default=str)
        parts = f"{version}|{__version__}|{self.settings.model_dump_json(warnings=False)}|{models}"
        return hashlib.sha256(parts.encode()).hexdigest()[:32]

    def _build(self, store: str, signature: str, as_of: datetime, version: str) -> Portfolio:
        """The state as of ``as_of``, the store's history coded again only where it changed."""
        if self._history is None or self._history[0] != signature:
            self._history = (signature, History(read_tables(store), self.settings.features))
        return build_portfolio(self._history[1], as_of, self.models, self.settings, version)

    def _inputs(self) -> tuple[str, tuple]:
        """What a refresh depends on besides the time: the store's signature and the models serving."""
        assert self.store is not None
        return store_signature(self.store), tuple(getattr(self.models.get(t), "version", None)
                                                  for t in ("milestone", "ticket"))

    def start(self) -> None:
        """Refresh now, then whenever the store or a model changes (checked every
        ``serving.reload_seconds``) or ``serving.refresh_seconds`` have passed."""
        if self.store is None or self._watching.running:
            return
        self.refresh()
        self._seen, self._last = self._inputs(), self.clock()
        self._watching.start(max(self.settings.serving.reload_seconds, 0.2), self._check)

    def _check(self) -> None:
        """One look: refresh if the inputs changed, nothing serves yet, or the period has passed."""
        try:
            now = self._inputs()
        except OSError as exc:  # the store is being replaced: look again next time
            self.error = str(exc)
            return
        due = (self.clock() - self._last).total_seconds() >= self.settings.serving.refresh_seconds
        if (now != self._seen or self._current is None or due) and self.refresh():
            self._seen, self._last = now, self.clock()

    def stop(self) -> None:
        self._watching.stop()
