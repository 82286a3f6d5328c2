"""What a route depends on, in one place: settings, the model store, the live state, the clock,
metrics, auth, the champion of a target, a JSON body read in one pass. Each reads the app's state
(set once by ``create_app``), so a test or a deployment swaps any of them there. None of them
blocks, so each is ``async``: FastAPI runs it on the event loop instead of handing it to the
thread pool, a hand-off per dependency per request (docs/architecture.md, "Live state")."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError

from slipcast.core.settings import Settings
from slipcast.serving.live import LiveState
from slipcast.serving.metrics import Metrics
from slipcast.serving.model_store import LoadedModel, ModelStore
from slipcast.serving.portfolio import Portfolio

Clock = Callable[[], datetime]
M = TypeVar("M", bound=BaseModel)
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False)


def utc_now() -> datetime:
    """The service's default clock."""
    return datetime.now(UTC)


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def store(request: Request) -> ModelStore:
    return request.app.state.store


async def portfolio(request: Request) -> Portfolio:
    """The live state to answer from, or 503 naming why there is none yet."""
    state: LiveState = request.app.state.live
    current = state.get()
    if current is None:
        why = ("no store configured (serving.store, or `slipcast serve --store DIR`)" if state.store is None
               else state.error or "the live state is being built")
        raise HTTPException(503, f"no live state: {why}")
    return current


async def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def now(request: Request) -> datetime:
    """The time a request is answered at (the app's clock: injectable)."""
    return request.app.state.clock()


async def authorized(request: Request, key: str | None = Depends(API_KEY)) -> None:
    """Requires a configured API key in ``X-API-Key`` when ``serving.api_keys`` is set."""
    keys = request.app.state.api_keys
    if not keys:
        return
    given = (key or "").encode()
    # compare against every key so timing reveals neither match nor position
    if not any([hmac.compare_digest(given, k) for k in keys]):
        raise HTTPException(401, "missing or invalid X-API-Key", headers={"WWW-Authenticate": "API-Key"})


def champion_of(store: ModelStore, target: str) -> LoadedModel:
    """The model serving ``target``, or 503 naming why there is none (called in a route's body,
    so a request's own errors are answered first)."""
    loaded = store.get(target)
    if loaded is None:
        raise HTTPException(503, f"no {target} model loaded yet"
                            + (f": {store.errors[target]}" if target in store.errors else ""))
    return loaded


class JsonBody(Generic[M]):
    """A route's JSON body read as ``model`` from its bytes in one pass of pydantic's JSON parser.
    FastAPI's declared body is parsed to Python objects first and validated after: for the
    columns body of 1,000 milestones in ``make bench`` (29 MB) that takes 0.33 s against 0.2 s here
    (docs/architecture.md, "Requests as columns"). Errors are FastAPI's 422 at ``("body", ...)``,
    rendered as every 422 is (``serving.errors``: a long body is not echoed). ``openapi`` is the
    route's ``openapi_extra``: it documents the body as FastAPI would (``create_app`` adds the
    model's schemas to the document)."""

    def __init__(self, model: type[M]):
        self.model = model
        self.openapi = {"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}

    async def __call__(self, request: Request) -> M:
        try:
            return self.model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


SettingsDep = Annotated[Settings, Depends(settings)]
StoreDep = Annotated[ModelStore, Depends(store)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
PortfolioDep = Annotated[Portfolio, Depends(portfolio)]
NowDep = Annotated[datetime, Depends(now)]
