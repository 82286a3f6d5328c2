"""The open milestones of the store, answered from the live state (``live.portfolio``):
the list with filters, sorting and paging, one milestone with its tickets, its daily history."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from slipcast.core.vocabulary import MilestoneKind
from slipcast.live.portfolio import Portfolio
from slipcast.scoring.forecast import model_ref
from slipcast.serving.dependencies import PortfolioDep, SettingsDep, authorized
from slipcast.serving.schemas import MilestoneDetail, MilestoneHistory, MilestonePage

router = APIRouter(prefix="/v1/milestones", tags=["milestones"], dependencies=[Depends(authorized)])
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "unchanged since the ETag given in If-None-Match"}}
SORTS = {"probability": lambda m: -1.0 if m.probability is None else m.probability,
         "due_at": lambda m: m.due_at.timestamp() if m.due_at is not None else float("inf"),
         "change_7d": lambda m: m.change_7d if m.change_7d is not None else 0.0,
         "milestone_id": lambda m: m.milestone_id}


def cached(request: Request, response: Response, state: Portfolio, also: str = "") -> bool:
    """Set the ETag (the state's version, the request's query, and ``also``: anything else the
    answer depends on) and ``Cache-Control: no-cache`` (revalidate every time: the answer changes
    at each refresh); True where the client's copy is current."""
    key = f"{state.version}|{request.url.path}|{request.url.query}|{also}"
    tag = '"' + hashlib.sha256(key.encode()).hexdigest()[:24] + '"'
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = "no-cache"
    return tag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}


def not_modified(response: Response) -> Response:
    return Response(status_code=304, headers={k: response.headers[k] for k in ("ETag", "Cache-Control")})


@router.get("", response_model=MilestonePage, responses=NOT_MODIFIED)
def list_milestones(request: Request, response: Response, state: PortfolioDep,
                    project: Annotated[list[str] | None, Query(description="Only these projects (repeatable).")] = None,
                    kind: MilestoneKind | None = None,
                    band: Annotated[str | None, Query(description="Only this risk band.")] = None,
                    sort: Literal["probability", "-probability", "due_at", "-due_at", "change_7d", "-change_7d",
                                  "milestone_id", "-milestone_id"] = "-probability",
                    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50):
    """The store's open milestones as of the latest refresh: probability, band, due date, change
    over 7 days, top drivers and basis; riskiest first unless ``sort`` says otherwise."""
    if cached(request, response, state):
        return not_modified(response)
    items = [m for m in state.milestones if (not project or m.project in project) and (kind is None or m.kind == kind)
             and (band is None or m.risk_band == band)]
    items.sort(key=SORTS[sort.lstrip("-")], reverse=sort.startswith("-"))
    return MilestonePage(items=items[offset:offset + limit], total=len(items), offset=offset, limit=limit,
                         as_of=state.as_of, state=state.version)


def _one(state: Portfolio, milestone_id: str):
    found = state.get(milestone_id)
    if found is None:
        raise HTTPException(404, f"no open milestone {milestone_id!r} in the store as of {state.as_of.isoformat()}")
    return found


@router.get("/{milestone_id}", response_model=MilestoneDetail, responses=NOT_MODIFIED)
async def milestone(milestone_id: str, request: Request, response: Response, state: PortfolioDep):
    """One open milestone: its forecast, features and its open tickets' risks, riskiest first.
    Answered on the event loop: the body is encoded once per state, then only looked up."""
    found = _one(state, milestone_id)
    if cached(request, response, state):
        return not_modified(response)
    body = state.encoded.get(milestone_id)
    if body is None:  # encoded once per state: the answer changes only at a refresh
        body = MilestoneDetail(**found.model_dump(), features=state.features[milestone_id],
                               tickets=state.tickets.get(milestone_id, [])).model_dump_json().encode()
        state.encoded[milestone_id] = body
    return Response(body, media_type="application/json", headers=dict(response.headers))


@router.get("/{milestone_id}/history", response_model=MilestoneHistory, responses=NOT_MODIFIED)
def milestone_history(milestone_id: str, request: Request, response: Response, state: PortfolioDep,
                      settings: SettingsDep):
    """One point per day from the milestone's start to now: the probability, band and due date,
    each from what was known that day, scored by the model serving now."""
    _one(state, milestone_id)
    if cached(request, response, state):
        return not_modified(response)
    return MilestoneHistory(milestone_id=milestone_id, model=model_ref(state.model),
                            points=state.daily(milestone_id, settings))
