"""Forecasts of API requests: a state sent as items or as columns becomes canonical columns
(``serving.request_state``), its features are computed by the code training uses
(``features.now``), and every milestone is scored in one vectorised prediction
(``scoring.forecast``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.features.now import features_now
from slipcast.scoring.forecast import forecasts_of, model_ref, ticket_forecasts_of
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.records import Forecast
from slipcast.serving.request_state import RequestState, item_state, table_state
from slipcast.serving.schemas import ForecastRequest, TablesRequest, TicketForecasts


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


def forecast_tickets(req: ForecastRequest, loaded: LoadedModel, settings: Settings, now: datetime) -> TicketForecasts:
    """For each ticket of the milestone still open: the probability it is not done, and in the
    milestone, by the due date."""
    state = item_state([req], now)
    state.check()
    _, tickets = features_now(state.tables(), state.snaps, settings.features, state.outcomes)
    return TicketForecasts(milestone_id=req.milestone.milestone_id, as_of=state.as_ofs[0], model=model_ref(loaded),
                           tickets=ticket_forecasts_of(tickets, [req.milestone.project], loaded))
