"""Per team: its open milestones by risk band, and how often its finished milestones slipped."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from slipcast.serving.dependencies import PortfolioDep, authorized
from slipcast.serving.routers.milestones import NOT_MODIFIED, cached, not_modified
from slipcast.serving.schemas import ProjectList

router = APIRouter(prefix="/v1/projects", tags=["projects"], dependencies=[Depends(authorized)])


@router.get("", response_model=ProjectList, responses=NOT_MODIFIED)
def projects(request: Request, response: Response, state: PortfolioDep):
    """Every project of the store as of the latest refresh."""
    if cached(request, response, state):
        return not_modified(response)
    return ProjectList(items=state.projects, as_of=state.as_of, state=state.version)
