"""The assistant interface: an MCP server (the official SDK's ``MCPServer``) whose tools answer
from the service's live state with the functions the REST routes call: the riskiest open
milestones, one milestone with the reasons behind its forecast, its history, a what-if, the
model's health, a program and a program's what-if. Each answer is structured (the API's own
records) and carries a link to the page showing what it answered; a bad argument comes back as a
tool error carrying the API's message for it.

``create_app`` serves it at ``/mcp`` (streamable HTTP, stateless, answered as JSON, so any worker
answers any request) behind the REST API's keys (``Endpoint``); ``slipcast mcp`` runs it over
stdio for a desktop assistant (``run_stdio``). See docs/architecture.md, "The assistant
interface (MCP)".
"""

# no ``from __future__ import annotations``: the SDK reads each tool's signature for its schema,
# and an annotation left as text would be evaluated where the tool's closure cannot be seen

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, TypeVar

import pandas as pd
from fastapi import HTTPException
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from slipcast import __version__
from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.ingest.tables import read_tables
from slipcast.live.metrics import Metrics
from slipcast.live.portfolio import Portfolio
from slipcast.live.records import HistoryPoint, MilestoneState, ProgramState, milestone_path, program_path
from slipcast.live.requests import request_for
from slipcast.live.state import LiveState
from slipcast.scoring.forecast import model_ref
from slipcast.scoring.model_store import ModelStore
from slipcast.scoring.records import ModelRef, TicketForecast, When
from slipcast.serving.dependencies import REFUSED, Clock, key_accepted, utc_now, why_none
from slipcast.serving.routers.forecasts import compared
from slipcast.serving.routers.milestones import open_milestone, selected
from slipcast.serving.routers.model import described
from slipcast.serving.routers.programs import changed, open_program
from slipcast.serving.schemas import (
    Change,
    ForecastRequest,
    MilestoneDeadline,
    MilestoneSlip,
    ModelInfo,
    ProgramWhatIfRequest,
    ProgramWhatIfResponse,
    ScopeCut,
    WhatIfRequest,
    WhatIfResponse,
)

INSTRUCTIONS = (
    "Slipcast forecasts the chance that a milestone (a release, a sprint, a fix version) slips past its due date, "
    "calibrated on the team's own history, and the chance that a program across teams lands. Start with at_risk "
    "to find the milestones most likely to slip, then milestone for one of them: its chance, the reasons in words, "
    "the dates by which it is likely done and its riskiest tickets. what_if asks what a new due date, a smaller "
    "scope or more people would change. model_health says how far the forecasts can be trusted. Quote the page "
    "link of each answer so that people can open it.")
RISKIEST_TICKETS = 5  # the open tickets a milestone's answer lists, riskiest first
T = TypeVar("T")


class Linked(BaseModel):
    page: str = Field(description="The page showing what this answered; give it to the person asking.")


class MilestoneBrief(BaseModel):
    """An open milestone in a list: its forecast in brief."""

    milestone_id: str
    project: str
    name: str | None
    due_at: When | None
    status: str
    probability: float | None = Field(description="Chance that it slips past its due date (null: none served).")
    risk_band: str | None
    change_7d: float | None = Field(description="Change of that chance over the last 7 days.")
    when_85: When | None = Field(description="The date by which it is done with an 85 % chance.")
    reason: str | None = Field(description="The factors that move the forecast, in words.")
    page: str


class AtRiskAnswer(Linked):
    as_of: When = Field(description="The time the live state forecasts as of.")
    total: int = Field(description="Open milestones matching the filters (all of them, not only those listed).")
    milestones: list[MilestoneBrief] = Field(description="Riskiest first.")


class MilestoneAnswer(MilestoneState, Linked):
    riskiest_tickets: list[TicketForecast] = Field(
        description=f"Its open tickets most likely not done by the due date (at most {RISKIEST_TICKETS}).")
    open_tickets: int = Field(description="All its open tickets the ticket model forecast.")


class HistoryAnswer(Linked):
    milestone_id: str
    model: ModelRef = Field(description="The model every point is scored with (the one serving now).")
    points: list[HistoryPoint] = Field(description="One per day, each from what was known that day, oldest first.")


class WhatIfAnswer(WhatIfResponse, Linked):
    milestone_id: str
    change: Change = Field(description="The change made at the state's as_of.")


class ModelHealth(ModelInfo, Linked):
    pass


class ProgramAnswer(ProgramState, Linked):
    pass


class ProgramWhatIfAnswer(ProgramWhatIfResponse, Linked):
    program_id: str


def live_state(settings: Settings, store: ModelStore, clock: Clock = utc_now, metrics: Metrics | None = None
               ) -> LiveState:
    """The live state of ``settings``'s store, as of ``serving.as_of`` where that fixes the time,
    else of ``clock``: the service's and ``slipcast mcp``'s."""
    fixed = settings.serving.as_of
    return LiveState(settings, store, clock if fixed is None else (lambda: fixed), metrics)


def answered(function: Callable[[], T]) -> T:
    """``function()``, where what the API answers with a 4xx or 503 is raised as a tool error with
    the API's message: a ``FieldError`` and pydantic's errors as ``loc: message`` (the 422's ``loc``
    and ``msg``), an ``HTTPException`` (a 404, a 503) as its detail."""
    try:
        return function()
    except FieldError as exc:
        raise ToolError(f"{'.'.join(map(str, exc.loc))}: {exc.message}") from None
    except ValidationError as exc:
        raise ToolError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                  for e in exc.errors())) from None
    except HTTPException as exc:
        raise ToolError(str(exc.detail)) from None


def assistant(live: LiveState, store: ModelStore, settings: Settings) -> MCPServer:
    """The MCP server whose tools answer from ``live`` (and the models of ``store``)."""
    server: MCPServer = MCPServer("slipcast", title="Slipcast", version=__version__, instructions=INSTRUCTIONS,
                                    log_level="WARNING")  # the SDK configures logging where nothing has
    bands = list(settings.serving.risk_bands)

    def current() -> Portfolio:
        state = live.get()
        if state is None:
            raise ToolError(f"no live state: {why_none(live)}")
        return state

    def link(ctx: Context, path: str = "") -> str:
        """The page at ``path`` (relative to the page's root): under ``serving.page_url``, else
        the address the request came to, else this service's own (stdio)."""
        base = settings.serving.page_url
        if base is None:
            request = ctx.request_context.request
            base = (str(request.base_url) if isinstance(request, Request)
                    else f"http://{settings.serving.host}:{settings.serving.port}/")
        return base.rstrip("/") + "/" + path

    @server.tool(title="Milestones at risk")
    def at_risk(ctx: Context,
                project: Annotated[str | None, Field(description="Only this project (team); all where omitted.")] = None,
                band: Annotated[str | None, Field(description=f"Only this risk band: one of {bands}.")] = None,
                limit: Annotated[int, Field(ge=1, le=500, description="At most this many milestones.")] = 10,
                ) -> AtRiskAnswer:
        """The open milestones most likely to slip past their due dates, riskiest first: each one's
        chance of slipping, risk band, due date, the change over the last week, the date by which it
        is done with an 85 % chance, and the reasons in words. Use a milestone_id with `milestone`
        for the whole story."""
        state = current()
        if band is not None and band not in bands:
            raise ToolError(f"band: unknown risk band {band!r}; one of {bands}")
        if project is not None and project not in {p.project for p in state.projects}:
            raise ToolError(f"project: no project {project!r} in the store; one of {sorted(p.project for p in state.projects)}")
        items = selected(state, None if project is None else [project], band=band)
        brief = set(MilestoneBrief.model_fields) - {"page"}
        return AtRiskAnswer(as_of=state.as_of, total=len(items), page=link(ctx), milestones=[
            MilestoneBrief(**m.model_dump(include=brief), page=link(ctx, milestone_path(m.milestone_id)))
            for m in items[:limit]])

    @server.tool(title="One milestone's forecast")
    def milestone(ctx: Context, id: Annotated[str, Field(description="The milestone's id (as at_risk lists it).")]
                  ) -> MilestoneAnswer:
        """One open milestone: its chance of slipping past the due date, risk band and basis (the
        model's own forecast, or the base rate where the model has no skill at that horizon), the
        factors behind it each in a sentence (`factors`, `reason`), the dates by which it is done
        with a 50 % and an 85 % chance (`when_50`, `when_85`), the change over the last 7 days, and
        its riskiest open tickets."""
        state = current()
        found = answered(lambda: open_milestone(state, id))
        tickets = state.tickets.get(id, [])
        return MilestoneAnswer(**found.model_dump(), riskiest_tickets=tickets[:RISKIEST_TICKETS],
                               open_tickets=len(tickets), page=link(ctx, milestone_path(id)))

    @server.tool(title="A milestone's history")
    def history(ctx: Context, id: Annotated[str, Field(description="The milestone's id.")],
                days: Annotated[int, Field(ge=1, le=400, description="The latest this many days.")] = 30,
                ) -> HistoryAnswer:
        """How one open milestone's chance of slipping went day by day (the latest `days`), each day
        forecast from what was known that day by the model serving now, with the due date known
        then: when it turned risky, and whether a replan helped."""
        state = current()
        answered(lambda: open_milestone(state, id))
        return HistoryAnswer(milestone_id=id, model=model_ref(state.model), points=state.daily(id, settings)[-days:],
                             page=link(ctx, milestone_path(id)))

    @server.tool(title="What if, for a milestone")
    def what_if(ctx: Context, id: Annotated[str, Field(description="The milestone's id.")],
                due: Annotated[datetime | None, Field(description="A new due date (ISO 8601 with a time zone).")] = None,
                scope: Annotated[list[str] | None, Field(description="Ticket ids taken out of the milestone now.")] = None,
                people: Annotated[int, Field(ge=0, le=100, description="People joining now, each taking open tickets.")] = 0,
                ) -> WhatIfAnswer:
        """One open milestone's chance of slipping as it is and with a change made now, side by side:
        a new due date, tickets taken out of its scope, people joining. The milestone is sent as the
        store holds it to the what-if endpoint's own forecast (POST /v1/forecasts/what-if)."""
        state = current()
        answered(lambda: open_milestone(state, id))
        if due is None and not scope and not people:
            raise ToolError("nothing to change: give due, scope or people")
        location = live.store
        assert location is not None  # a state is built from a store
        as_of = pd.Timestamp(state.as_of)

        def asked() -> WhatIfAnswer:
            body = request_for(read_tables(location), id, as_of, state.history.outcomes)
            req = WhatIfRequest(forecast=ForecastRequest.model_validate(body),
                                change=Change(due_at=due, remove_tickets=scope or [], add_people=people))
            out = compared(req, state.model, settings, state.as_of)
            return WhatIfAnswer(milestone_id=id, change=req.change, before=out.before, after=out.after,
                                delta=out.delta, page=link(ctx, milestone_path(id)))

        return answered(asked)

    @server.tool(title="Model health")
    def model_health(ctx: Context) -> ModelHealth:
        """How far the forecasts can be trusted: the serving model's backtest (Brier skill, AUC,
        calibration error) beside the baselines', the horizons where its skill guard serves the base
        rate instead (`guard`), how its published forecasts came true live (`monitor`, from the
        last `slipcast monitor`), and whether the model and the ledger are healthy."""
        info = answered(lambda: described(store, settings, live))
        return ModelHealth(**info.model_dump(), page=link(ctx))

    @server.tool(title="One program's forecast")
    def program(ctx: Context, id: Annotated[str, Field(description="The program's id (an epic, a shared milestone "
                                                                   "name, or a declared program).")]) -> ProgramAnswer:
        """A program across teams that lands when its last milestone does: its chance of landing
        (beside what multiplying its milestones' chances would say), the dates by which it lands with
        a 50 % and an 85 % chance, the critical path, its milestones by criticality with their
        ripple, the dependencies between them and the assumptions made."""
        state = current()
        found = answered(lambda: open_program(state, id))
        return ProgramAnswer(**found.model_dump(), page=link(ctx, program_path(id)))

    @server.tool(title="What if, for a program")
    def program_what_if(
            ctx: Context, id: Annotated[str, Field(description="The program's id.")],
            slip: Annotated[list[MilestoneSlip] | None, Field(description="Milestones finishing some days later (or "
                                                                           "sooner); what waits on them moves too.")] = None,
            target_at: Annotated[datetime | None, Field(description="A new target for the program.")] = None,
            deadlines: Annotated[list[MilestoneDeadline] | None, Field(description="New deadlines of milestones.")] = None,
            cut_scope: Annotated[list[ScopeCut] | None, Field(description="Tickets taken out of milestones.")] = None,
            ) -> ProgramWhatIfAnswer:
        """A program's chance of landing as forecast and with changes made now, on the same draws (the
        difference is the changes'): milestones slipping, a new target, new deadlines, scope cut
        (POST /v1/programs/{id}/what-if)."""
        state = current()

        def asked() -> ProgramWhatIfAnswer:
            before = open_program(state, id)
            req = ProgramWhatIfRequest(slip=slip or [], target_at=target_at, deadlines=deadlines or [],
                                       cut_scope=cut_scope or [])
            out = changed(state, before, req, settings)
            return ProgramWhatIfAnswer(**out.model_dump(), program_id=id, page=link(ctx, program_path(id)))

        return answered(asked)

    return server


class Endpoint:
    """``/mcp``: the assistant over streamable HTTP (stateless, JSON answers), each request with a
    key the REST API accepts (``X-API-Key``; 401 otherwise). ``running`` is the SDK's session
    manager's life, inside the app's; each start makes a new one (the SDK's runs once), so an app
    may be started again."""

    def __init__(self, server: MCPServer, keys: list[bytes]):
        self.server, self.keys = server, keys

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        # the keys guard it as they guard the REST API, which answers any Host; a page of
        # another origin cannot send the X-API-Key header without the CORS settings allowing it
        self.server.streamable_http_app(stateless_http=True, json_response=True,
                                        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not key_accepted(self.keys, Headers(scope=scope).get("x-api-key")):
            await JSONResponse({"detail": REFUSED}, 401, headers={"WWW-Authenticate": "API-Key"})(scope, receive, send)
            return
        await self.server.session_manager.handle_request(scope, receive, send)


def run_stdio(settings: Settings) -> None:
    """The assistant over standard input and output (``slipcast mcp``), answering from the live
    state of ``serving.store``, built before the first message is read."""
    store = ModelStore(settings)
    live = live_state(settings, store)
    store.start()
    live.start()
    try:
        assistant(live, store, settings).run("stdio")
    finally:
        live.stop()
        store.stop()
