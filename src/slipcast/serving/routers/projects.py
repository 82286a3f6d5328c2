"""Per team: its open milestones by risk band, how often its finished milestones slipped, and how
its published forecasts came true."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from slipcast.core.contracts import live_figures
from slipcast.serving.dependencies import PortfolioDep, SettingsDep, authorized
from slipcast.serving.reads import NOT_MODIFIED, cached, not_modified
from slipcast.serving.schemas import ProjectList

router = APIRouter(prefix="/v1/projects", tags=["projects"], dependencies=[Depends(authorized)])


@router.get("", response_model=ProjectList, responses=NOT_MODIFIED)
def projects(request: Request, response: Response, state: PortfolioDep, settings: SettingsDep):
    """Every project of the store as of the latest refresh, with how its published forecasts
    came true where `slipcast monitor` has judged them."""
    figures = live_figures(settings.resolve(settings.monitoring.report_dir)) or {}
    if cached(request, response, state, also=figures.get("as_of", "")):
        return not_modified(response)
    monitored = figures.get("projects", {})
    items = [p.model_copy(update={"live": monitored.get(p.project)}) for p in state.projects]
    return ProjectList(items=items, as_of=state.as_of, state=state.version)
