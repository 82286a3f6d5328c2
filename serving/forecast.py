"""From API requests to forecasts, through the features/ code training uses.

A request becomes canonical tables column by column (its objects are read once, never turned
into frames row by row). A batch is one call to ``features_now``: each request's ids are
namespaced so requests never see each other's tickets, and every milestone is scored in one
vectorised prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from slipcast.core.contracts import EARLIEST, LATEST, YEARS, horizon_of, served_base_rate
from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.features.online import Columns, features_now, state_tables
from slipcast.features.tables import Tables
from slipcast.features.timeline import NAT, parse_numbers, parse_times
from slipcast.serving.explain import drivers, typical_rows
from slipcast.serving.model_store import LoadedModel
from slipcast.serving.schemas import (
    Forecast,
    ForecastRequest,
    ModelRef,
    TicketForecast,
    TicketForecasts,
)

INSUFFICIENT = "insufficient_history"
SEP = "\x1f"  # namespaces each request's ids inside a batch
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def reject(loc: list, msg: str):
    """Refuse a request value: ``loc`` is where it sits in the request body."""
    raise FieldError(("body", *loc), msg)


def _bounded(us: np.ndarray) -> np.ndarray:
    """Times (µs) inside the bounds every time keeps (``contracts.EARLIEST``, ``LATEST``)."""
    return (us != NAT) & (us >= (EARLIEST - EPOCH) // MICROSECOND) & (us < (LATEST - EPOCH) // MICROSECOND)


# event fields whose values the feature code reads: which values it can read, and what they are
READABLE = {
    "due_at": (lambda text: _bounded(parse_times(text, errors="coerce")) & text.str.match(r"\d{4}-").to_numpy(bool),
               f"an ISO-8601 time (UTC where it has no offset) in {YEARS}"),
    "story_points": (lambda text: np.isfinite(parse_numbers(text, errors="coerce")), "a finite number"),
}


def check_requests(reqs: list[ForecastRequest], now: datetime, within: Callable[[int], list] = lambda i: []
                   ) -> list[datetime]:
    """Checks pydantic cannot express, request by request (the first broken one is refused,
    ``within(i)`` naming where it sits); returns each request's as_of. The values the feature
    code reads are checked for the whole batch at once."""
    unreadable = _unreadable(reqs)
    return [_check_request(r, now, within(i), unreadable.get(i)) for i, r in enumerate(reqs)]


def _unreadable(reqs: list[ForecastRequest]) -> dict[int, tuple[str, int]]:
    """Per request, the first event (field by field, in ``READABLE`` order) whose to_value the
    feature code cannot read: (field, event index)."""
    out: dict[int, tuple[str, int]] = {}
    for field, (readable, _) in READABLE.items():
        at = [(r, i, e.to_value) for r, req in enumerate(reqs) for i, e in enumerate(req.events)
              if e.field == field and e.to_value is not None]
        if not at:
            continue
        ok = readable(pd.Series([value for _, _, value in at], dtype=object))
        for k in np.flatnonzero(~ok):
            out.setdefault(at[k][0], (field, at[k][1]))  # the earliest field, then the earliest event
    return out


def _check_request(req: ForecastRequest, now: datetime, loc: list, unreadable: tuple[str, int] | None) -> datetime:
    m = req.milestone
    as_of = req.as_of or now
    if m.due_at <= m.start_at:
        reject([*loc, "milestone", "due_at"], "due_at must be after start_at")
    if as_of < m.start_at:
        reject([*loc, "as_of"], "as_of is before the milestone's start_at")
    seen = set()
    for i, t in enumerate(req.tickets):
        if t.ticket_id in seen:
            reject([*loc, "tickets", i, "ticket_id"], f"duplicate ticket_id {t.ticket_id!r}")
        seen.add(t.ticket_id)
        if t.created_at > as_of:
            reject([*loc, "tickets", i, "created_at"], "created after as_of: send the state as of as_of")
    for i, e in enumerate(req.events):
        if e.ticket_id is None and e.milestone_id is None:
            reject([*loc, "events", i], "an event names a ticket_id or a milestone_id")
    if unreadable is not None:
        field, i = unreadable
        reject([*loc, "events", i, "to_value"], f"a {field} event's to_value is {READABLE[field][1]}")
    links = set()
    for i, link in enumerate(req.links):
        key = (link.from_ticket, link.to_ticket, link.kind)
        if key in links:
            reject([*loc, "links", i], f"duplicate link {key}")
        links.add(key)
    return as_of


def _micros(times) -> np.ndarray:
    """Aware datetimes as int64 microseconds since the epoch (NAT for None)."""
    return np.array([NAT if t is None else (t - EPOCH) // MICROSECOND for t in times], dtype=np.int64)


def request_tables(reqs: list[ForecastRequest], as_ofs: list[datetime]) -> tuple[Tables, pd.DataFrame, pd.DataFrame]:
    """Canonical tables, snapshots and past outcomes of requests; in a batch, every id is
    prefixed with its request's number so that requests never share one."""
    batch = len(reqs) > 1
    prefix = np.array([f"{i}{SEP}" for i in range(len(reqs))], dtype=object)

    def rows(attr: str) -> tuple[list, np.ndarray]:
        items = [getattr(r, attr) for r in reqs]
        return [x for xs in items for x in xs], np.repeat(np.arange(len(reqs)), [len(xs) for xs in items])

    def ids(values: list, owners, where: list[bool] | None = None) -> np.ndarray:
        out = np.array(values, dtype=object)
        if batch:
            spaced = pd.notna(out) if where is None else pd.notna(out) & np.asarray(where, dtype=bool)
            out[spaced] = prefix[np.asarray(owners)[spaced]] + out[spaced]  # str + str, element by element
        return out

    ms = [r.milestone for r in reqs]
    own = list(range(len(reqs)))
    project = [m.project for m in ms]
    milestones: Columns = {
        "milestone_id": ids([m.milestone_id for m in ms], own), "project": ids(project, own),
        "name": np.array([m.name or m.milestone_id for m in ms], dtype=object),
        "kind": np.array([m.kind for m in ms], dtype=object), "start_at": _micros(m.start_at for m in ms),
        "due_at": _micros(m.due_at for m in ms), "completed_at": _micros(m.completed_at for m in ms)}
    tk, owner = rows("tickets")
    tickets: Columns = {
        "ticket_id": ids([t.ticket_id for t in tk], owner),
        "project": ids([t.project or project[i] for t, i in zip(tk, owner)], owner),
        "type": np.array([t.type for t in tk], dtype=object), "priority": np.array([t.priority for t in tk], dtype=object),
        "created_at": _micros(t.created_at for t in tk), "resolved_at": _micros(t.resolved_at for t in tk),
        "story_points": np.array([np.nan if t.story_points is None else t.story_points for t in tk], dtype=np.float64),
        "assignee": np.array([t.assignee for t in tk], dtype=object), "status": np.array([t.status for t in tk], dtype=object),
        "milestone_id": ids([t.milestone_id for t in tk], owner)}
    ev, owner = rows("events")
    names_milestones = [e.field == "milestone" for e in ev]
    events: Columns = {
        "ticket_id": ids([e.ticket_id for e in ev], owner), "milestone_id": ids([e.milestone_id for e in ev], owner),
        "at": _micros(e.at for e in ev), "field": np.array([e.field for e in ev], dtype=object),
        "from_value": ids([e.from_value for e in ev], owner, names_milestones),
        "to_value": ids([e.to_value for e in ev], owner, names_milestones)}
    lk, owner = rows("links")
    links: Columns = {"from_ticket": ids([x.from_ticket for x in lk], owner),
                      "to_ticket": ids([x.to_ticket for x in lk], owner),
                      "kind": np.array([x.kind for x in lk], dtype=object), "created_at": _micros(x.created_at for x in lk)}
    past, owner = rows("past_milestones")
    outcomes = pd.DataFrame({"project": ids([project[i] for i in owner], owner),
                             "known_at": pd.to_datetime(_micros(p.known_at for p in past), unit="us", utc=True),
                             "slipped": np.array([float(p.slipped) for p in past])})
    snaps = pd.DataFrame({"milestone_id": milestones["milestone_id"],
                          "as_of": pd.to_datetime(_micros(as_ofs), unit="us", utc=True)})
    return state_tables(milestones, tickets, events, links), snaps, outcomes


def band(p: float, bands: dict[str, float]) -> str:
    """The highest risk band whose lower bound ``p`` reaches."""
    return max(((lo, name) for name, lo in bands.items() if p >= lo), default=(0, "low"))[1]


def model_ref(loaded: LoadedModel) -> ModelRef:
    meta = loaded.metadata
    return ModelRef(name=meta.get("model_name", ""), version=loaded.version, run_id=meta.get("run_id"),
                    candidate=meta.get("candidate"), source=loaded.source)


def guarded(loaded: LoadedModel, span_elapsed: float, project: str | None = None) -> dict | None:
    """The model's skill-guard cell for a row of ``project`` at this share of its span, where the
    model does not beat the base rate (docs/architecture.md, "The skill guard"); None where the
    model serves. The project's own cell decides where it has one, else the pooled cell. A model
    exported before the guard existed has none."""
    return guarded_cell(loaded, horizon_of(span_elapsed), project)


def guarded_cell(loaded: LoadedModel, horizon: str | None, project: str | None = None) -> dict | None:
    """``guarded`` for a horizon bucket already known."""
    cell = loaded.metadata.get("project_guard", {}).get(project or "", {}).get(horizon or "")
    if cell is None:
        cell = loaded.metadata.get("guard", {}).get(horizon or "")
    return cell if cell is not None and cell["guarded"] else None


def _plain(value):
    return None if isinstance(value, float) and np.isnan(value) else value


def forecast_many(reqs: list[ForecastRequest], loaded: LoadedModel, settings: Settings, now: datetime,
                  within: Callable[[int], list] = lambda i: []) -> list[Forecast]:
    """Forecasts for a batch of milestone states, in request order; ``now`` is the as_of of
    requests that give none; ``within(i)`` is where request i sits in the body (for errors)."""
    as_ofs = check_requests(reqs, now, within)
    tables, snaps, outcomes = request_tables(reqs, as_ofs)
    feats, _ = features_now(tables, snaps, settings.features, outcomes)
    return forecasts_of([r.milestone.milestone_id for r in reqs], [r.milestone.project for r in reqs], as_ofs,
                        feats, np.flatnonzero([r.explain for r in reqs]), loaded, settings)


def forecastable(feats: dict[str, np.ndarray], settings: Settings) -> np.ndarray:
    """Which rows get a probability: not past due, something committed, and at least
    ``features.min_history_weeks`` of the team's finished work (the others get a status and a
    message instead, ``forecasts_of``)."""
    return ((np.asarray(feats["days_left"]) > 0) & (np.asarray(feats["scope_count"]) > 0)
            & (np.asarray(feats["history_weeks"]) >= settings.features.min_history_weeks))


def forecasts_of(ids: list[str], projects: list[str], as_ofs: list[datetime], feats: dict[str, np.ndarray],
                 explain: np.ndarray, loaded: LoadedModel, settings: Settings) -> list[Forecast]:
    """The forecast of each milestone from its features (columns aligned with ``ids``), with
    drivers for the rows ``explain``: past due, insufficient history, guarded or the model's."""
    n = len(ids)
    if not n:
        return []
    inputs = loaded.inputs(feats)
    if len(explain):  # the drivers' variations ride along in the same prediction
        extra = typical_rows(loaded, inputs, explain)
        p = loaded.predict(loaded.frame({name: np.concatenate([inputs[name], extra[name]]) for name in inputs}))
    else:
        p = loaded.predict(loaded.frame(inputs))
    why = dict(zip(explain.tolist(), drivers(loaded, inputs, explain, p[explain], p[n:], settings.serving.top_drivers)))
    ref = model_ref(loaded)
    out = []
    min_weeks = settings.features.min_history_weeks
    days_left, remaining, scope, history = (feats[c] for c in ("days_left", "remaining_count", "scope_count",
                                                                 "history_weeks"))
    rate, rate_basis = served_base_rate(loaded.metadata)
    served = forecastable(feats, settings)
    for i in range(n):
        values = {name: _plain(column[i].item() if isinstance(column[i], np.generic) else column[i])
                  for name, column in inputs.items()}
        common = {"milestone_id": ids[i], "as_of": as_ofs[i], "features": values, "model": ref}
        if days_left[i] <= 0:
            out.append(Forecast(status="past_due", probability=None, risk_band=None,
                                message=f"the due date has passed with {int(remaining[i])} "
                                        "committed tickets still open", **common))
            continue
        if not served[i]:
            why_not = ("nothing is committed to the milestone yet" if scope[i] == 0 else
                       f"the team has {history[i]:.1f} weeks of finished work; "
                       f"{min_weeks} are needed (send its recently resolved tickets)")
            out.append(Forecast(status=INSUFFICIENT, probability=None, risk_band=None,
                                message=f"insufficient history: {why_not}", **common))
            continue
        notes = []
        if days_left[i] > 7 * settings.features.monte_carlo_max_weeks:
            notes.append(f"due beyond the {settings.features.monte_carlo_max_weeks}-week Monte Carlo horizon: "
                         "monte_carlo_on_time is the chance of finishing within it")
        elapsed = float(feats["span_elapsed"][i])
        cell = guarded(loaded, elapsed, projects[i])
        if cell is not None:  # the model does not beat the base rate here: say so, serve it
            low, high = cell["interval"]
            notes.insert(0, f"the model does not beat the base rate {horizon_of(elapsed)} in its backtest"
                            f"{' for ' + cell['project'] if 'project' in cell else ''} (Brier skill "
                            f"{cell['brier_skill']:+.3f}, 95 % interval {low:+.3f} to {high:+.3f}): this is the "
                            f"base rate ({rate_basis}); the model said {float(p[i]):.4f}")
            probability, basis, drivers_i = rate, "base_rate", []
        else:
            probability, basis, drivers_i = float(p[i]), "model", why.get(i, [])
        out.append(Forecast(status="ok", probability=round(probability, 4), basis=basis,
                            risk_band=band(probability, settings.serving.risk_bands),
                            message="; ".join(notes) or None, drivers=drivers_i, **common))
    return out


def forecast_tickets(req: ForecastRequest, loaded: LoadedModel, settings: Settings, now: datetime) -> TicketForecasts:
    """For each ticket of the milestone still open: the probability it is not done, and in the
    milestone, by the due date."""
    as_of, = check_requests([req], now)
    tables, snaps, outcomes = request_tables([req], [as_of])
    _, tickets = features_now(tables, snaps, settings.features, outcomes)
    return TicketForecasts(milestone_id=req.milestone.milestone_id, as_of=as_of, model=model_ref(loaded),
                           tickets=ticket_forecasts_of(tickets, [req.milestone.project], loaded))


def ticket_forecasts_of(tickets: dict[str, np.ndarray], projects: list[str], loaded: LoadedModel) -> list[TicketForecast]:
    """The forecast of each open ticket from its features (``snap``: the position of its
    milestone, whose project is in ``projects``): the ticket model's, or the base rate where
    the ticket model does not beat it at that horizon (the skill guard)."""
    p = loaded.predict(loaded.frame(tickets)) if len(tickets["ticket_id"]) else np.zeros(0)
    rate = round(served_base_rate(loaded.metadata)[0], 4)
    out = []
    for t, q, elapsed, snap in zip(tickets["ticket_id"], p, tickets["span_elapsed"], tickets["snap"]):
        if guarded(loaded, float(elapsed), projects[snap]):
            out.append(TicketForecast(ticket_id=t, probability=rate, basis="base_rate"))
        else:
            out.append(TicketForecast(ticket_id=t, probability=round(float(q), 4), basis="model"))
    return out
