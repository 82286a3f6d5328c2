"""The open milestones of the store, answered from the live state (``live.portfolio``):
the list with filters, sorting and paging, one milestone with its tickets, its daily history.

A milestone is addressed by its id, percent-decoded, whatever it holds: '/' (GitHub's
``gh-owner/repo-ms-3``), '%', spaces, any script. A final path segment written ``history`` asks
for the history (``reads.ends_in``); an id that itself ends in ``/history`` is asked for with
that slash encoded (``%2F``), as the page and alerts write every id (``live.records.milestone_path``;
docs/architecture.md, "Live state")."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from slipcast.core.vocabulary import MilestoneKind
from slipcast.live.portfolio import Portfolio
from slipcast.live.records import MilestoneState
from slipcast.scoring.forecast import model_ref
from slipcast.serving.dependencies import PortfolioDep, SettingsDep, authorized
from slipcast.serving.reads import NOT_MODIFIED, cached, ends_in, not_modified
from slipcast.serving.schemas import MilestoneDetail, MilestoneHistory, MilestonePage

router = APIRouter(prefix="/v1/milestones", tags=["milestones"], dependencies=[Depends(authorized)])
SORTS = {"probability": lambda m: -1.0 if m.probability is None else m.probability,
         "due_at": lambda m: m.due_at.timestamp() if m.due_at is not None else float("inf"),
         "change_7d": lambda m: m.change_7d if m.change_7d is not None else 0.0,
         "milestone_id": lambda m: m.milestone_id}


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
    items = selected(state, project, kind, band, sort)
    return MilestonePage(items=items[offset:offset + limit], total=len(items), offset=offset, limit=limit,
                         as_of=state.as_of, state=state.version)


def selected(state: Portfolio, project: list[str] | None = None, kind: MilestoneKind | None = None,
             band: str | None = None, sort: str = "-probability") -> list[MilestoneState]:
    """The open milestones of ``state`` in these projects, of this kind and band, in the order
    ``sort`` names (a key of ``SORTS``, ``-`` first for descending): what the list answers, and
    the assistant's ``at_risk`` (``serving.assistant``)."""
    items = [m for m in state.milestones if (not project or m.project in project) and (kind is None or m.kind == kind)
             and (band is None or m.risk_band == band)]
    items.sort(key=SORTS[sort.lstrip("-")], reverse=sort.startswith("-"))
    return items


def open_milestone(state: Portfolio, milestone_id: str) -> MilestoneState:
    """The open milestone of that id, or 404."""
    found = state.get(milestone_id)
    if found is None:
        raise HTTPException(404, f"no open milestone {milestone_id!r} in the store as of {state.as_of.isoformat()}")
    return found


def _detail(milestone_id: str, request: Request, response: Response, state: Portfolio) -> Response:
    """One open milestone's answer, its body encoded once per state, then only looked up."""
    found = open_milestone(state, milestone_id)
    if cached(request, response, state):
        return not_modified(response)
    body = state.encoded.get(milestone_id)
    if body is None:  # encoded once per state: the answer changes only at a refresh
        body = MilestoneDetail(**found.model_dump(), features=state.features[milestone_id],
                               tickets=state.tickets.get(milestone_id, [])).model_dump_json().encode()
        state.encoded[milestone_id] = body
    return Response(body, media_type="application/json", headers=dict(response.headers))


# the history's route first: a path ending in /history is the history's, unless that /history is
# the id's own (``ends_in``); the id is the rest, slashes and all
@router.get("/{milestone_id:path}/history", response_model=MilestoneHistory, responses=NOT_MODIFIED)
def milestone_history(milestone_id: str, request: Request, response: Response, state: PortfolioDep,
                      settings: SettingsDep):
    """One point per day from the milestone's start to now: the probability, band and due date,
    each from what was known that day, scored by the model serving now. The id is percent-decoded
    and may hold '/'; one that ends in '/history' itself is sent with that slash as %2F."""
    if not ends_in(request, "history"):  # ".../x%2Fhistory": the milestone whose id ends in /history
        return _detail(f"{milestone_id}/history", request, response, state)
    open_milestone(state, milestone_id)
    if cached(request, response, state):
        return not_modified(response)
    return MilestoneHistory(milestone_id=milestone_id, model=model_ref(state.model),
                            points=state.daily(milestone_id, settings))


@router.get("/{milestone_id:path}", response_model=MilestoneDetail, responses=NOT_MODIFIED)
async def milestone(milestone_id: str, request: Request, response: Response, state: PortfolioDep):
    """One open milestone: its forecast, features and its open tickets' risks, riskiest first.
    The id is percent-decoded and may hold '/' (GitHub's `gh-owner/repo-ms-3`); one that ends in
    '/history' is sent with that slash as %2F. Answered on the event loop: the body is encoded once
    per state, then only looked up."""
    return _detail(milestone_id, request, response, state)
