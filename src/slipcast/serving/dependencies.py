"""What a route depends on, in one place: settings, the model store, the live state, the clock,
metrics, auth, the champion of a target, a JSON body read in one pass. Each reads the app's state
(set once by ``create_app``), so a test or a deployment swaps any of them there. None of them
blocks, so each is ``async``: FastAPI runs it on the event loop instead of handing it to the
thread pool, a hand-off per dependency per request (docs/architecture.md, "Live state")."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError

from slipcast.core.settings import Settings
from slipcast.live.metrics import Metrics
from slipcast.live.portfolio import Portfolio
from slipcast.live.state import LiveState
from slipcast.scoring.model_store import LoadedModel, ModelStore

Clock = Callable[[], datetime]
M = TypeVar("M", bound=BaseModel)
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False)
REFUSED = "missing or invalid X-API-Key"


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
        raise HTTPException(503, f"no live state: {why_none(state)}")
    return current


def why_none(state: LiveState) -> str:
    """Why ``state`` holds no portfolio yet: no store, the error of its last build, or building."""
    return ("no store configured (serving.store, or `slipcast serve --store DIR`)" if state.store is None
            else state.error or "the live state is being built")


async def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def now(request: Request) -> datetime:
    """The time a request is answered at (the app's clock: injectable)."""
    return request.app.state.clock()


async def authorized(request: Request, key: str | None = Depends(API_KEY)) -> None:
    """Requires a configured API key in ``X-API-Key`` when ``serving.api_keys`` is set."""
    if not key_accepted(request.app.state.api_keys, key):
        raise HTTPException(401, REFUSED, headers={"WWW-Authenticate": "API-Key"})


def key_accepted(keys: list[bytes], given: str | None) -> bool:
    """Whether ``given`` is one of the configured ``keys`` (any key where none is configured). The
    REST routes and the assistant's endpoint (``serving.assistant``) ask the same."""
    if not keys:
        return True
    given_ = (given or "").encode()
    # compare against every key so timing reveals neither match nor position
    return any([hmac.compare_digest(given_, k) for k in keys])


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
    columns body of 1,000 milestones in ``make bench`` (29 MB) that takes 0.33 s against 0.2 s here,
    and for one milestone's 60 KB it is most of what the framework adds to a forecast
    (docs/architecture.md, "Requests as columns"). A body is read as JSON under FastAPI's rule
    (``_json_content``); one that is refused is read again as FastAPI reads it, so that its 422 is
    FastAPI's, rendered as every 422 is (``serving.errors``: a long body is not echoed).
    ``openapi`` is the route's ``openapi_extra``: it documents the body as FastAPI would
    (``create_app`` adds the model's schemas to the document)."""

    def __init__(self, model: type[M]):
        self.model = model
        self.openapi = {"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}},
            "responses": {"422": {"description": "Validation Error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}}}

    async def __call__(self, request: Request) -> M:
        body = await request.body()
        if not body:
            raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
        if not _json_content(request.headers.get("content-type")):
            raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "input": None,
                                           "msg": "Input should be a valid dictionary or object to extract fields from"}])
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            pass
        # a body that is refused is read again as FastAPI reads a body, so that it gets FastAPI's
        # errors: Python's reader says where JSON breaks, and takes what the JSON parser refuses
        # whole (a lone surrogate in a string), so that the error names that value
        try:
            return self.model.model_validate(json.loads(body), from_attributes=True)  # as FastAPI validates
        except json.JSONDecodeError as exc:
            raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "input": {},
                                           "msg": "JSON decode error", "ctx": {"error": exc.msg}}]) from None
        except ValidationError as exc:
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        except ValueError:  # not text at all (bytes that are not UTF-8)
            raise HTTPException(400, "There was an error parsing the body") from None


def _json_content(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is read as JSON: application/json or
    application/*+json; a body without one is not (FastAPI's rule for a declared body)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


SettingsDep = Annotated[Settings, Depends(settings)]
StoreDep = Annotated[ModelStore, Depends(store)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
PortfolioDep = Annotated[Portfolio, Depends(portfolio)]
NowDep = Annotated[datetime, Depends(now)]
