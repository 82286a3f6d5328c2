"""The serving model's metadata."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from slipcast.core.contracts import live_figures
from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.live.state import LiveState
from slipcast.scoring.forecast import model_ref
from slipcast.scoring.model_store import ModelStore
from slipcast.serving.dependencies import SettingsDep, StoreDep, authorized, champion_of
from slipcast.serving.schemas import LedgerStatus, ModelInfo, ModelLoad

router = APIRouter(prefix="/v1", tags=["model"], dependencies=[Depends(authorized)])


@router.get("/model", response_model=ModelInfo)
def model_info(request: Request, store: StoreDep, settings: SettingsDep, target: str = "milestone") -> ModelInfo:
    """The serving model's metadata and its backtest metrics beside the baselines'."""
    return described(store, settings, request.app.state.live, target)


def described(store: ModelStore, settings: Settings, live: LiveState, target: str = "milestone") -> ModelInfo:
    """What serves ``target``: its metadata, backtest metrics beside the baselines', the horizons and
    projects its skill guard holds, how it loaded, the ledger, and (for milestones) how its
    published forecasts came true (``slipcast monitor``): ``GET /v1/model``, and the assistant's
    ``model_health`` (``serving.assistant``)."""
    if target not in store.targets:
        raise FieldError(("query", "target"), f"unknown target {target!r}; one of {list(store.targets)}")
    loaded = champion_of(store, target)
    meta = loaded.metadata
    return ModelInfo(target=target, model=model_ref(loaded), load=ModelLoad(**store.status(target)),
                     features=list(meta["features"]), guard=meta.get("guard", {}),
                     project_guard=meta.get("project_guard", {}),
                     metrics=meta.get("metrics", {}), baselines=meta.get("baselines", {}),
                     data_fingerprint=meta.get("data_fingerprint"), trained_at=meta.get("trained_at"),
                     loaded_at=loaded.loaded_at, ledger=LedgerStatus(**live.ledger_status()),
                     monitor=live_figures(settings.resolve(settings.monitoring.report_dir)) if target == "milestone"
                     else None)
