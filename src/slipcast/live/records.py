"""The live state's records: an open milestone's forecast as of a refresh, a day of its history,
a project's counts; a program's joint forecast, in brief and whole, and a day of its history. The
API answers with them; the ledger and alerts read them."""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from pydantic import Field

from slipcast.core.vocabulary import Basis, ForecastStatus, MilestoneKind, ProgramSource
from slipcast.scoring.records import Driver, Factor, ModelRef, Record, When


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
    factors: list[Factor] = Field(default_factory=list, description="As a forecast's (`Forecast.factors`).")
    reason: str | None = Field(None, description="The factors that move the forecast, in words.")
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


def program_path(program_id: str) -> str:
    """The page of one program, relative to the page's root (any id one path segment, as
    ``milestone_path``)."""
    return f"programs/{quote(program_id, safe='')}"


class ProgramMilestone(Record):
    """A milestone of a program, as the program's forecast saw it."""

    milestone_id: str
    project: str | None
    name: str | None
    state: Literal["open", "done", "not_started", "empty", "unknown"] = Field(
        description="open: in the forecast; done: completed by as_of; not_started: starts later; empty: nothing "
                    "committed yet; unknown: not in the store. Only open milestones are drawn.")
    due_at: When | None
    deadline_at: When | None = Field(None, description="When it must be done for the program to land: the program's "
                                                       "target, or its own due date where the program has none.")
    done_by_deadline: float | None = Field(None, description="Its own chance of being done by the deadline.")
    when_50: When | None = Field(None, description="The day by which it is done in half the draws (after its "
                                                   "blockers).")
    when_85: When | None = None
    criticality: float | None = Field(
        None, description="Share of draws in which it sets the program's date, itself or through what waits on it.")
    ripple: float | None = Field(
        None, description="The program's chance if this milestone finishes `programs.ripple_days` later than drawn.")


class ProgramEdge(Record):
    """A dependency inside a program, with the tickets behind it."""

    blocker: str
    dependent: str
    tickets: list[tuple[str, str]] = Field(description="(the waiting ticket, the ticket it waits on)")
    open_blockers: int
    source: Literal["links", "declared"]
    external: bool = Field(description="The blocker is outside the store; it is assumed done on time.")
    in_cycle: bool
    propagated: bool = Field(description="A slip of the blocker moves the dependent in the Monte Carlo.")


class ProgramSummary(Record):
    """A program's joint forecast as of one time, in brief (``GET /v1/programs``)."""

    program_id: str
    name: str
    source: ProgramSource
    as_of: When
    target_at: When | None = Field(description="When it must land; null: each milestone by its own due date.")
    open_milestones: int
    chance: float | None = Field(description="Chance that every open milestone is done by its deadline (null: none "
                                             "open).")
    probability: float | None = Field(description="Chance that it slips (1 - chance), the number the ledger records.")
    risk_band: str | None
    independent_chance: float | None = Field(
        description="What multiplying the milestones' own chances would say (as if teams were independent).")
    done_50: When | None = Field(description="When the last milestone is done in half the draws (null: past the "
                                             "horizon).")
    done_85: When | None
    most_critical: str | None = Field(None, description="The milestone that sets the program's date in the most "
                                                        "draws (null: none open).")
    most_critical_share: float | None = Field(None, description="Its criticality: the share of those draws.")

    def point(self) -> ProgramHistoryPoint:
        """This forecast as a day of the program's history (and a row of the ledger)."""
        return ProgramHistoryPoint(as_of=self.as_of, chance=self.chance, probability=self.probability,
                                   risk_band=self.risk_band, done_50=self.done_50, done_85=self.done_85,
                                   open_milestones=self.open_milestones)


class ProgramState(ProgramSummary):
    """A program's joint forecast as of one time."""

    critical_path: list[str] = Field(description="The chain that sets the program's date most often, first "
                                                 "blocker first.")
    critical_path_share: float | None
    milestones: list[ProgramMilestone] = Field(description="Most critical first.")
    edges: list[ProgramEdge]
    cycles: list[list[str]]
    correlation: dict[str, float] = Field(description="The copula's fitted correlations: team, period.")
    lag_days: float = Field(description="Days a dependent needs after its blocker, from the history.")
    draws: int
    assumptions: list[str]
    model: ModelRef | None


class ProgramHistoryPoint(Record):
    """A day of a program's history: its forecast from what was known that day."""

    as_of: When
    chance: float | None = Field(description="Null where none of its milestones was open that day.")
    probability: float | None
    risk_band: str | None
    done_50: When | None = None
    done_85: When | None
    open_milestones: int = Field(0, description="Its milestones open that day, the ones drawn.")
