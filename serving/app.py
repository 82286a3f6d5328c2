"""The FastAPI application: versioned forecast endpoints, health, model metadata, metrics."""

from __future__ import annotations

import hmac
import os
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import APIKeyHeader

from slipcast import __version__
from slipcast.core.settings import Settings, get_settings
from slipcast.serving.forecast import forecast_many, forecast_tickets, model_ref, reject
from slipcast.serving.metrics import Measured, Metrics
from slipcast.serving.model_store import LoadedModel, ModelStore
from slipcast.serving.runtime import tune_collector
from slipcast.serving.schemas import (
    BatchRequest,
    BatchResponse,
    Forecast,
    ForecastRequest,
    ModelInfo,
    TicketForecasts,
    WhatIfRequest,
    WhatIfResponse,
)
from slipcast.serving.what_if import apply_change

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, before they are read whole."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send):
        body = b'{"detail":"request body too large"}'
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def create_app(settings: Settings | None = None, store: ModelStore | None = None) -> FastAPI:
    """The service, on ``settings`` (default: the configured ones) and a model store."""
    settings = settings or get_settings()
    store = store or ModelStore(settings)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.start()
        tune_collector(settings)
        yield
        store.stop()

    app = FastAPI(title="Slipcast", version=__version__, lifespan=lifespan,
                  description="Calibrated probabilities that milestones slip past their due dates, "
                              "with the drivers behind them.")
    app.state.store, app.state.settings, app.state.metrics = store, settings, metrics
    if settings.serving.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.serving.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    app.add_middleware(Measured, metrics=metrics)  # outermost: refusals count too

    keys = [k.encode() for k in settings.serving.api_keys]

    def authorized(key: str | None = Depends(API_KEY)) -> None:
        if not keys:
            return
        given = (key or "").encode()
        # compare against every key so timing reveals neither match nor position
        if not any([hmac.compare_digest(given, k) for k in keys]):
            raise HTTPException(401, "missing or invalid X-API-Key", headers={"WWW-Authenticate": "API-Key"})

    def champion(target: str) -> LoadedModel:
        loaded = store.get(target)
        if loaded is None:
            raise HTTPException(503, f"no {target} model loaded yet"
                                + (f": {store.errors[target]}" if target in store.errors else ""))
        return loaded

    def record(forecasts: list[Forecast], target: str = "milestone") -> None:
        for f in forecasts:
            metrics.states.labels(f.status).inc()
            if f.probability is not None:
                metrics.forecasts.labels(target).observe(f.probability)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict:
        """The process is up."""
        return {"status": "ok", "worker": os.getpid()}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "no model loaded"}})
    def readyz(response: Response) -> dict:
        """Ready once a milestone model is loaded."""
        loaded = store.get("milestone")
        if loaded is None:
            response.status_code = 503
            return {"status": "not ready", "errors": store.errors}
        return {"status": "ready", "worker": os.getpid(),
                "models": {t: m.version for t in store.targets if (m := store.get(t))}}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def prometheus() -> Response:
        """Prometheus metrics."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/model", tags=["model"], dependencies=[Depends(authorized)], response_model=ModelInfo)
    def model_info(target: str = "milestone") -> ModelInfo:
        """The serving model's metadata and its backtest metrics beside the baselines'."""
        if target not in store.targets:
            reject(["query", "target"], f"unknown target {target!r}; one of {list(store.targets)}")
        loaded = champion(target)
        meta = loaded.metadata
        return ModelInfo(target=target, model=model_ref(loaded), features=meta["features"],
                         metrics=meta.get("metrics", {}), baselines=meta.get("baselines", {}),
                         data_fingerprint=meta.get("data_fingerprint"), trained_at=meta.get("trained_at"),
                         loaded_at=loaded.loaded_at)

    @app.post("/v1/forecasts", tags=["forecasts"], dependencies=[Depends(authorized)], response_model=Forecast)
    def forecast(req: ForecastRequest) -> Forecast:
        """Slip probability of one milestone as of now (or ``as_of``), with its drivers."""
        out = forecast_many([req], champion("milestone"), settings)
        record(out)
        return out[0]

    @app.post("/v1/forecasts/batch", tags=["forecasts"], dependencies=[Depends(authorized)],
              response_model=BatchResponse)
    def forecast_batch(batch: BatchRequest) -> BatchResponse:
        """Many milestones in one call, scored together."""
        if len(batch.items) > settings.serving.max_batch:
            reject(["items"], f"at most {settings.serving.max_batch} milestones per batch")
        out = forecast_many(batch.items, champion("milestone"), settings, loc_prefix=["items"])
        record(out)
        return BatchResponse(forecasts=out)

    @app.post("/v1/forecasts/what-if", tags=["forecasts"], dependencies=[Depends(authorized)],
              response_model=WhatIfResponse)
    def what_if(req: WhatIfRequest) -> WhatIfResponse:
        """The milestone as it is and with a change applied now, side by side."""
        loaded = champion("milestone")
        as_of = req.forecast.as_of or datetime.now(UTC)
        base = req.forecast.model_copy(update={"as_of": as_of})
        try:
            changed = apply_change(base, req.change, as_of)
        except ValueError as exc:
            field, _, msg = str(exc).partition(": ")
            reject(field.split("."), msg)
        before, after = forecast_many([base, changed], loaded, settings, loc_prefix=["forecast"])
        delta = (None if before.probability is None or after.probability is None
                 else round(after.probability - before.probability, 4))
        return WhatIfResponse(before=before, after=after, delta=delta)

    @app.post("/v1/forecasts/tickets", tags=["forecasts"], dependencies=[Depends(authorized)],
              response_model=TicketForecasts)
    def ticket_forecasts(req: ForecastRequest) -> TicketForecasts:
        """For each open ticket of the milestone: the probability it is not done, in the milestone,
        by the due date (the ticket model)."""
        return forecast_tickets(req, champion("ticket"), settings)

    return app
