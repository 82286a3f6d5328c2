"""What-if: the same milestone with a change applied at as_of, as events a tracker would record;
and a program's what-if checked against its forecast and turned into a ``live.programs.ProgramChange``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from slipcast.core.errors import FieldError
from slipcast.live.programs import ProgramChange
from slipcast.live.records import ProgramState
from slipcast.serving.schemas import Change, EventIn, ForecastRequest, ProgramWhatIfRequest, TicketIn

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


def program_change(req: ProgramWhatIfRequest, program: ProgramState, committed: Callable[[str], list[str]]
                   ) -> ProgramChange:
    """The change a program what-if asks for, each part checked against the program's forecast:
    a milestone named is one of its open ones, once per list; a new date is after as_of; the
    tickets cut are committed to their milestone then (``committed``). A refusal names the value's
    place in the body."""
    open_ = {m.milestone_id for m in program.milestones if m.state == "open"}
    as_of = program.as_of

    def open_ones(name: str, items: list) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.milestone_id not in open_:
                raise FieldError(("body", name, i, "milestone_id"), f"{item.milestone_id!r} is not an open milestone "
                                 f"of program {program.program_id!r} as of {as_of.isoformat()} (open: {sorted(open_)})")
            if item.milestone_id in seen:
                raise FieldError(("body", name, i, "milestone_id"), f"{item.milestone_id!r} is named twice")
            seen.add(item.milestone_id)

    def after_as_of(where: tuple, when: datetime) -> None:
        if when <= as_of:
            raise FieldError(where, f"{when.isoformat()} is not after the state's as_of {as_of.isoformat()}")

    for name in ("slip", "deadlines", "cut_scope"):
        open_ones(name, getattr(req, name))
    if req.target_at is not None:
        after_as_of(("body", "target_at"), req.target_at)
    for i, moved in enumerate(req.deadlines):
        after_as_of(("body", "deadlines", i, "deadline_at"), moved.deadline_at)
    for i, cut in enumerate(req.cut_scope):
        unknown = sorted(set(cut.remove_tickets) - set(committed(cut.milestone_id)))
        if unknown:
            raise FieldError(("body", "cut_scope", i, "remove_tickets"),
                             f"not committed to {cut.milestone_id!r} at {as_of.isoformat()}: {unknown}")
    return ProgramChange(slips={s.milestone_id: s.days for s in req.slip},
                         deadlines={d.milestone_id: d.deadline_at for d in req.deadlines},
                         removed={c.milestone_id: frozenset(c.remove_tickets) for c in req.cut_scope})
