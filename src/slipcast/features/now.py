"""One or many milestones' state *now* -> canonical tables -> the same features as training.

Dashboards send what they know: the milestone (with its due date, and its due-date history if
kept), its tickets and the team's other recent tickets, any events and links. Where a ticket
comes without events, its history is what its fields imply: created as to-do, in the
milestone from when it was created (or the milestone started), done at its resolution time.

The state arrives as columns already checked by the API's schema, so the tables are built
with a few numpy calls rather than a validation pass; ``features_now`` then runs
``build_timelines`` and ``milestone_features``, the functions that build training sets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slipcast.core.settings import FeatureSettings
from slipcast.core.vocabulary import TicketStatus
from slipcast.features.milestone_features import milestone_features
from slipcast.features.snapshots import Snapshots
from slipcast.features.timeline import NAT, build_timelines, pick
from slipcast.ingest.schema import EVENTS
from slipcast.ingest.tables import Tables

Columns = dict[str, np.ndarray]  # one table: strings as object arrays, times as int64 µs (NAT if unknown)


def _implied_events(tickets: Columns, milestones: Columns, explicit: np.ndarray) -> Columns:
    """Events for tickets that came without any: creation state, membership, resolution."""
    quiet = ~pd.Series(tickets["ticket_id"], dtype=object).isin(explicit).to_numpy(bool)
    ticket, created = tickets["ticket_id"][quiet], tickets["created_at"][quiet]
    milestone, status = tickets["milestone_id"][quiet], tickets["status"][quiet]
    start = pick(milestones["start_at"], pd.Index(milestones["milestone_id"], dtype=object).get_indexer(milestone), NAT)
    joined = np.maximum(created, start)  # NAT (no such milestone) is below every time
    resolved = np.where(tickets["resolved_at"][quiet] == NAT, created, tickets["resolved_at"][quiet])
    points = tickets["story_points"][quiet]
    has_points = ~np.isnan(points)
    working = (status == TicketStatus.IN_PROGRESS) | (status == TicketStatus.BLOCKED)
    done = status == TicketStatus.DONE
    parts = [  # (which tickets, at, field, from, to), in the order a tie at one instant resolves
        (np.ones(len(ticket), bool), created, "status", None, np.full(len(ticket), TicketStatus.TODO, dtype=object)),
        (pd.notna(milestone), joined, "milestone", None, milestone),
        (pd.notna(tickets["assignee"][quiet]), created, "assignee", None, tickets["assignee"][quiet]),
        (pd.notna(tickets["priority"][quiet]), created, "priority", None, tickets["priority"][quiet]),
        (has_points, created, "story_points", None,
         np.array([repr(float(v)) if ok else None for v, ok in zip(points, has_points)], dtype=object)),
        (working, created, "status", TicketStatus.TODO, status),
        (done, resolved, "status", TicketStatus.TODO, status),
    ]
    return {
        "ticket_id": np.concatenate([ticket[w] for w, *_ in parts]),
        "at": np.concatenate([at[w] for w, at, *_ in parts]),
        "field": np.concatenate([np.full(int(w.sum()), f, dtype=object) for w, _, f, *_ in parts]),
        "from_value": np.concatenate([np.full(int(w.sum()), src, dtype=object) for w, _, _, src, _ in parts]),
        "to_value": np.concatenate([to[w] for w, *_, to in parts]),
    }


def state_tables(milestones: Columns, tickets: Columns, events: Columns, links: Columns) -> Tables:
    """Canonical tables (as columns) from current state, events implied where a ticket has none.

    A milestone without due-date events keeps its ``due_at`` as known from the start, as in
    any export that keeps only the final date.
    """
    implied = _implied_events(tickets, milestones, events["ticket_id"])
    nothing = np.full(len(implied["at"]), None, dtype=object)
    events = {name: np.concatenate([events[name], implied.get(name, nothing)]) for name in EVENTS.columns}
    return Tables(milestones, tickets, events, links)


def features_now(tables: Tables, snapshots: pd.DataFrame, settings: FeatureSettings, outcomes: pd.DataFrame | None = None
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Milestone (and open-ticket) features of ``snapshots`` (milestone_id, as_of) from ``tables``,
    as columns (see ``milestone_features``).

    Only what happened at or before each as_of is used, exactly as offline.
    """
    tl = build_timelines(tables)
    return milestone_features(tl, Snapshots.of(snapshots, tl), settings, outcomes)
