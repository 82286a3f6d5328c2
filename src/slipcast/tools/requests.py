"""Requests as a dashboard would have sent them: a history cut at a moment, and the JSON body
for one milestone then (``live.requests``), and many as one columns body. Used by the demo, the
tests and the benchmark."""

from __future__ import annotations

from slipcast.live.requests import request_for, truncate

__all__ = ["as_columns", "request_for", "truncate"]


def as_columns(items: list[dict]) -> dict:
    """Item request bodies (``request_for``) as one columns body (``POST /v1/forecasts/tables``):
    where there are several, each item's ids and project are prefixed with ``{i}:`` so that no
    two share one, as the batch endpoint keeps them apart. Every item is forecast, at the one
    as_of they share."""
    as_ofs = {item.get("as_of") for item in items}
    if len(as_ofs) != 1:
        raise ValueError(f"a columns body has one as_of; these items have {len(as_ofs)}")
    ids = ("milestone_id", "ticket_id", "project", "from_ticket", "to_ticket")

    def spaced(i: int, row: dict, names=ids) -> dict:
        if len(items) == 1:
            return row
        return {k: f"{i}:{v}" if k in names and v is not None else v for k, v in row.items()}

    def columns(rows: list[dict]) -> dict:
        return {name: [row.get(name) for row in rows] for name in dict.fromkeys(k for row in rows for k in row)}

    milestones = [spaced(i, item["milestone"]) for i, item in enumerate(items)]
    tickets = [spaced(i, dict(t, project=t.get("project") or item["milestone"]["project"]))
               for i, item in enumerate(items) for t in item["tickets"]]
    events = [spaced(i, e, ids + (("from_value", "to_value") if e["field"] == "milestone" else ()))
              for i, item in enumerate(items) for e in item.get("events", [])]
    links = [spaced(i, x) for i, item in enumerate(items) for x in item.get("links", [])]
    past = [spaced(i, dict(p, project=item["milestone"]["project"]))
            for i, item in enumerate(items) for p in item.get("past_milestones", [])]
    body = {"milestones": columns(milestones), "tickets": columns(tickets),
            "milestone_ids": [m["milestone_id"] for m in milestones], "as_of": as_ofs.pop(),
            "explain": any(item.get("explain", True) for item in items)}
    for name, rows in (("events", events), ("links", links), ("past_milestones", past)):
        if rows:
            body[name] = columns(rows)
    return body
