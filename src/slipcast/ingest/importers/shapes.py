"""The shapes of tracker records, as pydantic models: every record is checked against its
shape before an importer reads it, so a wrongly typed field is a rejection naming the field,
never a traceback. Only what the importers read is declared; everything else passes unread
(``extra="ignore"``: a copy of it would cost the import time for nothing).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from slipcast.core.errors import FieldError

Id = str | int  # trackers send ids as numbers or strings


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- Jira REST (an issue with expand=changelog) ------------------------------------------------
class JiraNamed(_Shape):
    name: str | None = None


class JiraProject(_Shape):
    key: str | None = None


class JiraVersion(_Shape):
    id: Id
    name: str | None = None
    releaseDate: str | None = None
    startDate: str | None = None
    released: bool | None = None


class JiraIssueRef(_Shape):
    key: str


class JiraLink(_Shape):
    id: Id | None = None
    type: JiraNamed | None = None
    outwardIssue: JiraIssueRef | None = None
    inwardIssue: JiraIssueRef | None = None


class JiraFields(_Shape):
    project: JiraProject | None = None
    issuetype: JiraNamed | None = None
    priority: JiraNamed | None = None
    status: JiraNamed | None = None
    created: str | None = None
    resolutiondate: str | None = None
    duedate: str | None = None
    assignee: dict[str, Any] | None = None
    fixVersions: list[JiraVersion] | None = None
    issuelinks: list[JiraLink] | None = None
    subtasks: list[JiraIssueRef] | None = None
    parent: JiraIssueRef | None = None


class JiraItem(_Shape):
    field: str | None = None
    from_: Id | None = Field(default=None, validation_alias=AliasChoices("from"))
    to: Id | None = None
    fromString: str | None = None
    toString: str | None = None


class JiraHistory(_Shape):
    id: Id | None = None
    created: str | None = None
    items: list[JiraItem] | None = None


class JiraChangelog(_Shape):
    histories: list[JiraHistory] | None = None


class JiraIssue(_Shape):
    key: str
    fields: JiraFields
    changelog: JiraChangelog | None = None


# -- GitHub REST (milestones, issues, issue events) --------------------------------------------
class GitHubMilestoneRef(_Shape):
    number: int | None = None
    title: str | None = None


class GitHubMilestone(_Shape):
    number: int
    title: str | None = None
    due_on: str | None = None
    created_at: str | None = None
    closed_at: str | None = None


class GitHubLabel(_Shape):
    name: str


class GitHubUser(_Shape):
    login: str | None = None


class GitHubIssue(_Shape):
    number: int
    state: str | None = None
    created_at: str | None = None
    closed_at: str | None = None
    labels: list[GitHubLabel | str] = []
    assignees: list[GitHubUser] | None = None
    assignee: GitHubUser | None = None
    milestone: GitHubMilestoneRef | None = None
    html_url: str | None = None
    repository_url: str | None = None
    pull_request: dict[str, Any] | None = None


class GitHubIssueRef(_Shape):
    number: int


class GitHubEvent(_Shape):
    id: Id | None = None
    event: str
    created_at: str | None = None
    issue: GitHubIssueRef
    milestone: GitHubMilestoneRef | None = None
    assignee: GitHubUser | None = None


# -- Azure DevOps REST (work items with their revisions, iterations, states) -------------------
class AdoRelation(_Shape):
    rel: str
    url: str | None = None


class AdoRevision(_Shape):
    rev: int | None = None
    fields: dict[str, Any]


class AdoWorkItem(_Shape):
    id: int
    rev: int | None = None
    fields: dict[str, Any]
    relations: list[AdoRelation] | None = None
    revisions: list[dict[str, Any]] | None = None  # each checked as an AdoRevision, so that one bad
    # revision is rejected alone


class AdoIterationDates(_Shape):
    startDate: str | None = None
    finishDate: str | None = None


class AdoIteration(_Shape):
    id: int
    name: str
    attributes: AdoIterationDates | None = None
    children: list[AdoIteration] | None = None


class AdoState(_Shape):
    name: str
    category: str
# -- Linear GraphQL (an issue with its history, as `slipcast sync linear` stores it) ---------------
class LinearState(_Shape):
    name: str
    type: str


class LinearUser(_Shape):
    id: str | None = None
    name: str | None = None


class LinearTeam(_Shape):
    key: str


class LinearTeams(_Shape):
    nodes: list[LinearTeam] = []


class LinearCycle(_Shape):
    id: Id
    number: int | None = None
    name: str | None = None
    startsAt: str | None = None
    endsAt: str | None = None
    completedAt: str | None = None
    team: LinearTeam | None = None


class LinearProject(_Shape):
    id: Id
    name: str | None = None
    startDate: str | None = None
    targetDate: str | None = None
    completedAt: str | None = None
    teams: LinearTeams | None = None


class LinearProjectMilestone(_Shape):
    id: Id
    name: str | None = None
    targetDate: str | None = None
    project: LinearProject | None = None


class LinearIssueRef(_Shape):
    identifier: str


class LinearLabel(_Shape):
    name: str


class LinearLabels(_Shape):
    nodes: list[LinearLabel] = []


class LinearRelation(_Shape):
    type: str
    createdAt: str | None = None
    relatedIssue: LinearIssueRef


class LinearRelations(_Shape):
    nodes: list[LinearRelation] = []


class LinearHistoryEntry(_Shape):
    id: Id | None = None
    createdAt: str | None = None
    fromState: LinearState | None = None
    toState: LinearState | None = None
    fromCycle: LinearCycle | None = None
    toCycle: LinearCycle | None = None
    fromProject: LinearProject | None = None
    toProject: LinearProject | None = None
    fromEstimate: float | None = None
    toEstimate: float | None = None
    fromAssignee: LinearUser | None = None
    toAssignee: LinearUser | None = None
    fromPriority: int | None = None
    toPriority: int | None = None
    fromDueDate: str | None = None
    toDueDate: str | None = None
    toParent: LinearIssueRef | None = None


class LinearHistory(_Shape):
    nodes: list[dict[str, Any]] = []  # each entry checked on its own (LinearHistoryEntry): one bad entry is one rejection


class LinearIssue(_Shape):
    identifier: str
    createdAt: str | None = None
    completedAt: str | None = None
    canceledAt: str | None = None
    dueDate: str | None = None
    estimate: float | None = None
    priority: int | None = None
    team: LinearTeam | None = None
    state: LinearState
    assignee: LinearUser | None = None
    cycle: LinearCycle | None = None
    project: LinearProject | None = None
    projectMilestone: LinearProjectMilestone | None = None
    parent: LinearIssueRef | None = None
    labels: LinearLabels | None = None
    relations: LinearRelations | None = None
    history: LinearHistory | None = None


S = TypeVar("S", bound=BaseModel)


def check(shape: type[S], record: object) -> S:
    """``record`` read as ``shape``; a FieldError naming the first field that does not fit."""
    try:
        return shape.model_validate(record)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise FieldError(tuple(str(part) for part in error["loc"]), error["msg"].lower()) from None
