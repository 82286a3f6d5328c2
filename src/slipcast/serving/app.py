"""The FastAPI application: middleware, the routers of each resource, error handlers, lifespan."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic.json_schema import models_json_schema
from starlette.routing import Route

from slipcast import __version__
from slipcast.core.settings import Settings, get_settings
from slipcast.live.autosync import AutoSync
from slipcast.live.metrics import Measured, Metrics
from slipcast.scoring.model_store import ModelStore
from slipcast.scoring.runtime import tune_collector
from slipcast.serving import errors
from slipcast.serving.assistant import Endpoint, assistant, live_state
from slipcast.serving.dependencies import Clock, JsonBody, utc_now
from slipcast.serving.middleware import BodyLimit
from slipcast.serving.routers import dependencies, forecasts, milestones, model, operations, pages, programs, projects


def create_app(settings: Settings | None = None, store: ModelStore | None = None,
               clock: Clock = utc_now) -> FastAPI:
    """The service, on ``settings`` (default: the configured ones), a model store and a clock
    (what "now" is for a request without ``as_of``)."""
    settings = settings or get_settings()
    store = store or ModelStore(settings)
    metrics = Metrics()
    live = live_state(settings, store, clock, metrics)
    autosync = AutoSync(settings, live)
    keys = [k.encode() for k in settings.serving.api_keys]
    mcp = Endpoint(assistant(live, store, settings), keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.start()
        live.start()
        autosync.start()
        tune_collector(settings)
        async with mcp.running():
            yield
        autosync.stop()
        live.stop()
        store.stop()

    app = FastAPI(title="Slipcast", version=__version__, lifespan=lifespan,
                  description="Calibrated probabilities that milestones slip past their due dates, "
                              "with the drivers behind them, and the chances that programs across teams land.")
    app.state.settings, app.state.store, app.state.metrics, app.state.clock = settings, store, metrics, clock
    app.state.live, app.state.autosync = live, autosync
    app.state.api_keys = keys
    if settings.serving.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.serving.cors_origins,
                           allow_methods=["GET", "POST", "PUT", "DELETE"], allow_headers=["*"])
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    app.add_middleware(Measured, metrics=metrics)  # outermost: refusals count too
    errors.install(app)
    for router in (operations.router, model.router, forecasts.router, milestones.router, projects.router,
                   programs.router, dependencies.router, pages.router):
        app.include_router(router)
    app.router.routes.append(Route("/mcp", mcp, include_in_schema=False))  # the assistant: MCP over streamable HTTP
    app.openapi = _openapi(app, [forecasts.TABLES, forecasts.ONE])  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, bodies: list[JsonBody]) -> Callable[[], dict]:
    """FastAPI's OpenAPI document, with the schemas of the bodies routes read by ``JsonBody``."""

    def openapi() -> dict:
        document = app.openapi_schema
        if document is None:
            document = FastAPI.openapi(app)
            _, schemas = models_json_schema([(b.model, "validation") for b in bodies],
                                            ref_template="#/components/schemas/{model}")
            known = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in schemas.get("$defs", {}).items():  # FastAPI's own, where it has one
                known.setdefault(name, schema)
        return document

    return openapi
