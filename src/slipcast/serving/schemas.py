"""Request and response schemas of the HTTP API (v1). Times must carry a UTC offset."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema, model_validator

from slipcast.core.contracts import MAX_STORY_POINTS, YEARS
from slipcast.core.settings import DependencyDeclaration, ProgramSpec
from slipcast.core.vocabulary import EventField, LinkKind, MilestoneKind, TicketStatus
from slipcast.live.records import (
    HistoryPoint,
    MilestoneState,
    ProgramHistoryPoint,
    ProgramState,
    ProgramSummary,
    ProjectState,
)
from slipcast.scoring.records import Forecast, ModelRef, TicketForecast, When

Id = Annotated[str, Field(min_length=1, max_length=200)]
Label = Annotated[str, Field(max_length=100)]  # a ticket's type or priority
Person = Annotated[str, Field(max_length=200)]
Points = Annotated[float, Field(ge=0, le=MAX_STORY_POINTS)]


# a time in a columns request, as sent: read column by column (``serving.request_state.read_times``), to
# the same rules as ``When``
TimeText = Annotated[StrictStr, WithJsonSchema({"type": "string", "format": "date-time",
                                                "description": f"With a UTC offset, in {YEARS}."})]


class Strict(BaseModel):
    """A request body: unknown fields refused, vocabulary fields held as their words."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)


class MilestoneIn(Strict):
    milestone_id: str = Field(min_length=1, max_length=200)
    project: str = Field(min_length=1, max_length=200, description="Team or project the milestone belongs to.")
    name: str | None = Field(default=None, max_length=500)
    kind: MilestoneKind = Field(default=MilestoneKind.RELEASE, validate_default=True)
    start_at: When
    due_at: When
    completed_at: When | None = None


class TicketIn(Strict):
    ticket_id: str = Field(min_length=1, max_length=200)
    project: str | None = Field(default=None, max_length=200, description="Defaults to the milestone's project.")
    type: str | None = Field(default=None, max_length=100)
    priority: str | None = Field(default=None, max_length=100)
    created_at: When
    resolved_at: When | None = None
    story_points: float | None = Field(default=None, ge=0, le=MAX_STORY_POINTS)
    assignee: str | None = Field(default=None, max_length=200)
    status: TicketStatus
    milestone_id: str | None = Field(default=None, description="Null for the team's tickets in no milestone.")


class EventIn(Strict):
    """One change of a ticket (``ticket_id``) or of the milestone (``milestone_id``, for due_at)."""

    ticket_id: str | None = None
    milestone_id: str | None = None
    at: When
    field: EventField
    from_value: str | None = Field(default=None, description="The value before the change, as to_value.")
    to_value: str | None = Field(
        default=None, description="The value after the change: a status category (status), a milestone_id "
                                  "(milestone; null when the ticket left it), an ISO-8601 time (due_at; UTC where "
                                  "it has no offset), a number (story_points), or free text.")


class LinkIn(Strict):
    from_ticket: str
    to_ticket: str
    kind: LinkKind
    created_at: When | None = None


class PastMilestone(Strict):
    known_at: When = Field(description="When the outcome became known (due date or completion).")
    slipped: bool


class ForecastRequest(Strict):
    """One milestone's state now: its tickets (and the team's recent ones), events and links."""

    milestone: MilestoneIn
    tickets: list[TicketIn] = Field(max_length=50000)
    events: list[EventIn] = Field(default_factory=list, max_length=500000)
    links: list[LinkIn] = Field(default_factory=list, max_length=50000)
    past_milestones: list[PastMilestone] = Field(default_factory=list, max_length=10000)
    as_of: When | None = Field(default=None, description="Defaults to the time of the request.")
    explain: bool = Field(default=True, description="Compute the drivers behind the forecast.")


class BatchRequest(Strict):
    items: list[ForecastRequest] = Field(min_length=1)


class _Columns(Strict):
    """One table as columns: lists of equal length, row i of the table at position i of each;
    an optional column left out is null in every row."""

    @model_validator(mode="after")
    def _same_length(self):
        given = [(name, len(values)) for name, values in self if values is not None]
        first, n = given[0]
        for name, length in given[1:]:
            if length != n:
                raise ValueError(f"column {name} has {length} values where {first} has {n}: a table's columns "
                                 "are of equal length")
        return self

    def __len__(self) -> int:
        return len(next(values for _, values in self if values is not None))


class MilestoneColumns(_Columns):
    milestone_id: list[Id]
    project: list[Id]
    name: list[Annotated[str, Field(max_length=500)] | None] | None = None
    kind: list[MilestoneKind | None] | None = Field(default=None, description="release where null or left out.")
    start_at: list[TimeText]
    due_at: list[TimeText]
    completed_at: list[TimeText | None] | None = None


class TicketColumns(_Columns):
    ticket_id: list[Id]
    project: list[Id | None] | None = Field(default=None, description="Where null, its milestone's project.")
    type: list[Label | None] | None = None
    priority: list[Label | None] | None = None
    created_at: list[TimeText]
    resolved_at: list[TimeText | None] | None = None
    story_points: list[Points | None] | None = None
    assignee: list[Person | None] | None = None
    status: list[TicketStatus]
    milestone_id: list[Id | None] | None = Field(default=None, description="Null for tickets in no milestone.")


class EventColumns(_Columns):
    """Changes of tickets (``ticket_id``) or of milestones (``milestone_id``, for due_at); as
    ``EventIn``, column by column."""

    ticket_id: list[Id | None] | None = None
    milestone_id: list[Id | None] | None = None
    at: list[TimeText]
    field: list[EventField]
    from_value: list[str | None] | None = None
    to_value: list[str | None] | None = None


class LinkColumns(_Columns):
    from_ticket: list[Id]
    to_ticket: list[Id]
    kind: list[LinkKind]
    created_at: list[TimeText | None] | None = None


class OutcomeColumns(_Columns):
    project: list[Id]
    known_at: list[TimeText] = Field(description="When the outcome became known (due date or completion).")
    slipped: list[bool]


class TablesRequest(Strict):
    """A team's state as the columns of its canonical tables (docs/architecture.md, "Requests as
    columns"): its milestones, tickets, events and links, sent once for all its milestones."""

    milestones: MilestoneColumns
    tickets: TicketColumns
    events: EventColumns | None = None
    links: LinkColumns | None = None
    past_milestones: OutcomeColumns | None = Field(
        default=None, description="Outcomes of the teams' earlier milestones, each with its project.")
    milestone_ids: list[Id] | None = Field(
        default=None, description="The milestones to forecast; by default every one started and not completed by "
                                  "as_of.")
    as_of: When | None = Field(default=None, description="Defaults to the time of the request.")
    explain: bool = Field(default=True, description="Compute the drivers behind each forecast.")


class BatchResponse(BaseModel):
    forecasts: list[Forecast]


class Change(Strict):
    remove_tickets: list[str] = Field(default_factory=list, description="Tickets taken out of the milestone.")
    add_tickets: list[TicketIn] = Field(default_factory=list, description="Tickets added to the milestone now.")
    due_at: When | None = Field(default=None, description="A new due date.")
    add_people: int = Field(default=0, ge=0, le=100, description="People joining (each takes open tickets).")


class WhatIfRequest(Strict):
    forecast: ForecastRequest
    change: Change


class WhatIfResponse(BaseModel):
    before: Forecast
    after: Forecast
    delta: float | None = Field(description="after - before probability, null if either is unavailable.")


class TicketForecasts(BaseModel):
    milestone_id: str
    as_of: When
    tickets: list[TicketForecast]
    model: ModelRef


class ModelLoad(BaseModel):
    """How the serving model stands against the registry's champion."""

    state: Literal["ok", "fallback", "missing"] = Field(
        description="ok: the champion serves; fallback: another model serves (error says why); missing: none.")
    serving: dict | None = Field(description="source and version of the model serving")
    champion_version: str | None = Field(description="the registry champion's version, when known")
    error: str | None = Field(description="why the champion does not serve, if it does not")


class LedgerStatus(BaseModel):
    """Whether the forecasts the live state publishes are recorded (docs/architecture.md, "Forecast ledger")."""

    state: Literal["ok", "failing", "off"] = Field(
        description="ok: recorded; failing: the ledger cannot be opened or written (error says why): forecasts are "
                    "served, not recorded, and the ledger is tried again at every refresh; off: no ledger, or no store.")
    error: str | None = Field(None, description="why the ledger cannot be used, if it cannot")


class ModelInfo(BaseModel):
    target: str
    model: ModelRef
    load: ModelLoad
    guard: dict = Field(default_factory=dict, description="Per horizon: the model's Brier skill, its 95 % interval, "
                                                          "and whether the base rate is served there instead.")
    project_guard: dict = Field(default_factory=dict,
                                description="Per project with enough history, its own cells by horizon: they "
                                            "decide for its milestones instead of the pooled ones.")
    features: list[dict]
    metrics: dict
    baselines: dict
    data_fingerprint: str | None
    trained_at: str | None
    loaded_at: When
    monitor: dict | None = Field(
        None, description="The last `slipcast monitor` run: when, forecasts published and with known outcomes, "
                          "their live Brier, Brier skill, ECE and AUC, thresholds broken (null before the first).")
    ledger: LedgerStatus = Field(description="Whether the live state's forecasts are being recorded.")


class MilestoneDetail(MilestoneState):
    features: dict[str, float | str | None]
    tickets: list[TicketForecast] = Field(description="Its open committed tickets, riskiest first.")


class MilestonePage(BaseModel):
    items: list[MilestoneState]
    total: int = Field(description="Milestones matching the filters, all pages.")
    offset: int
    limit: int
    as_of: When
    state: str = Field(description="The version of the state answered from (also the ETag's base).")


class MilestoneHistory(BaseModel):
    milestone_id: str
    model: ModelRef = Field(description="The model every point is scored with (the one serving now).")
    points: list[HistoryPoint] = Field(
        description="One point per day from the milestone's start, each from what was known that day.")


class ProjectList(BaseModel):
    items: list[ProjectState]
    as_of: When
    state: str


class ProgramPage(BaseModel):
    items: list[ProgramSummary]
    total: int = Field(description="Programs matching the filters, all pages.")
    offset: int
    limit: int
    as_of: When
    state: str = Field(description="The version of the state answered from (also the ETag's base).")


class ProgramHistory(BaseModel):
    program_id: str
    model: ModelRef = Field(description="The model every point is scored with (the one serving now).")
    draws: int = Field(description="Monte Carlo draws of each day (`programs.history_draws`): fewer than the live "
                                   "forecast's, so a day's chance may differ from what the live forecast said that "
                                   "day by about a point (the draws' noise).")
    points: list[ProgramHistoryPoint] = Field(
        description="One point per day from the program's first milestone's start (the latest 400 days) to the "
                    "state's as_of: the program as it stands now (its milestones and target), each day forecast "
                    "from what was known that day: its milestones open then, their chances by the model serving "
                    "now, and the dependency graph, correlations and lag as known at the start of the day's "
                    "period of `programs.history_context_days`.")


class MilestoneSlip(Strict):
    milestone_id: Id = Field(description="An open milestone of the program.")
    days: float = Field(ge=-365, le=365, description="Days it finishes later than drawn (negative: sooner); what "
                                                     "waits on it moves with it.")


class MilestoneDeadline(Strict):
    milestone_id: Id = Field(description="An open milestone of the program.")
    deadline_at: When = Field(description="When it must now be done for the program to land (after as_of).")


class ScopeCut(Strict):
    milestone_id: Id = Field(description="An open milestone of the program.")
    remove_tickets: list[Id] = Field(
        min_length=1, description="Tickets committed to it at as_of, taken out of it then (as the milestone what-if's "
                                  "`remove_tickets`): its chances of being done are asked again without them.")


class ProgramWhatIfRequest(Strict):
    """Changes to a program, applied at the state's as_of; each list names a milestone at most once."""

    slip: list[MilestoneSlip] = Field(default_factory=list)
    target_at: When | None = Field(None, description="A new target for the program: every open milestone done by "
                                                     "then (after as_of).")
    deadlines: list[MilestoneDeadline] = Field(default_factory=list, description="New deadlines of milestones "
                                                                                   "(beside the target).")
    cut_scope: list[ScopeCut] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self):
        if not (self.slip or self.target_at or self.deadlines or self.cut_scope):
            raise ValueError("nothing to change: give slip, target_at, deadlines or cut_scope")
        return self


class ProgramWhatIfResponse(BaseModel):
    before: ProgramState = Field(description="The program as the live state forecasts it.")
    after: ProgramState = Field(description="The same with the changes, on the same draws: the difference is the "
                                            "changes', not the draws' noise.")
    delta: float | None = Field(description="after - before chance, null if either is unavailable.")


class ProgramIn(Strict, ProgramSpec):
    """A program declared through the API (its id is the path's)."""


class DependencyIn(Strict, DependencyDeclaration):
    pass


class DependenciesIn(Strict):
    dependencies: list[DependencyIn] = Field(description="Every dependency the API declares (replacing the ones it "
                                                         "declared before).")


class DeclaredDependency(DependencyDeclaration):
    source: Literal["settings", "api"] = Field(description="Declared in the settings (`programs.dependencies`) or "
                                                           "through `PUT /v1/dependencies`.")


class DependencyList(BaseModel):
    items: list[DeclaredDependency]
