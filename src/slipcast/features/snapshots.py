"""The as-of schedule, the committed scope at each as-of time, and the slip labels.

A milestone snapshot is (milestone, as_of). Its label (docs/features.md, "Labels"): the scope committed at
as_of is not all done, and still in the milestone, at the evaluation time E = the due date
known at as_of plus the grace period, or the milestone's completion if earlier. The label
becomes known at E (``label_known_at``); snapshots whose E lies after the data's end are the
open ones to forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slipcast.core.vocabulary import TicketStatus
from slipcast.features.timeline import (
    DAY_US,
    NAT,
    Timelines,
    last_of_each,
    matching,
    micros,
)


@dataclass
class Snapshots:
    """(milestone, as_of) pairs: milestone codes of a ``Timelines`` and int64 microseconds."""

    milestone: np.ndarray
    as_of: np.ndarray

    def __len__(self) -> int:
        return len(self.milestone)

    @classmethod
    def of(cls, frame: pd.DataFrame, tl: Timelines) -> Snapshots:
        """Snapshots from a frame of milestone_id and as_of (an unknown milestone gets -1)."""
        return cls(tl.milestones.get_indexer(frame["milestone_id"]).astype(np.int64), micros(frame["as_of"]))


@dataclass
class Scope:
    """One row per (snapshot, ticket committed to its milestone at as_of); ``member_until`` is
    when that membership ended (far future if it had not)."""

    snap: np.ndarray
    ticket: np.ndarray
    member_until: np.ndarray

    def __len__(self) -> int:
        return len(self.snap)


def schedule(tl: Timelines, span_fractions: list[float], every_n_days: int | None) -> Snapshots:
    """As-of times per milestone: shares of the span planned at start (plus every N days),
    never past the due date known at that time, the milestone's completion or the data's end.
    Ordered by milestone id, then as_of."""
    m = np.flatnonzero(tl.milestone_start != NAT)
    start = tl.milestone_start[m]
    due0 = tl.due.get("due", tl.due.find(m, start), NAT)
    planned = (due0 != NAT) & (due0 > start)
    m, start, span = m[planned], start[planned], (due0 - start)[planned]
    times = [start + (span.astype(np.float64) * f).astype(np.int64) for f in span_fractions]
    if every_n_days:
        step = DAY_US * every_n_days
        longest = int(np.ceil(span.max() / step)) if len(m) else 0
        times += [start + step * k for k in range(1, longest + 1)]
    milestone = np.tile(m, len(times))
    as_of = np.concatenate(times) if times else np.zeros(0, np.int64)
    order = np.lexsort((as_of, milestone))
    milestone, as_of = milestone[order], as_of[order]
    distinct = np.ones(len(order), dtype=bool)
    distinct[1:] = (milestone[1:] != milestone[:-1]) | (as_of[1:] != as_of[:-1])
    milestone, as_of = milestone[distinct], as_of[distinct]
    due_now = tl.due.get("due", tl.due.find(milestone, as_of), NAT)
    completed = tl.milestone_completed[milestone]
    keep = (as_of < due_now) & (as_of <= tl.data_end) & ((completed == NAT) | (as_of < completed))
    return Snapshots(milestone[keep], as_of[keep])


def scope_rows(snaps: Snapshots, tl: Timelines) -> Scope:
    """The tickets committed to each snapshot's milestone at its as_of, in snapshot order."""
    member = tl.membership
    row, snap = matching(member["milestone"], snaps.milestone)
    t = snaps.as_of[snap]
    inside = (member["start"][row] <= t) & (t < member["end"][row])
    row, snap = row[inside], snap[inside]
    ticket = member["ticket"][row]
    # a ticket joined twice without leaving counts once, by its latest interval
    once = last_of_each(snap * np.int64(len(tl.tickets) + 1) + ticket)
    return Scope(snap[once], ticket[once], member["end"][row][once])


def evaluation_time(snaps: Snapshots, tl: Timelines, grace_days: float) -> np.ndarray:
    """E per snapshot: due date known at as_of plus grace, or completion if earlier."""
    due_now = tl.due.get("due", tl.due.find(snaps.milestone, snaps.as_of), NAT)
    grace = pd.Timedelta(days=grace_days).value // 1000
    deadline = np.where(due_now == NAT, NAT, due_now + grace)
    completed = tl.milestone_completed[snaps.milestone]
    sooner = (completed != NAT) & ((deadline == NAT) | (completed <= deadline))
    return np.where(sooner, completed, deadline)


def ticket_outcomes(scope: Scope, evaluated_at: np.ndarray, tl: Timelines) -> np.ndarray:
    """1 where a committed ticket was not done, or no longer in the milestone, at E."""
    at = evaluated_at[scope.snap]
    status = tl.ticket_values["status"]
    value = status.get("value", status.find(scope.ticket, evaluated_at, of=scope.snap), -1)
    done = (value == tl.value_code(TicketStatus.DONE)) & (at != NAT) & (scope.member_until > at)
    return (~done).astype(np.float64)


def labels(snaps: Snapshots, scope: Scope, tl: Timelines, grace_days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``label`` (1 slipped, 0 on time, NaN not yet known) and ``label_known_at`` per snapshot,
    and the per-ticket outcomes of the scope rows."""
    evaluated_at = evaluation_time(snaps, tl, grace_days)
    ticket_slip = ticket_outcomes(scope, evaluated_at, tl)
    slips = np.bincount(scope.snap, weights=ticket_slip, minlength=len(snaps))
    committed = np.bincount(scope.snap, minlength=len(snaps)) > 0
    known = (evaluated_at != NAT) & (evaluated_at <= tl.data_end)
    label = np.where(committed & known, (slips > 0).astype(np.float64), np.nan)
    return label, evaluated_at, ticket_slip
