"""A milestone of the store as the request a dashboard would have sent for it at a moment: the
history cut there, and the JSON body of ``POST /v1/forecasts`` for that milestone then. The
assistant's what-if on a milestone of the store (``serving.assistant``) sends it as the what-if
endpoint's request; the demo, the tests and the benchmark send it too (``tools.requests``)."""

from __future__ import annotations

import pandas as pd

from slipcast.ingest.tables import Tables, last_values, make_tables


def truncate(tables: Tables, as_of: pd.Timestamp) -> Tables:
    """The tables an export taken at ``as_of`` would have held: later events, tickets and
    links gone, each ticket's fields as they stood then."""
    milestones, tickets, events, links = tables.frames()
    ev = events[events["at"] <= as_of]
    tk = tickets[tickets["created_at"] <= as_of].copy()
    state = last_values(ev)
    for field_, col in (("status", "status"), ("assignee", "assignee"), ("priority", "priority"),
                        ("milestone", "milestone_id")):
        tk[col] = tk["ticket_id"].map(state[field_]) if field_ in state else None
    tk["status"] = tk["status"].fillna("todo")
    tk.loc[tk["resolved_at"] > as_of, "resolved_at"] = pd.NaT
    ms = milestones[milestones["start_at"].isna() | (milestones["start_at"] <= as_of)].copy()
    ms.loc[ms["completed_at"] > as_of, "completed_at"] = pd.NaT
    lk = links[links["created_at"].isna() | (links["created_at"] <= as_of)]
    return make_tables(ms, tk, ev, lk)


def _iso(value):
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _val(value):
    """A JSON-ready value: missing ones (NaN, NaT, None) become null."""
    return None if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)) else value


def request_for(tables: Tables, milestone_id: str, as_of: pd.Timestamp, outcomes: pd.DataFrame) -> dict:
    """The JSON a dashboard would send for ``milestone_id`` at ``as_of``: the milestone, the
    team's tickets as they stood then with their events, links between them, and past outcomes
    known by then."""
    milestones, tickets, events, links = truncate(tables, as_of).frames()
    m = milestones.set_index("milestone_id").loc[milestone_id]
    team = tickets[(tickets["project"] == m["project"]) & (tickets["created_at"] <= as_of)]
    recent = team[(team["resolved_at"].isna()) | (team["resolved_at"] >= as_of - pd.Timedelta(weeks=12))]
    links = links[links["from_ticket"].isin(recent["ticket_id"]) | links["to_ticket"].isin(recent["ticket_id"])]
    others = tickets[tickets["ticket_id"].isin(set(links["from_ticket"]) | set(links["to_ticket"]))
                     & (tickets["created_at"] <= as_of)]
    recent = pd.concat([recent, others]).drop_duplicates("ticket_id")
    ids = set(recent["ticket_id"])
    ev = events[(events["at"] <= as_of) & (events["ticket_id"].isin(ids) | (events["milestone_id"] == milestone_id))]
    past = outcomes[(outcomes["project"] == m["project"]) & (outcomes["known_at"] <= as_of)]
    return {
        "milestone": {"milestone_id": milestone_id, "project": m["project"], "name": m["name"], "kind": m["kind"],
                      "start_at": _iso(m["start_at"]), "due_at": _iso(m["due_at"])},
        "tickets": [{"ticket_id": t.ticket_id, "project": t.project, "type": _val(t.type), "priority": _val(t.priority),
                     "created_at": _iso(t.created_at),
                     "resolved_at": _iso(t.resolved_at) if t.status == "done" else None,
                     "story_points": _val(t.story_points), "assignee": _val(t.assignee), "status": t.status,
                     "milestone_id": _val(t.milestone_id)}
                    for t in recent.itertuples()],
        "events": [{"ticket_id": _val(e.ticket_id), "milestone_id": _val(e.milestone_id), "at": _iso(e.at),
                    "field": e.field, "from_value": _val(e.from_value), "to_value": _val(e.to_value)}
                   for e in ev.itertuples()],
        "links": [{"from_ticket": x.from_ticket, "to_ticket": x.to_ticket, "kind": x.kind,
                   "created_at": _iso(x.created_at)} for x in links.itertuples()],
        "past_milestones": [{"known_at": _iso(p.known_at), "slipped": bool(p.slipped)} for p in past.itertuples()],
        "as_of": _iso(as_of),
    }
