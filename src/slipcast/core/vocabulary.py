"""The words every layer spells the same way: the canonical tables' enumerations and the values a
forecast carries. The canonical schema (``ingest.schema``), the API's schemas and its routes all
take them from here."""

from __future__ import annotations

from enum import StrEnum


class Tracker(StrEnum):
    """A live tracker Slipcast syncs from (``slipcast sync <tracker>``, ``serving.sync.tracker``);
    each has one entry in ``ingest.connectors.trackers.TRACKERS``."""

    JIRA = "jira"
    GITHUB = "github"
    AZURE_DEVOPS = "azure-devops"
    LINEAR = "linear"


class MilestoneKind(StrEnum):
    RELEASE = "release"
    SPRINT = "sprint"
    EPIC = "epic"


class TicketStatus(StrEnum):
    """A ticket's status category (what a tracker's own status names are placed in)."""

    TODO = "todo"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"


class LinkKind(StrEnum):
    BLOCKS = "blocks"
    DEPENDS_ON = "depends_on"
    RELATES = "relates"
    DUPLICATES = "duplicates"
    PARENT = "parent"


class EventField(StrEnum):
    """What an event changes (``from_value`` and ``to_value`` hold the values before and after)."""

    STATUS = "status"  # a status category
    MILESTONE = "milestone"  # a ticket joins (to=id) or leaves (from=id) a milestone
    DUE_AT = "due_at"  # a due date (ticket or milestone), ISO-8601 UTC
    ASSIGNEE = "assignee"
    PRIORITY = "priority"
    STORY_POINTS = "story_points"
    RESOLUTION = "resolution"
    TYPE = "type"


class ForecastStatus(StrEnum):
    """Whether a forecast has a probability: ``ok``; ``insufficient_history`` (nothing committed,
    or too little finished work); ``past_due``; ``withheld`` (at its horizon what would be served
    was not calibrated or below the base rate, tested forward: docs/architecture.md, "The skill guard")."""

    OK = "ok"
    INSUFFICIENT_HISTORY = "insufficient_history"
    PAST_DUE = "past_due"
    WITHHELD = "withheld"


class Basis(StrEnum):
    """What a served probability comes from: the model, or the base rate where the skill guard
    holds (docs/architecture.md, "The skill guard"); ``withheld`` where neither is honest there
    (no probability, a reason instead)."""

    MODEL = "model"
    BASE_RATE = "base_rate"
    WITHHELD = "withheld"


class ProgramSource(StrEnum):
    """Where a program (a named set of milestones, docs/architecture.md "Programs") comes from: an
    epic or initiative whose children sit in several milestones, one milestone name shared across
    projects (a Jira fix version, a GitHub milestone title), or a declaration (settings or API)."""

    EPIC = "epic"
    SHARED_NAME = "shared_name"
    DECLARED = "declared"


class Direction(StrEnum):
    """Which way a driver moves a forecast."""

    RAISES = "raises risk"
    LOWERS = "lowers risk"


def values(vocabulary: type[StrEnum]) -> tuple[str, ...]:
    """A vocabulary's words as plain strings, in their order."""
    return tuple(member.value for member in vocabulary)
