"""The live state's records: an open milestone's forecast as of a refresh, a day of its history,
a project's counts. The API answers with them; the ledger and alerts read them."""

from __future__ import annotations

from urllib.parse import quote

from pydantic import Field

from slipcast.core.vocabulary import Basis, ForecastStatus, MilestoneKind
from slipcast.scoring.records import Driver, ModelRef, Record, When


def milestone_path(milestone_id: str) -> str:
    """The page of one milestone, relative to the page's root: ``milestones/<id>`` with every
    character of the id that is not plain text percent-encoded, '/' too, so that any id a tracker
    gives (GitHub's ``gh-owner/repo-ms-3``) is one path segment (docs/architecture.md, "Live state")."""
    return f"milestones/{quote(milestone_id, safe='')}"


class MilestoneState(Record):
    """An open milestone of the store and its forecast as of the service's latest refresh."""

    milestone_id: str
    project: str
    name: str | None
    kind: MilestoneKind
    start_at: When
    due_at: When | None = Field(description="The due date as known at as_of.")
    as_of: When
    status: ForecastStatus
    probability: float | None
    risk_band: str | None
    basis: Basis | None
    change_7d: float | None = Field(
        description="Probability now minus the probability the same model gives with what was known 7 days "
                    "ago (null if either is unavailable or the milestone had not started then).")
    when_50: When | None = Field(
        None, description="The earliest due date (as_of plus 2 days to 26 weeks: `portfolio.WHEN_DAYS`) by which "
                          "the model gives the milestone at least a 50 % chance of being done: re-scored with its "
                          "due date moved there now. Null where the forecast is not the model's or no such date "
                          "is within the range.")
    when_85: When | None = Field(None, description="The same at 85 %.")
    message: str | None = None
    drivers: list[Driver] = Field(default_factory=list)
    model: ModelRef


class HistoryPoint(Record):
    as_of: When
    status: ForecastStatus
    probability: float | None
    risk_band: str | None
    basis: Basis | None
    due_at: When | None = Field(description="The due date as known then.")


class ProjectState(Record):
    project: str
    open_milestones: int
    by_band: dict[str, int] = Field(description="Open milestones with a forecast, by risk band.")
    past_due: int
    insufficient_history: int
    slipped_share: float | None = Field(description="Share of its finished milestones that slipped.")
    finished_milestones: int
    live: dict | None = Field(
        None, description="How its published forecasts came true, from the last `slipcast monitor` run: n "
                          "(with known outcomes), Brier, Brier skill, ECE, AUC; null before one judged it.")
