"""Liveness, readiness and Prometheus metrics (which, with API keys set, need a key: the
forecast histogram tells what the service answered)."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, Request, Response

from slipcast.serving.dependencies import MetricsDep, StoreDep, authorized

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok", "worker": os.getpid()}


@router.get("/readyz", responses={503: {"description": "no model loaded"}})
def readyz(request: Request, response: Response, store: StoreDep) -> dict:
    """Ready once a milestone model is loaded. ``models`` names the version serving each target;
    ``state`` says per target whether the champion serves, a fallback does (and why), or nothing;
    ``ledger`` whether forecasts are recorded (a failing ledger leaves the service ready); ``sync``
    how the store is kept current (``serving.sync``): when it last synced and what the latest sync,
    monitor and retrain did (a failing sync leaves the service ready)."""
    state = {t: store.status(t) for t in store.targets}
    ledger = request.app.state.live.ledger_status()
    sync = request.app.state.autosync.status()
    if store.get("milestone") is None:
        response.status_code = 503
        return {"status": "not ready", "worker": os.getpid(), "errors": store.errors, "state": state,
                "ledger": ledger, "sync": sync}
    return {"status": "ready", "worker": os.getpid(), "models": {t: m.version for t in store.targets if (m := store.get(t))},
            "state": state, "ledger": ledger, "sync": sync}


@router.get("/metrics", response_class=Response, dependencies=[Depends(authorized)])
def prometheus(metrics: MetricsDep) -> Response:
    """Prometheus metrics."""
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
