"""Forecasts of milestones (one, a batch, a what-if) and of their open tickets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.live.metrics import Metrics
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.records import Forecast
from slipcast.serving.dependencies import (
    JsonBody,
    MetricsDep,
    NowDep,
    SettingsDep,
    StoreDep,
    authorized,
    champion_of,
)
from slipcast.serving.request_forecasts import forecast_many, forecast_tables, forecast_tickets
from slipcast.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ForecastRequest,
    TablesRequest,
    TicketForecasts,
    WhatIfRequest,
    WhatIfResponse,
)
from slipcast.serving.what_if import apply_change

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"], dependencies=[Depends(authorized)])
TABLES = JsonBody(TablesRequest)
ONE = JsonBody(ForecastRequest)


def _record(metrics: Metrics, forecasts: list[Forecast], target: str = "milestone") -> None:
    for f in forecasts:
        metrics.states.labels(f.status).inc()
        if f.probability is not None:
            metrics.forecasts.labels(target).observe(f.probability)


def _check_rows(*tables, settings: Settings, where: str = "tickets") -> None:
    """At most ``serving.max_batch_rows`` tickets, events and links in one request."""
    rows = sum(len(t) for t in tables if t is not None)
    if rows > settings.serving.max_batch_rows:
        raise FieldError(("body", where), f"{rows} tickets, events and links in one request; at most "
                                          f"{settings.serving.max_batch_rows} (split it)")


@router.post("", response_model=Forecast, openapi_extra=ONE.openapi)
def forecast(req: Annotated[ForecastRequest, Depends(ONE)], store: StoreDep, settings: SettingsDep,
             metrics: MetricsDep, now: NowDep) -> Response:
    """Slip probability of one milestone as of now (or ``as_of``), with its drivers."""
    out = forecast_many([req], champion_of(store, "milestone"), settings, now)
    _record(metrics, out)
    # the forecast is built by its model, so valid: encoded once, not validated again on the way out
    return Response(out[0].model_dump_json(), media_type="application/json")


@router.post("/batch", response_model=BatchResponse)
def forecast_batch(batch: BatchRequest, store: StoreDep, settings: SettingsDep, metrics: MetricsDep,
                   now: NowDep) -> BatchResponse:
    """Many milestones in one call, scored together."""
    if len(batch.items) > settings.serving.max_batch:
        raise FieldError(("body", "items"), f"at most {settings.serving.max_batch} milestones per batch")
    _check_rows(*(rows for r in batch.items for rows in (r.tickets, r.events, r.links)), settings=settings,
                where="items")
    out = forecast_many(batch.items, champion_of(store, "milestone"), settings, now, within=lambda i: ["items", i])
    _record(metrics, out)
    return BatchResponse(forecasts=out)


@router.post("/tables", response_model=BatchResponse, openapi_extra=TABLES.openapi)
def forecast_columns(req: Annotated[TablesRequest, Depends(TABLES)], store: StoreDep, settings: SettingsDep, metrics: MetricsDep,
                     now: NowDep) -> BatchResponse:
    """A team's milestones from its state sent as columns: its tickets, events and links once for
    all of them (every milestone open at as_of, or those named), scored together."""
    _check_rows(req.tickets, req.events, req.links, settings=settings)
    out = forecast_tables(req, champion_of(store, "milestone"), settings, now)
    _record(metrics, out)
    return BatchResponse(forecasts=out)


@router.post("/what-if", response_model=WhatIfResponse)
def what_if(req: WhatIfRequest, store: StoreDep, settings: SettingsDep, now: NowDep) -> WhatIfResponse:
    """The milestone as it is and with a change applied now, side by side."""
    return compared(req, champion_of(store, "milestone"), settings, now)


def compared(req: WhatIfRequest, loaded: LoadedModel, settings: Settings, now: datetime) -> WhatIfResponse:
    """The milestone ``req`` sends, forecast as it is and with its change applied at its as_of
    (``now`` where it gives none): the what-if route's answer, and the assistant's ``what_if`` on a
    milestone of the store (``serving.assistant``)."""
    as_of = req.forecast.as_of or now
    base = req.forecast.model_copy(update={"as_of": as_of})
    changed = apply_change(base, req.change, as_of)
    before, after = forecast_many([base, changed], loaded, settings, now, within=lambda i: ["forecast"])
    delta = (None if before.probability is None or after.probability is None
             else round(after.probability - before.probability, 4))
    return WhatIfResponse(before=before, after=after, delta=delta)


@router.post("/tickets", response_model=TicketForecasts)
def ticket_forecasts(req: ForecastRequest, store: StoreDep, settings: SettingsDep, now: NowDep) -> TicketForecasts:
    """For each open ticket of the milestone: the probability it is not done, in the milestone,
    by the due date (the ticket model)."""
    return forecast_tickets(req, champion_of(store, "ticket"), settings, now)
