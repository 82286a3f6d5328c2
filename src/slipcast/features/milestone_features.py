"""Milestone and ticket features at an as-of time, from the committed scope and timelines.

``milestone_features`` is the one implementation used offline (many snapshots, for training)
and online (one milestone now, for serving). Every input it reads is a timeline lookup at or
before the snapshot's time; sums over a snapshot's tickets are one ``bincount`` each.
``docs/features.md`` defines each feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slipcast.core.settings import FeatureSettings
from slipcast.core.vocabulary import TicketStatus
from slipcast.features.snapshots import Scope, Snapshots, scope_rows
from slipcast.features.throughput import (
    history_weeks,
    monte_carlo_on_time,
    weekly_throughput,
)
from slipcast.features.timeline import (
    DAY_US,
    NAT,
    Timeline,
    Timelines,
    days_between,
    later,
    matching,
    micros,
    pick,
    shifted,
    take,
)

HIGH_PRIORITIES = ("highest", "high", "critical", "blocker", "urgent", "p0", "p1")
BUG_TYPES = ("bug", "defect", "incident")

MILESTONE_FEATURES = [
    "kind", "span_days", "days_left", "span_elapsed",
    "scope_count", "scope_points", "unestimated_share",
    "scope_added_since_start", "scope_removed_since_start",
    "scope_added_7d", "scope_removed_7d", "scope_added_14d", "scope_removed_14d",
    "done_share", "done_points_share", "remaining_count", "remaining_points",
    "in_progress_share", "blocked_count", "open_dependencies", "open_cross_team_dependencies",
    "throughput_per_week", "throughput_cv", "required_per_week", "required_vs_observed",
    "monte_carlo_on_time", "history_weeks",
    "reopened_count", "reassignments", "priority_changes", "estimate_changes",
    "due_replans", "due_shift_days",
    "team_size", "open_per_assignee", "unassigned_open_share",
    "open_age_mean_days", "bug_share", "high_priority_share",
    "past_slip_rate", "past_milestones_known",
]
TICKET_FEATURES = [
    "ticket_points", "ticket_age_days", "ticket_in_progress", "ticket_blocked",
    "ticket_reopened", "ticket_reassignments", "ticket_priority_changes", "ticket_is_bug",
    "ticket_high_priority", "ticket_open_dependencies", "ticket_unassigned",
] + ["days_left", "span_elapsed", "kind", "remaining_count", "done_share", "required_vs_observed",
     "monte_carlo_on_time", "throughput_per_week", "scope_added_since_start", "past_slip_rate"]
# the factors a program manager recognises: each a group of milestone features whose effect on a
# forecast is measured with all of them set together to a typical milestone's values
# (scoring.explain; docs/features.md, "Factors"); every milestone feature is in exactly one
FACTORS: dict[str, tuple[str, ...]] = {
    "progress": ("done_share", "done_points_share", "remaining_count", "remaining_points", "in_progress_share",
                 "scope_count", "scope_points", "unestimated_share", "reopened_count", "open_age_mean_days",
                 "bug_share", "high_priority_share"),
    "scope_change": ("scope_added_since_start", "scope_removed_since_start", "scope_added_7d", "scope_removed_7d",
                     "scope_added_14d", "scope_removed_14d", "estimate_changes", "priority_changes"),
    "time_and_pace": ("kind", "span_days", "days_left", "span_elapsed", "required_per_week", "required_vs_observed",
                      "monte_carlo_on_time"),
    "capacity": ("throughput_per_week", "throughput_cv", "history_weeks", "team_size", "open_per_assignee",
                 "unassigned_open_share", "reassignments"),
    "dependencies": ("blocked_count", "open_dependencies", "open_cross_team_dependencies"),
    "plan_changes": ("due_replans", "due_shift_days"),
    "track_record": ("past_slip_rate", "past_milestones_known"),
}
# features that say one thing twice (in tickets and in points, over 7 and 14 days): set to typical
# together, so a feature and its twin never show opposite effects
TWINS: tuple[tuple[str, ...], ...] = (
    ("done_share", "done_points_share"), ("remaining_count", "remaining_points"), ("scope_count", "scope_points"),
    ("scope_added_7d", "scope_added_14d"), ("scope_removed_7d", "scope_removed_14d"),
    ("required_per_week", "required_vs_observed"))
# where the domain is unambiguous, the sign of a feature's effect on a milestone's chance of
# slipping with every other feature held: more done never raises risk, more work left (or pace
# needed) never lowers it, more time left never raises it (docs/features.md, "Monotone features")
MONOTONE: dict[str, int] = {
    "done_share": -1, "done_points_share": -1, "remaining_count": 1, "remaining_points": 1,
    "required_per_week": 1, "required_vs_observed": 1, "days_left": -1, "monte_carlo_on_time": -1}
CATEGORICAL = ["kind"]


def monotone_directions(features: list[str]) -> dict[str, int]:
    """The fixed directions (``MONOTONE``) of a model of ``features``: a milestone's model is held to
    them; a ticket's is free, since a ticket still open in a mostly done milestone is a straggler,
    not a safe one (docs/features.md, "Monotone features")."""
    if set(features) & (set(TICKET_FEATURES) - set(MILESTONE_FEATURES)):
        return {}
    return {f: MONOTONE[f] for f in features if f in MONOTONE}


# counts that grow as the history does, whatever the team does: their move is not drift
GROWS_WITH_HISTORY = ("past_milestones_known", "history_weeks")
# a team's own figures at as_of (they depend on the project and the time alone): every milestone of
# a team shares them, so their evidence is the number of teams, not of milestones
TEAM_FEATURES = ("throughput_per_week", "throughput_cv", "history_weeks", "past_slip_rate", "past_milestones_known")


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is not positive."""
    return np.divide(a, b, out=np.full(len(a), np.nan), where=b > 0)


def _matches(values: pd.Index, names: tuple[str, ...]) -> np.ndarray:
    """Per value code: whether the value is a string that, lower-cased, is one of ``names`` (a
    store of a thousand teams holds tens of thousands of values, a request a few dozen)."""
    if isinstance(values.dtype, np.dtype):  # Python objects (a request's): a loop costs least
        wanted = frozenset(names)
        return np.fromiter((isinstance(v, str) and v.lower() in wanted for v in values), dtype=bool, count=len(values))
    try:  # Arrow strings (a store's): one vectorised pass
        lowered = pd.Series(values, copy=False).str.lower()
    except AttributeError:  # no string at all
        return np.zeros(len(values), dtype=bool)
    return lowered.isin(names).to_numpy(dtype=bool, na_value=False)


def ticket_state(scope: Scope, as_of: np.ndarray, tl: Timelines) -> dict[str, np.ndarray]:
    """Each scope row's ticket as it stood at as_of: status, points, people, churn counters."""
    t = as_of[scope.snap]
    state = {}
    for field_ in ("status", "assignee", "priority", "story_points", "type"):
        timeline = tl.ticket_values[field_]
        pos = timeline.find(scope.ticket, as_of, of=scope.snap)
        state[field_] = timeline.get("value", pos, np.nan if field_ == "story_points" else -1)
        state[f"{field_}_changes"] = timeline.get("changes", pos, 0).astype(np.float64)
    done = state["status"] == tl.value_code(TicketStatus.DONE)
    # a type never set by an event is the ticket's own
    own = pick(tl.ticket_type_code, scope.ticket, -1)
    state["bug"] = np.where(state["type"] >= 0, pick(_matches(tl.values, BUG_TYPES), state["type"], False),
                            pick(_matches(tl.ticket_type, BUG_TYPES), own, False))
    state["high"] = pick(_matches(tl.values, HIGH_PRIORITIES), state["priority"], False)
    state["in_progress"] = state["status"] == tl.value_code(TicketStatus.IN_PROGRESS)
    state["blocked"] = state["status"] == tl.value_code(TicketStatus.BLOCKED)
    state["open"] = ~done
    state["created"] = pick(tl.ticket_created, scope.ticket, NAT)
    state["age_days"] = days_between(t, state["created"])
    return state


def dependency_counts(scope: Scope, as_of: np.ndarray, is_open: np.ndarray,
                      tl: Timelines) -> tuple[np.ndarray, np.ndarray]:
    """Per scope row: open dependencies at as_of, and those owned by another project (0 for a
    ticket that is done)."""
    deps = tl.dependencies
    rows = np.flatnonzero(is_open)
    pos, owner = matching(deps["ticket"], scope.ticket[rows])
    row = rows[owner]
    t = as_of[scope.snap[row]]
    since = deps["since"][pos]
    linked = (since != NAT) & (since <= t)
    row, pos = row[linked], pos[linked]
    dependency = deps["dependency"][pos]
    status = tl.ticket_values["status"]
    value = status.get("value", status.find(dependency, as_of, of=scope.snap[row]), -1)
    waiting = (value >= 0) & (value != tl.value_code(TicketStatus.DONE))
    mine, theirs = pick(tl.ticket_project, scope.ticket[row], -1), pick(tl.ticket_project, dependency, -1)
    cross = waiting & ((mine < 0) | (theirs < 0) | (mine != theirs))
    # float even when nothing is linked (bincount of no rows is an integer array)
    return (np.bincount(row, weights=waiting, minlength=len(scope)).astype(np.float64),
            np.bincount(row, weights=cross, minlength=len(scope)).astype(np.float64))


def past_slip_rate(project: np.ndarray, as_of: np.ndarray, outcomes: pd.DataFrame | None,
                   tl: Timelines) -> tuple[np.ndarray, np.ndarray]:
    """Share of the project's milestones whose outcome was known by as_of that slipped, and
    how many those were. ``outcomes``: project, known_at, slipped — one row per earlier
    milestone."""
    if outcomes is None or outcomes.empty:
        return np.full(len(project), np.nan), np.zeros(len(project))
    key = tl.projects.get_indexer(outcomes["project"]).astype(np.int64)
    mine = key >= 0
    known = Timeline(key[mine], micros(outcomes["known_at"])[mine],
                     running={"n": np.ones(int(mine.sum())),
                              "slips": outcomes["slipped"].to_numpy(np.float64)[mine]})
    pos = known.find(project, as_of)
    n = known.get("n", pos, 0.0)
    return _ratio(known.get("slips", pos, np.nan), n), n


def milestone_features(tl: Timelines, snaps: Snapshots, settings: FeatureSettings, outcomes: pd.DataFrame | None = None,
                       scope: Scope | None = None, due_moved_to: np.ndarray | None = None,
                       removed_now: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Features of each snapshot, and of each open committed ticket, as columns.

    ``due_moved_to`` (µs per snapshot, NAT: as it is) asks "what if the due date were moved
    there at as_of": the features see that date, and one more replan by that shift, as the
    what-if endpoint's due-date change does. ``removed_now`` (a count per snapshot) asks "what if
    that many tickets left the milestone at as_of": ``scope`` is then the scope without them, and
    the scope removed since start and over the last days counts them, as the what-if endpoint's
    ``remove_tickets`` does. Returns (milestone columns aligned with ``snaps``; ticket columns
    with ``snap``, the snapshot's position, and ``row``, the scope row's).
    """
    if scope is None:
        scope = scope_rows(snaps, tl)
    n = len(snaps)
    m, as_of = snaps.milestone, snaps.as_of
    project = pick(tl.milestone_project, m, -1)
    start = pick(tl.milestone_start, m, NAT)
    state = ticket_state(scope, as_of, tl)
    is_open = state["open"]
    open_deps, cross_team = dependency_counts(scope, as_of, is_open, tl)
    points = state["story_points"]

    def total(weights) -> np.ndarray:
        return np.bincount(scope.snap, weights=np.asarray(weights, dtype=np.float64), minlength=n)

    count = total(np.ones(len(scope)))
    # a scope in which no ticket carries an estimate has unknown points, not zero (a team without points)
    unestimated = (count > 0) & (total(~np.isnan(points)) == 0)
    scope_points = np.where(unestimated, np.nan, total(np.nan_to_num(points)))
    done_points = total(np.nan_to_num(points) * ~is_open)
    remaining = total(is_open)
    assigned = state["assignee"] >= 0
    people = np.int64(len(tl.values) + 1)  # distinct (snapshot, assignee) pairs, counted per snapshot
    pairs = pd.unique(scope.snap[assigned] * people + state["assignee"][assigned])  # hashed: no sort needed
    team = np.bincount(pairs // people, minlength=n).astype(np.float64)

    due = tl.due.find(m, as_of)
    due_at = tl.due.get("due", due, NAT)
    target = due_at if due_moved_to is None else np.where(due_moved_to != NAT, due_moved_to, due_at)
    moved = (target != due_at) & (due_at != NAT)  # a milestone without a due date gets one, not a replan
    shift = np.where(moved, days_between(target, due_at), 0.0)
    due_at = target
    f = {"kind": take(tl.milestone_kind, m)}
    f["span_days"] = days_between(due_at, start)
    f["days_left"] = days_between(due_at, as_of)
    f["span_elapsed"] = np.clip(days_between(as_of, start) / f["span_days"], 0, 1)
    f["scope_count"] = count
    f["scope_points"] = scope_points
    f["unestimated_share"] = _ratio(total(np.isnan(points)), count)
    f.update(_scope_changes(m, as_of, start, tl, np.zeros(n) if removed_now is None else removed_now))
    f["done_share"] = _ratio(total(~is_open), count)
    f["done_points_share"] = _ratio(done_points, scope_points)
    f["remaining_count"] = remaining
    f["remaining_points"] = scope_points - done_points
    f["in_progress_share"] = _ratio(total(state["in_progress"]), count)
    f["blocked_count"] = total(state["blocked"] | ((open_deps > 0) & is_open))
    f["open_dependencies"] = total(open_deps)
    f["open_cross_team_dependencies"] = total(cross_team)

    weekly = weekly_throughput(project, as_of, tl, settings.throughput_weeks)
    mean = weekly.mean(axis=1)
    f["throughput_per_week"] = mean
    f["throughput_cv"] = _ratio(weekly.std(axis=1), mean)
    weeks_left = np.clip(f["days_left"] / 7, 1 / 7, None)
    f["required_per_week"] = remaining / weeks_left
    f["required_vs_observed"] = _ratio(f["required_per_week"], mean)
    f["monte_carlo_on_time"] = monte_carlo_on_time(weekly, remaining, f["days_left"],
                                                   settings.monte_carlo_runs, settings.seed,
                                                   settings.monte_carlo_max_weeks)
    f["history_weeks"] = history_weeks(project, as_of, tl, settings.throughput_weeks)

    f["reopened_count"] = total(state["status_changes"])
    f["reassignments"] = total(state["assignee_changes"])
    f["priority_changes"] = total(state["priority_changes"])
    f["estimate_changes"] = total(state["story_points_changes"])
    f["due_replans"] = tl.due.get("replans", due, 0).astype(np.float64) + moved
    f["due_shift_days"] = np.nan_to_num(tl.due.get("shift_days", due, np.nan)) + shift
    f["team_size"] = team
    f["open_per_assignee"] = remaining / np.maximum(team, 1)
    f["unassigned_open_share"] = _ratio(total(is_open & ~assigned), remaining)
    f["open_age_mean_days"] = _ratio(total(np.where(is_open, np.nan_to_num(state["age_days"]), 0.0)), remaining)
    f["bug_share"] = _ratio(total(state["bug"]), count)
    f["high_priority_share"] = _ratio(total(state["high"]), count)
    f["past_slip_rate"], f["past_milestones_known"] = past_slip_rate(project, as_of, outcomes, tl)
    features = {name: f[name] for name in MILESTONE_FEATURES}
    return features, _ticket_rows(scope, state, open_deps, features, tl)


def _scope_changes(m: np.ndarray, as_of: np.ndarray, start: np.ndarray, tl: Timelines,
                   removed_now: np.ndarray) -> dict[str, np.ndarray]:
    """Tickets added to and removed from the milestone since start and over the last 7/14 days;
    ``removed_now`` more removed at as_of (counted where a window starts before as_of, as a move
    recorded then would be)."""
    def moved(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = tl.moves.find(m, times)
        return tl.moves.get("added", pos, 0.0), tl.moves.get("removed", pos, 0.0)

    added, removed = moved(as_of)
    added_start, removed_start = moved(start)
    out = {"scope_added_since_start": added - added_start,
           "scope_removed_since_start": removed - removed_start + removed_now * (start < as_of)}
    for span in (7, 14):
        since = later(shifted(as_of, -span * DAY_US), start)
        added_then, removed_then = moved(since)
        out[f"scope_added_{span}d"] = added - added_then
        out[f"scope_removed_{span}d"] = removed - removed_then + removed_now * (since < as_of)
    return out


def _ticket_rows(scope: Scope, state: dict[str, np.ndarray], open_deps: np.ndarray,
                 milestone: dict[str, np.ndarray], tl: Timelines) -> dict[str, np.ndarray]:
    """Features of the tickets still open at as_of, with their milestone's context."""
    rows = np.flatnonzero(state["open"])
    snap = scope.snap[rows]
    own = {
        "snap": snap,
        "row": rows,
        "ticket_id": take(tl.tickets.array, scope.ticket[rows]),
        "ticket_points": state["story_points"][rows],
        "ticket_age_days": state["age_days"][rows],
        "ticket_in_progress": state["in_progress"][rows].astype(np.float64),
        "ticket_blocked": (state["blocked"] | (open_deps > 0))[rows].astype(np.float64),
        "ticket_reopened": state["status_changes"][rows],
        "ticket_reassignments": state["assignee_changes"][rows],
        "ticket_priority_changes": state["priority_changes"][rows],
        "ticket_is_bug": state["bug"][rows].astype(np.float64),
        "ticket_high_priority": state["high"][rows].astype(np.float64),
        "ticket_open_dependencies": open_deps[rows],
        "ticket_unassigned": (state["assignee"] < 0)[rows].astype(np.float64),
    }
    for name in TICKET_FEATURES:
        if name in milestone:
            own[name] = milestone[name][snap]
    return own
