"""From API requests to forecasts, through the features/ code training uses.

A request's state becomes canonical columns (``serving.columns``); a batch is one call to
``features_now``, and every milestone is scored in one vectorised prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from slipcast.core.contracts import horizons_of, served_base_rate
from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.features.online import features_now
from slipcast.serving.columns import RequestState, item_state, table_state
from slipcast.serving.explain import drivers, plain_columns, typical_rows
from slipcast.serving.model_store import LoadedModel
from slipcast.serving.schemas import (
    Forecast,
    ForecastRequest,
    ModelRef,
    TablesRequest,
    TicketForecast,
    TicketForecasts,
)

INSUFFICIENT = "insufficient_history"


def band(p: float, bands: dict[str, float]) -> str:
    """The highest risk band whose lower bound ``p`` reaches."""
    return max(((lo, name) for name, lo in bands.items() if p >= lo), default=(0, "low"))[1]


def model_ref(loaded: LoadedModel) -> ModelRef:
    meta = loaded.metadata
    return ModelRef(name=meta.get("model_name", ""), version=loaded.version, run_id=meta.get("run_id"),
                    candidate=meta.get("candidate"), source=loaded.source)


def guarded_cells(loaded: LoadedModel, span_elapsed, projects) -> tuple[list[str | None], list[dict | None]]:
    """For each row (its share of the span elapsed, its project): its horizon bucket, and the
    model's skill-guard cell where the model does not beat the base rate there
    (docs/architecture.md, "The skill guard"), None where the model serves. The project's own
    cell decides where it has one, else the pooled cell. A model exported before the guard
    existed has none."""
    horizons = horizons_of(span_elapsed)
    keys = list(zip(horizons, projects))
    cells = {key: guarded_cell(loaded, *key) for key in set(keys)}  # a few cells for many rows
    return horizons, [cells[key] for key in keys]


def guarded_cell(loaded: LoadedModel, horizon: str | None, project: str | None = None) -> dict | None:
    """The skill-guard cell of one horizon bucket and project (``guarded_cells``)."""
    cell = loaded.metadata.get("project_guard", {}).get(project or "", {}).get(horizon or "")
    if cell is None:
        cell = loaded.metadata.get("guard", {}).get(horizon or "")
    return cell if cell is not None and cell["guarded"] else None


def forecast_state(state: RequestState, explain: np.ndarray, loaded: LoadedModel, settings: Settings
                   ) -> list[Forecast]:
    """Forecasts of the milestones a request's state asks for, in its order, once it passes
    its checks; drivers for the forecasts at positions ``explain``."""
    state.check()
    feats, _ = features_now(state.tables(), state.snaps, settings.features, state.outcomes)
    return forecasts_of(state.names, state.projects, state.as_ofs, feats, explain, loaded, settings)


def forecast_many(reqs: list[ForecastRequest], loaded: LoadedModel, settings: Settings, now: datetime,
                  within: Callable[[int], list] = lambda i: []) -> list[Forecast]:
    """Forecasts for a batch of milestone states, in request order; ``now`` is the as_of of
    requests that give none; ``within(i)`` is where request i sits in the body (for errors)."""
    return forecast_state(item_state(reqs, now, within), np.flatnonzero([r.explain for r in reqs]), loaded, settings)


def forecast_tables(req: TablesRequest, loaded: LoadedModel, settings: Settings, now: datetime) -> list[Forecast]:
    """Forecasts of a team's milestones from its state sent as columns (``TablesRequest``)."""
    state = table_state(req, now)
    if len(state.snaps) > settings.serving.max_batch:
        raise FieldError(("body", "milestone_ids"), f"{len(state.snaps)} milestones to forecast; at most "
                                                    f"{settings.serving.max_batch} per request (name them)")
    explain = np.arange(len(state.snaps)) if req.explain else np.zeros(0, dtype=np.intp)
    return forecast_state(state, explain, loaded, settings)


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
    days_left, remaining, scope, history = (feats[c] for c in ("days_left", "remaining_count", "scope_count",
                                                                 "history_weeks"))
    served = forecastable(feats, settings)
    horizons, cells = guarded_cells(loaded, feats["span_elapsed"], projects)
    explain = np.asarray([i for i in explain.tolist() if served[i] and cells[i] is None], dtype=np.intp)
    inputs = loaded.inputs(feats)
    if len(explain):  # the drivers' variations ride along in the same prediction, for the model's own forecasts only
        extra, varied = typical_rows(loaded, inputs, explain)
        p = loaded.predict(loaded.frame({name: np.concatenate([inputs[name], extra[name]]) for name in inputs}))
        why = dict(zip(explain.tolist(), drivers(loaded, inputs, explain, p[explain], p[n:], varied,
                                                 settings.serving.top_drivers)))
    else:
        p, why = loaded.predict(loaded.frame(inputs)), {}
    ref = model_ref(loaded)
    out = []
    min_weeks = settings.features.min_history_weeks
    rate, rate_basis = served_base_rate(loaded.metadata)
    plain = plain_columns(inputs)
    for i in range(n):
        values = {name: column[i] for name, column in plain.items()}
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
        cell = cells[i]
        if cell is not None:  # the model does not beat the base rate here: say so, serve it
            low, high = cell["interval"]
            notes.insert(0, f"the model does not beat the base rate {horizons[i]} in its backtest"
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
    state = item_state([req], now)
    state.check()
    _, tickets = features_now(state.tables(), state.snaps, settings.features, state.outcomes)
    return TicketForecasts(milestone_id=req.milestone.milestone_id, as_of=state.as_ofs[0], model=model_ref(loaded),
                           tickets=ticket_forecasts_of(tickets, [req.milestone.project], loaded))


def ticket_forecasts_of(tickets: dict[str, np.ndarray], projects: list[str], loaded: LoadedModel) -> list[TicketForecast]:
    """The forecast of each open ticket from its features (``snap``: the position of its
    milestone, whose project is in ``projects``): the ticket model's, or the base rate where
    the ticket model does not beat it at that horizon (the skill guard)."""
    p = loaded.predict(loaded.frame(tickets)) if len(tickets["ticket_id"]) else np.zeros(0)
    rate = round(served_base_rate(loaded.metadata)[0], 4)
    _, cells = guarded_cells(loaded, tickets["span_elapsed"], [projects[snap] for snap in tickets["snap"]])
    out = []
    for t, q, cell in zip(tickets["ticket_id"], p, cells):
        if cell is not None:
            out.append(TicketForecast(ticket_id=t, probability=rate, basis="base_rate"))
        else:
            out.append(TicketForecast(ticket_id=t, probability=round(float(q), 4), basis="model"))
    return out
