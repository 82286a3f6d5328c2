"""One or many milestones' state *now* -> canonical tables -> the same features as training.

Dashboards send what they know: the milestone (with its due date, and its due-date history if
kept), its tickets and the team's other recent tickets, any events and links. Where a ticket
comes without events, its history is what its fields imply: created as to-do, in the
milestone from when it was created (or the milestone started), done at its resolution time.
``features_now`` then calls ``milestone_features``, the function that builds training sets.
"""

from __future__ import annotations

import pandas as pd

from features.milestone_features import milestone_features
from features.schema import EVENTS, MILESTONES, TICKETS, conform
from features.tables import Tables, make_tables
from features.timeline import build_timelines

SEP = "\x1f"  # namespaces each request's ids inside a batch


def _implied_events(tickets: pd.DataFrame, milestones: pd.DataFrame, explicit: pd.DataFrame) -> pd.DataFrame:
    """Events for tickets that came without any: creation state, membership, resolution."""
    covered = set(explicit["ticket_id"].dropna()) if len(explicit) else set()
    t = tickets[~tickets["ticket_id"].isin(covered)]
    start = t["milestone_id"].map(milestones.set_index("milestone_id")["start_at"])
    joined = pd.concat([t["created_at"], start], axis=1).max(axis=1)
    parts = [
        pd.DataFrame({"ticket_id": t["ticket_id"], "at": t["created_at"], "field": "status",
                      "from_value": None, "to_value": "todo"}),
        pd.DataFrame({"ticket_id": t["ticket_id"], "at": joined, "field": "milestone",
                      "from_value": None, "to_value": t["milestone_id"]}).dropna(subset=["to_value"]),
    ]
    for col, field_ in (("assignee", "assignee"), ("priority", "priority")):
        parts.append(pd.DataFrame({"ticket_id": t["ticket_id"], "at": t["created_at"], "field": field_,
                                   "from_value": None, "to_value": t[col]}).dropna(subset=["to_value"]))
    points = t["story_points"].map(lambda v: None if pd.isna(v) else repr(float(v)))
    parts.append(pd.DataFrame({"ticket_id": t["ticket_id"], "at": t["created_at"], "field": "story_points",
                               "from_value": None, "to_value": points}).dropna(subset=["to_value"]))
    working = t[t["status"].isin(["in_progress", "blocked"])]
    parts.append(pd.DataFrame({"ticket_id": working["ticket_id"], "at": working["created_at"], "field": "status",
                               "from_value": "todo", "to_value": working["status"]}))
    done = t[t["status"] == "done"]
    done_at = done["resolved_at"].fillna(done["created_at"])
    parts.append(pd.DataFrame({"ticket_id": done["ticket_id"], "at": done_at, "field": "status",
                               "from_value": "todo", "to_value": "done"}))
    parts = [p for p in parts if len(p)]
    columns = ["ticket_id", "at", "field", "from_value", "to_value"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def state_tables(milestones: pd.DataFrame, tickets: pd.DataFrame, events: pd.DataFrame,
                 links: pd.DataFrame) -> Tables:
    """Canonical tables from current state, events implied where a ticket has none.

    A milestone without due-date events keeps its ``due_at`` as known from the start, as in
    any export that keeps only the final date.
    """
    milestones, tickets = conform(milestones, MILESTONES), conform(tickets, TICKETS)
    events = conform(events, EVENTS)
    implied = _implied_events(tickets, milestones, events)
    return make_tables(milestones, tickets, pd.concat([events, implied], ignore_index=True), links)


def features_now(tables: Tables, snapshots: pd.DataFrame, settings,
                 outcomes: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Milestone (and open-ticket) features of ``snapshots`` (milestone_id, as_of) from ``tables``.

    Only what happened at or before each as_of is used, exactly as offline.
    """
    tl = build_timelines(tables)
    snaps = snapshots[["milestone_id", "as_of"]].reset_index(drop=True)
    snaps["as_of"] = pd.to_datetime(snaps["as_of"], utc=True).astype("datetime64[us, UTC]")
    return milestone_features(tables, tl, snaps, settings, outcomes)


def truncate(tables: Tables, as_of: pd.Timestamp) -> Tables:
    """The tables an export taken at ``as_of`` would have held: later events, tickets and
    links gone, each ticket's fields as they stood then."""
    ev = tables.events[tables.events["at"] <= as_of]
    tk = tables.tickets[tables.tickets["created_at"] <= as_of].copy()
    last = ev[ev["ticket_id"].notna()].groupby(["ticket_id", "field"])["to_value"].last()
    for field_, col in (("status", "status"), ("assignee", "assignee"), ("priority", "priority")):
        values = last.xs(field_, level="field") if field_ in last.index.get_level_values("field") else pd.Series(dtype=object)
        tk[col] = tk["ticket_id"].map(values)
    tk["status"] = tk["status"].fillna("todo")
    tk.loc[tk["resolved_at"] > as_of, "resolved_at"] = pd.NaT
    ms = tables.milestones[tables.milestones["start_at"].isna() | (tables.milestones["start_at"] <= as_of)].copy()
    ms.loc[ms["completed_at"] > as_of, "completed_at"] = pd.NaT
    lk = tables.links[tables.links["created_at"].isna() | (tables.links["created_at"] <= as_of)]
    return make_tables(ms, tk, ev, lk)
