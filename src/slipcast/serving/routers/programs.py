"""Programs across teams, answered from the live state (``live.portfolio``): the list with
filters and paging, one program's joint forecast, its daily history and a what-if; and programs
declared through the API (``PUT``, ``DELETE``), kept by ``live.declarations`` and forecast from
the next refresh on, which the declaration itself triggers.

A program is addressed by its id, percent-decoded, whatever it holds ('/' too), as milestones are
(``routers.milestones``): a final path segment written ``history`` (GET) or ``what-if`` (POST) asks
for that; an id that itself ends so is sent with that slash encoded (``%2F``), as the page and
alerts write every id (``live.records.program_path``; docs/architecture.md, "Programs in the API")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import ValidationError

from slipcast.core.errors import FieldError
from slipcast.core.settings import ProgramDeclaration, Settings
from slipcast.core.vocabulary import ProgramSource
from slipcast.live.declarations import Declarations, DeclarationsError, change_declarations
from slipcast.live.portfolio import Portfolio
from slipcast.live.records import ProgramState
from slipcast.scoring.forecast import model_ref
from slipcast.serving.dependencies import PortfolioDep, SettingsDep, authorized
from slipcast.serving.reads import NOT_MODIFIED, cached, ends_in, not_modified
from slipcast.serving.schemas import (
    ProgramHistory,
    ProgramIn,
    ProgramPage,
    ProgramWhatIfRequest,
    ProgramWhatIfResponse,
)
from slipcast.serving.what_if import program_change

router = APIRouter(prefix="/v1/programs", tags=["programs"], dependencies=[Depends(authorized)])
SORTS = {"probability": lambda p: -1.0 if p.probability is None else p.probability,
         "done_85": lambda p: p.done_85.timestamp() if p.done_85 is not None else float("inf"),
         "program_id": lambda p: p.program_id}
NOT_FOUND: dict[int | str, dict] = {404: {"description": "no program of that id with an open milestone"}}
ProgramId = Annotated[str, Path(description="The program's id, percent-encoded; it may hold '/' (sent as is or as "
                                            "%2F), and one ending in '/history' or '/what-if' is sent with that "
                                            "slash as %2F.")]


@router.get("", response_model=ProgramPage, responses=NOT_MODIFIED)
def list_programs(request: Request, response: Response, state: PortfolioDep,
                  band: Annotated[str | None, Query(description="Only this risk band.")] = None,
                  source: Annotated[ProgramSource | None, Query(description="Only programs found so.")] = None,
                  sort: Literal["probability", "-probability", "done_85", "-done_85", "program_id",
                                "-program_id"] = "-probability",
                  offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50):
    """The programs with an open milestone as of the latest refresh (from epics, shared milestone
    names and declarations): the chance that every open milestone is done by its deadline, band,
    dates, open milestones and the most critical one; riskiest first unless ``sort`` says otherwise."""
    if cached(request, response, state):
        return not_modified(response)
    items = [p for p in state.programs if (band is None or p.risk_band == band) and (source is None or p.source == source)]
    items.sort(key=SORTS[sort.lstrip("-")], reverse=sort.startswith("-"))
    return ProgramPage(items=items[offset:offset + limit], total=len(items), offset=offset, limit=limit,
                       as_of=state.as_of, state=state.version)


def open_program(state: Portfolio, program_id: str) -> ProgramState:
    """The program of that id with an open milestone, or 404."""
    found = state.program(program_id)
    if found is None:
        raise HTTPException(404, f"no program {program_id!r} with an open milestone as of {state.as_of.isoformat()}")
    return found


def _detail(program_id: str, request: Request, response: Response, state: Portfolio) -> Response:
    """One program's answer, encoded here (the history's route answers it too, for an id ending in
    ``/history``)."""
    found = open_program(state, program_id)
    if cached(request, response, state):
        return not_modified(response)
    return Response(found.model_dump_json(), media_type="application/json", headers=dict(response.headers))


# the sub-resources' routes first: a path ending in /history or /what-if is theirs, unless that
# last segment is the id's own (``ends_in``); the id is the rest, slashes and all
@router.get("/{program_id:path}/history", response_model=ProgramHistory, responses={**NOT_MODIFIED, **NOT_FOUND})
def program_history(program_id: ProgramId, request: Request, response: Response, state: PortfolioDep,
                    settings: SettingsDep):
    """One point per day from the program's first milestone's start to the state's as_of: its
    chance, band and dates, each from what was known that day, by the model serving now, with
    fewer draws than the live forecast (`draws`). The id is percent-decoded and may hold '/'; one
    that ends in '/history' itself is sent with that slash as %2F. Computed once per state."""
    if not ends_in(request, "history"):  # ".../x%2Fhistory": the program whose id ends in /history
        return _detail(f"{program_id}/history", request, response, state)
    open_program(state, program_id)
    if cached(request, response, state):
        return not_modified(response)
    body = ProgramHistory(program_id=program_id, model=model_ref(state.model), draws=settings.programs.history_draws,
                          points=state.program_history(program_id, settings)).model_dump_json().encode()
    return Response(body, media_type="application/json", headers=dict(response.headers))


@router.post("/{program_id:path}/what-if", response_model=ProgramWhatIfResponse, responses=NOT_FOUND)
def program_what_if(program_id: ProgramId, req: ProgramWhatIfRequest, request: Request, state: PortfolioDep,
                    settings: SettingsDep) -> ProgramWhatIfResponse:
    """The program as forecast and with changes applied at the state's as_of, side by side, on the
    same draws: milestones slipped by some days (what waits on them moves with them), a new target,
    new deadlines of milestones, tickets cut from milestones' scope (their chances asked again
    without them). The id is percent-decoded and may hold '/'."""
    if not ends_in(request, "what-if"):  # ".../x%2Fwhat-if": the program itself, which takes no POST
        raise HTTPException(405, "a program takes GET, PUT and DELETE; POST its /what-if",
                            headers={"Allow": "GET, PUT, DELETE"})
    return changed(state, open_program(state, program_id), req, settings)


def changed(state: Portfolio, before: ProgramState, req: ProgramWhatIfRequest, settings: Settings
            ) -> ProgramWhatIfResponse:
    """The program ``before`` (as ``state`` forecasts it) and with the changes ``req`` asks for,
    on the same draws; a ``FieldError`` names a change the program refuses. The what-if route's
    answer, and the assistant's ``program_what_if`` (``serving.assistant``)."""
    change = program_change(req, before, lambda m: state.history.committed(m, state.as_of))
    after = state.what_if(before.program_id, change, settings, req.target_at)
    delta = None if before.chance is None or after.chance is None else round(after.chance - before.chance, 4)
    return ProgramWhatIfResponse(before=before, after=after, delta=delta)


@router.get("/{program_id:path}", response_model=ProgramState, responses={**NOT_MODIFIED, **NOT_FOUND})
def program(program_id: ProgramId, request: Request, response: Response, state: PortfolioDep):
    """One program with an open milestone: its chance of landing (and what the independent product
    would say), its 50 % and 85 % dates, the critical path, its milestones with their criticality
    and ripple, the dependencies with the tickets behind them, cycles and the assumptions made.
    The id is percent-decoded and may hold '/'; one that ends in '/history' is sent with that
    slash as %2F."""
    return _detail(program_id, request, response, state)


def _declared(settings: Settings, change: Callable[[Declarations], Declarations]) -> Declarations:
    """The API's declarations changed by ``change``; 503 where they cannot be written."""
    try:
        return change_declarations(settings, change)
    except DeclarationsError as exc:
        raise HTTPException(503, str(exc)) from None


@router.put("/{program_id:path}", response_model=ProgramDeclaration,
            responses={201: {"description": "declared (a new program)", "model": ProgramDeclaration},
                       409: {"description": "the settings declare a program of that id"}})
def declare_program(program_id: ProgramId, body: ProgramIn, response: Response, settings: SettingsDep) -> ProgramDeclaration:
    """Declare a program (its milestones, name and target), or replace the one the API declared
    under this id. Kept in the service's work folder for every worker and restart; the live state is
    rebuilt with it within `serving.reload_seconds`, and it is listed from then on while one of its
    milestones is open. A declared id comes before a tracker's program of the same id. Answers 201
    for a new program, 200 for a replaced one."""
    if any(d.program_id == program_id for d in settings.programs.declared):
        raise HTTPException(409, f"program {program_id!r} is declared in the settings (programs.declared): change it "
                                 "there")
    try:
        declared = ProgramDeclaration(program_id=program_id, **body.model_dump())
    except ValidationError as exc:  # the id, from the path: the body passed its own checks
        raise FieldError(("path", "program_id"), exc.errors()[0]["msg"]) from None
    known: list[bool] = []

    def put(current: Declarations) -> Declarations:
        known.append(current.program(program_id) is not None)
        return current.with_program(declared)

    _declared(settings, put)
    response.status_code = 200 if known[0] else 201
    return declared


@router.delete("/{program_id:path}", status_code=204,
               responses={404: {"description": "the API declared no program of that id"}})
def forget_program(program_id: ProgramId, settings: SettingsDep) -> Response:
    """Take back a program the API declared; the live state is rebuilt without it within
    `serving.reload_seconds`. A program the tracker or the settings hold stays theirs."""
    known: list[bool] = []

    def delete(current: Declarations) -> Declarations:
        known.append(current.program(program_id) is not None)
        return current.without_program(program_id)

    _declared(settings, delete)
    if not known[0]:
        raise HTTPException(404, f"no program {program_id!r} declared through the API")
    return Response(status_code=204)
