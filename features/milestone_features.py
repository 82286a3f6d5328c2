"""Milestone and ticket features at an as-of time, from the committed scope and timelines.

``milestone_features`` is the one implementation used offline (many snapshots, for training)
and online (one milestone now, for serving). Every input it reads is an as-of join at or
before the snapshot's time; ``docs/features.md`` defines each feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.snapshots import scope_rows
from features.tables import Tables
from features.throughput import history_weeks, monte_carlo_on_time, weekly_throughput
from features.timeline import Timelines, asof

HIGH_PRIORITIES = ("highest", "high", "critical", "blocker", "urgent", "p0", "p1")
BUG_TYPES = ("bug", "defect", "incident")
DAYS = pd.Timedelta(days=1)

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
CATEGORICAL = ["kind"]


def ticket_state(scope: pd.DataFrame, tables: Tables, tl: Timelines) -> pd.DataFrame:
    """Each scope row's ticket as it stood at as_of: status, points, people, churn counters."""
    rows = scope
    out = pd.DataFrame(index=rows.index)
    status = asof(rows, tl.ticket_values["status"], "as_of", "ticket_id", ["value", "changes"])
    out["status"] = status["value"]
    out["reopened"] = pd.to_numeric(status["changes"]).fillna(0)
    for field_, name in (("assignee", "assignee"), ("priority", "priority"),
                         ("story_points", "points"), ("type", "type")):
        got = asof(rows, tl.ticket_values[field_], "as_of", "ticket_id", ["value", "changes"])
        out[name] = got["value"]
        out[f"{name}_changes"] = pd.to_numeric(got["changes"]).fillna(0)
    static = tables.tickets.set_index("ticket_id")
    out["type"] = out["type"].fillna(rows["ticket_id"].map(static["type"]))
    created = static["created_at"].reindex(rows["ticket_id"].to_numpy())
    out["created_at"] = pd.Series(created.array, index=rows.index, dtype="datetime64[us, UTC]")
    out["points"] = pd.to_numeric(out["points"])
    out["open"] = out["status"] != "done"
    return out


def dependency_counts(scope: pd.DataFrame, state: pd.DataFrame, tables: Tables,
                      tl: Timelines) -> pd.DataFrame:
    """Per scope row: open dependencies at as_of, and those owned by another project."""
    links = tables.links
    deps = pd.concat([
        links.loc[links["kind"] == "depends_on", ["from_ticket", "to_ticket", "created_at"]]
        .rename(columns={"from_ticket": "ticket_id", "to_ticket": "dependency"}),
        links.loc[links["kind"] == "blocks", ["to_ticket", "from_ticket", "created_at"]]
        .rename(columns={"to_ticket": "ticket_id", "from_ticket": "dependency"}),
    ])
    result = pd.DataFrame({"open_deps": 0.0, "cross_team": 0.0}, index=scope.index)
    if deps.empty:
        return result
    created = tables.tickets.set_index("ticket_id")["created_at"]
    # a link without a timestamp exists from when both of its tickets did
    known_from = np.maximum(deps["ticket_id"].map(created), deps["dependency"].map(created))
    deps["created_at"] = deps["created_at"].fillna(known_from)
    rows = scope.loc[state["open"], ["ticket_id", "as_of"]].reset_index(names="row")
    pairs = rows.merge(deps, on="ticket_id")
    pairs = pairs[pairs["created_at"] <= pairs["as_of"]]
    if pairs.empty:
        return result
    dep_status = asof(pairs, tl.ticket_values["status"], "as_of", "dependency", ["value"],
                      by_right="ticket_id")["value"]
    project = tables.tickets.set_index("ticket_id")["project"]
    pairs["open"] = (dep_status.notna() & (dep_status != "done")).astype(float)
    pairs["cross"] = pairs["open"] * (pairs["dependency"].map(project) != pairs["ticket_id"].map(project))
    summed = pairs.groupby("row")[["open", "cross"]].sum()
    result.loc[summed.index, "open_deps"] = summed["open"]
    result.loc[summed.index, "cross_team"] = summed["cross"]
    return result


def past_slip_rate(snaps: pd.DataFrame, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """Share of the project's milestones whose outcome was known by as_of that slipped.

    ``outcomes``: project, known_at, slipped — one row per earlier milestone.
    """
    empty = pd.DataFrame({"past_slip_rate": np.nan, "past_milestones_known": 0.0}, index=snaps.index)
    if outcomes is None or outcomes.empty:
        return empty
    o = outcomes.sort_values("known_at", kind="stable").copy()
    grouped = o.groupby("project")
    o["n"] = grouped.cumcount() + 1
    o["slips"] = grouped["slipped"].cumsum()
    got = asof(snaps, o, "as_of", "project", ["n", "slips"], right_on="known_at")
    n = pd.to_numeric(got["n"]).fillna(0.0)
    return pd.DataFrame({"past_slip_rate": pd.to_numeric(got["slips"]) / n.where(n > 0),
                         "past_milestones_known": n}, index=snaps.index)


def milestone_features(tables: Tables, tl: Timelines, snaps: pd.DataFrame, settings,
                       outcomes: pd.DataFrame | None = None,
                       scope: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of each (milestone_id, as_of) in ``snaps``, and of each open committed ticket.

    Returns (milestone rows aligned with ``snaps``, ticket rows with a ``snap`` column).
    """
    if scope is None:
        scope = scope_rows(snaps, tl)
    ms = tables.milestones.set_index("milestone_id")
    snaps = snaps.assign(project=snaps["milestone_id"].map(ms["project"]),
                         kind=snaps["milestone_id"].map(ms["kind"]),
                         start_at=snaps["milestone_id"].map(ms["start_at"]))
    state = ticket_state(scope, tables, tl)
    deps = dependency_counts(scope, state, tables, tl)
    is_open = state["open"]
    pts = state["points"]
    per = pd.DataFrame({
        "snap": scope["snap"],
        "one": 1.0,
        "points": pts.fillna(0.0),
        "unestimated": pts.isna().astype(float),
        "done": (~is_open).astype(float),
        "done_points": pts.fillna(0.0) * (~is_open),
        "in_progress": (state["status"] == "in_progress").astype(float),
        "blocked": ((state["status"] == "blocked") | ((deps["open_deps"] > 0) & is_open)).astype(float),
        "open_deps": deps["open_deps"],
        "cross_team": deps["cross_team"],
        "reopened": state["reopened"],
        "reassignments": state["assignee_changes"],
        "priority_changes": state["priority_changes"],
        "estimate_changes": state["points_changes"],
        "open": is_open.astype(float),
        "open_unassigned": (is_open & state["assignee"].isna()).astype(float),
        "open_age": ((scope["as_of"] - state["created_at"]) / DAYS).where(is_open, 0.0),
        "bug": state["type"].fillna("").str.lower().isin(BUG_TYPES).astype(float),
        "high": state["priority"].fillna("").str.lower().isin(HIGH_PRIORITIES).astype(float),
    })
    sums = per.groupby("snap").sum().reindex(snaps.index).fillna(0.0)
    team = state["assignee"].groupby(scope["snap"]).nunique().reindex(snaps.index).fillna(0.0)

    f = pd.DataFrame(index=snaps.index)
    due = asof(snaps, tl.due_changes, "as_of", "milestone_id", ["due", "replans", "shift_days"])
    f["kind"] = snaps["kind"]
    f["span_days"] = (due["due"] - snaps["start_at"]) / DAYS
    f["days_left"] = (due["due"] - snaps["as_of"]) / DAYS
    f["span_elapsed"] = ((snaps["as_of"] - snaps["start_at"]) / DAYS / f["span_days"]).clip(0, 1)
    n = sums["one"]
    f["scope_count"] = n
    f["scope_points"] = sums["points"]
    f["unestimated_share"] = sums["unestimated"] / n.where(n > 0)
    f = f.join(_scope_changes(snaps, tl))
    f["done_share"] = sums["done"] / n.where(n > 0)
    f["done_points_share"] = sums["done_points"] / sums["points"].where(sums["points"] > 0)
    f["remaining_count"] = sums["open"]
    f["remaining_points"] = sums["points"] - sums["done_points"]
    f["in_progress_share"] = sums["in_progress"] / n.where(n > 0)
    f["blocked_count"] = sums["blocked"]
    f["open_dependencies"] = sums["open_deps"]
    f["open_cross_team_dependencies"] = sums["cross_team"]

    weeks = settings.throughput_weeks
    weekly = weekly_throughput(snaps, tl, weeks)
    f["throughput_per_week"] = weekly.mean(axis=1)
    mean = weekly.mean(axis=1)
    f["throughput_cv"] = np.where(mean > 0, weekly.std(axis=1) / np.where(mean > 0, mean, 1), np.nan)
    weeks_left = (f["days_left"] / 7).clip(lower=1 / 7)
    f["required_per_week"] = f["remaining_count"] / weeks_left
    f["required_vs_observed"] = f["required_per_week"] / f["throughput_per_week"].where(f["throughput_per_week"] > 0)
    f["monte_carlo_on_time"] = monte_carlo_on_time(
        weekly, f["remaining_count"].to_numpy(), f["days_left"].to_numpy(),
        settings.monte_carlo_runs, settings.seed)
    f["history_weeks"] = history_weeks(snaps, tl, weeks)

    f["reopened_count"] = sums["reopened"]
    f["reassignments"] = sums["reassignments"]
    f["priority_changes"] = sums["priority_changes"]
    f["estimate_changes"] = sums["estimate_changes"]
    f["due_replans"] = pd.to_numeric(due["replans"]).fillna(0.0)
    f["due_shift_days"] = pd.to_numeric(due["shift_days"]).fillna(0.0)
    f["team_size"] = team
    f["open_per_assignee"] = sums["open"] / team.clip(lower=1)
    f["unassigned_open_share"] = sums["open_unassigned"] / sums["open"].where(sums["open"] > 0)
    f["open_age_mean_days"] = sums["open_age"] / sums["open"].where(sums["open"] > 0)
    f["bug_share"] = sums["bug"] / n.where(n > 0)
    f["high_priority_share"] = sums["high"] / n.where(n > 0)
    f = f.join(past_slip_rate(snaps, outcomes))
    f = f[MILESTONE_FEATURES]
    for col in MILESTONE_FEATURES:
        if col not in CATEGORICAL:
            f[col] = pd.to_numeric(f[col]).astype("float64")

    tickets = _ticket_rows(scope, state, deps, f)
    return f, tickets


def _scope_changes(snaps: pd.DataFrame, tl: Timelines) -> pd.DataFrame:
    """Tickets added to and removed from the milestone since start and over the last 7/14 days."""
    def cum(times: pd.Series) -> pd.DataFrame:
        probe = snaps.assign(_t=times)
        got = asof(probe, tl.milestone_moves, "_t", "milestone_id", ["added", "removed"])
        return got.apply(pd.to_numeric).fillna(0.0)

    now = cum(snaps["as_of"])
    out = pd.DataFrame(index=snaps.index)
    start = cum(snaps["start_at"])
    out["scope_added_since_start"] = now["added"] - start["added"]
    out["scope_removed_since_start"] = now["removed"] - start["removed"]
    for days in (7, 14):
        back = cum(np.maximum(snaps["as_of"] - pd.Timedelta(days=days), snaps["start_at"]))
        out[f"scope_added_{days}d"] = now["added"] - back["added"]
        out[f"scope_removed_{days}d"] = now["removed"] - back["removed"]
    return out


def _ticket_rows(scope, state, deps, milestone: pd.DataFrame) -> pd.DataFrame:
    """Features of the tickets still open at as_of, with their milestone's context."""
    open_ = state["open"]
    rows = pd.DataFrame({
        "snap": scope["snap"], "ticket_id": scope["ticket_id"],
        "ticket_points": state["points"],
        "ticket_age_days": (scope["as_of"] - state["created_at"]) / DAYS,
        "ticket_in_progress": (state["status"] == "in_progress").astype(float),
        "ticket_blocked": ((state["status"] == "blocked") | (deps["open_deps"] > 0)).astype(float),
        "ticket_reopened": state["reopened"],
        "ticket_reassignments": state["assignee_changes"],
        "ticket_priority_changes": state["priority_changes"],
        "ticket_is_bug": state["type"].fillna("").str.lower().isin(BUG_TYPES).astype(float),
        "ticket_high_priority": state["priority"].fillna("").str.lower().isin(HIGH_PRIORITIES).astype(float),
        "ticket_open_dependencies": deps["open_deps"],
        "ticket_unassigned": state["assignee"].isna().astype(float),
    })[open_]
    context = [c for c in TICKET_FEATURES if c in milestone.columns]
    return rows.join(milestone[context], on="snap")
