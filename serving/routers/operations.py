"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response

from slipcast.serving.dependencies import MetricsDep, StoreDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok", "worker": os.getpid()}


@router.get("/readyz", responses={503: {"description": "no model loaded"}})
def readyz(response: Response, store: StoreDep) -> dict:
    """Ready once a milestone model is loaded."""
    loaded = store.get("milestone")
    if loaded is None:
        response.status_code = 503
        return {"status": "not ready", "errors": store.errors}
    return {"status": "ready", "worker": os.getpid(),
            "models": {t: m.version for t in store.targets if (m := store.get(t))}}


@router.get("/metrics", response_class=Response)
def prometheus(metrics: MetricsDep) -> Response:
    """Prometheus metrics."""
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
