"""Forecasts of milestones (one, a batch, a what-if) and of their open tickets."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from slipcast.core.errors import FieldError
from slipcast.serving.dependencies import MetricsDep, NowDep, SettingsDep, StoreDep, authorized, champion_of
from slipcast.serving.forecast import forecast_many, forecast_tickets
from slipcast.serving.metrics import Metrics
from slipcast.serving.schemas import (
    BatchRequest,
    BatchResponse,
    Forecast,
    ForecastRequest,
    TicketForecasts,
    WhatIfRequest,
    WhatIfResponse,
)
from slipcast.serving.what_if import apply_change

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"], dependencies=[Depends(authorized)])


def _record(metrics: Metrics, forecasts: list[Forecast], target: str = "milestone") -> None:
    for f in forecasts:
        metrics.states.labels(f.status).inc()
        if f.probability is not None:
            metrics.forecasts.labels(target).observe(f.probability)


@router.post("", response_model=Forecast)
def forecast(req: ForecastRequest, store: StoreDep, settings: SettingsDep, metrics: MetricsDep,
             now: NowDep) -> Forecast:
    """Slip probability of one milestone as of now (or ``as_of``), with its drivers."""
    out = forecast_many([req], champion_of(store, "milestone"), settings, now)
    _record(metrics, out)
    return out[0]


@router.post("/batch", response_model=BatchResponse)
def forecast_batch(batch: BatchRequest, store: StoreDep, settings: SettingsDep, metrics: MetricsDep,
                   now: NowDep) -> BatchResponse:
    """Many milestones in one call, scored together."""
    if len(batch.items) > settings.serving.max_batch:
        raise FieldError(("body", "items"), f"at most {settings.serving.max_batch} milestones per batch")
    rows = sum(len(r.tickets) + len(r.events) + len(r.links) for r in batch.items)
    if rows > settings.serving.max_batch_rows:
        raise FieldError(("body", "items"), f"{rows} tickets, events and links in one batch; at most "
                                            f"{settings.serving.max_batch_rows} (split the batch)")
    out = forecast_many(batch.items, champion_of(store, "milestone"), settings, now, within=lambda i: ["items", i])
    _record(metrics, out)
    return BatchResponse(forecasts=out)


@router.post("/what-if", response_model=WhatIfResponse)
def what_if(req: WhatIfRequest, store: StoreDep, settings: SettingsDep, now: NowDep) -> WhatIfResponse:
    """The milestone as it is and with a change applied now, side by side."""
    loaded = champion_of(store, "milestone")
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
