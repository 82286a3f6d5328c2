"""Each ticket's history as a tracker holds it: the state it was created with, then its changes.

Canonical events may carry changes dated before the ticket was created (the simulator starts an
urgent bug before anyone files it) and changes that change nothing. A tracker holds neither: its
issue has a state at creation and a changelog after it. ``ticket_histories`` folds the events
into that form, and ``steps`` gives each field's values over time, the form in which two
histories are compared whatever events encoded them (tests/ingest/test_exports.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from slipcast.ingest.tables import Tables

SCALARS = ("status", "assignee", "priority", "story_points", "resolution", "type", "due_at")


@dataclass(frozen=True)
class Change:
    """One change after creation: a scalar field's old and new value, or a milestone left and joined."""

    at: pd.Timestamp
    field: str
    old: str | None
    new: str | None


@dataclass
class TicketHistory:
    """A ticket's state at creation and its changes after, in time order."""

    key: str
    created: pd.Timestamp
    initial: dict[str, str | None]
    members: frozenset[str]
    changes: list[Change] = field(default_factory=list)
    total_changes: int | None = None  # set when the changes are the newest of a longer history

    def final(self) -> tuple[dict[str, str | None], frozenset[str]]:
        """The scalar fields and milestone memberships after every change."""
        values, members = dict(self.initial), set(self.members)
        for c in self.changes:
            if c.field == "milestone":
                members.discard(c.old)
                if c.new is not None:
                    members.add(c.new)
            else:
                values[c.field] = c.new
        return values, frozenset(members)

    def change_times(self) -> list[pd.Timestamp]:
        return sorted({c.at for c in self.changes})

    def newest(self, times: int) -> TicketHistory:
        """The history as a tracker that embeds only the newest ``times`` change times shows it:
        the state just before the first kept change stands for the state at creation."""
        kept = self.change_times()[-times:]
        if len(kept) == len(self.change_times()):
            return self
        cut = kept[0]
        before = replace(self, changes=[c for c in self.changes if c.at < cut])
        initial, members = before.final()
        return replace(self, initial=initial, members=members, changes=[c for c in self.changes if c.at >= cut],
                       total_changes=len(self.change_times()))


def _value(v) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else str(v)


def ticket_histories(tables: Tables) -> dict[str, TicketHistory]:
    """Every ticket's history, changes at or before creation folded into its initial state."""
    _, tickets, events, _ = tables.frames()
    events = events[events["ticket_id"].notna()].sort_values("at", kind="stable")
    out: dict[str, TicketHistory] = {}
    by_ticket = {k: g for k, g in events.groupby("ticket_id", sort=False)}
    for row in tickets.itertuples(index=False):
        created = row.created_at
        values: dict[str, str | None] = {name: None for name in SCALARS}
        members: set[str] = set()
        changes: list[Change] = []
        group = by_ticket.get(row.ticket_id)
        for at, name, old, new in ([] if group is None else
                                   group[["at", "field", "from_value", "to_value"]].itertuples(index=False)):
            old, new = _value(old), _value(new)
            if name == "milestone":
                left = old if old in members else None
                joined = new if new is not None and new not in members else None
                members.discard(old)
                if new is not None:
                    members.add(new)
                if at > created and (left or joined):
                    changes.append(Change(at, "milestone", left, joined))
                continue
            before = values.get(name)
            values[name] = new
            if at > created and before != new:
                changes.append(Change(at, name, before, new))
        initial, start_members = _rewind(values, members, changes)
        out[row.ticket_id] = TicketHistory(row.ticket_id, created, initial, frozenset(start_members), changes)
    return out


def _rewind(values: dict, members: set, changes: list[Change]) -> tuple[dict, set]:
    """The state before ``changes``, from the state after them."""
    values, members = dict(values), set(members)
    for c in reversed(changes):
        if c.field == "milestone":
            members.discard(c.new)
            if c.old is not None:
                members.add(c.old)
        else:
            values[c.field] = c.old
    return values, members


def steps(history: TicketHistory, translate=lambda field, value: value) -> dict[tuple[str, str], list]:
    """Each field's (time, value) steps from creation, and each milestone's (time, member) steps;
    a time with several changes keeps the last, a step that changes nothing is left out.
    ``translate(field, value)`` maps values first (a milestone's id in another tracker, say)."""
    series: dict[tuple[str, str], list] = {}

    def put(key, at, value):
        points = series.setdefault(key, [])
        if points and points[-1][0] == at:
            points.pop()
        if not points or points[-1][1] != value:
            points.append((at, value))

    for name in SCALARS:
        put(("field", name), history.created, translate(name, history.initial.get(name)))
    for m in history.members:
        put(("member", translate("milestone", m)), history.created, True)
    for c in history.changes:
        if c.field == "milestone":
            if c.old is not None:
                put(("member", translate("milestone", c.old)), c.at, False)
            if c.new is not None:
                put(("member", translate("milestone", c.new)), c.at, True)
        else:
            put(("field", c.field), c.at, translate(c.field, c.new))
    return {k: v for k, v in series.items() if not (k[0] == "field" and v == [(history.created, None)])}
