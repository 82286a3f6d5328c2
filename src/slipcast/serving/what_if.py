"""What-if: the same milestone with a change applied at as_of, as events a tracker would record."""

from __future__ import annotations

from datetime import datetime

from slipcast.core.errors import FieldError
from slipcast.serving.schemas import Change, EventIn, ForecastRequest, TicketIn

WHAT_IF_PERSON = "what-if-person-{}"


def apply_change(req: ForecastRequest, change: Change, as_of: datetime) -> ForecastRequest:
    """``req`` with ``change`` recorded at ``as_of``: removals and additions as milestone
    moves, a new due date as a replan, new people taking the open unassigned (then the
    busiest people's) tickets."""
    mid = req.milestone.milestone_id
    tickets = [t.model_copy() for t in req.tickets]
    events = list(req.events)
    explicit = {e.ticket_id for e in events if e.ticket_id}
    removed = set(change.remove_tickets)
    unknown = removed - {t.ticket_id for t in tickets}
    if unknown:
        raise FieldError(("body", "change", "remove_tickets"), f"unknown tickets {sorted(unknown)}")
    for t in tickets:
        if t.ticket_id in removed:
            if t.ticket_id in explicit:
                events.append(EventIn(ticket_id=t.ticket_id, at=as_of, field="milestone", from_value=mid))
            else:
                t.milestone_id = None
    known = {t.ticket_id for t in tickets}
    for t in change.add_tickets:
        if t.ticket_id in known:
            raise FieldError(("body", "change", "add_tickets"), f"{t.ticket_id!r} is already in the request")
        # joins now: its age and the scope added over the last days count it from as_of
        tickets.append(TicketIn(**{**t.model_dump(), "milestone_id": mid, "created_at": as_of}))
    milestone = req.milestone
    if change.due_at is not None:
        if not any(e.milestone_id == mid and e.field == "due_at" for e in events):
            events.append(EventIn(milestone_id=mid, at=milestone.start_at, field="due_at",
                                  to_value=milestone.due_at.isoformat()))
        events.append(EventIn(milestone_id=mid, at=as_of, field="due_at", from_value=milestone.due_at.isoformat(),
                              to_value=change.due_at.isoformat()))
        milestone = milestone.model_copy(update={"due_at": change.due_at})
    if change.add_people:
        open_ = [t for t in tickets if t.milestone_id == mid and t.status != "done"]
        open_.sort(key=lambda t: (t.assignee is not None, t.status == "in_progress"))
        for n, t in enumerate(open_[: max(1, len(open_) // 2)]):
            person = WHAT_IF_PERSON.format(n % change.add_people + 1)
            if t.ticket_id in explicit:
                events.append(EventIn(ticket_id=t.ticket_id, at=as_of, field="assignee",
                                      from_value=t.assignee, to_value=person))
            t.assignee = person
    return req.model_copy(update={"milestone": milestone, "tickets": tickets, "events": events, "as_of": as_of})
