"""The as-of schedule, the committed scope at each as-of time, and the slip labels.

A milestone snapshot is (milestone_id, as_of). Its label (DESIGN §1): the scope committed at
as_of is not all done, and still in the milestone, at the evaluation time E = the due date
known at as_of plus the grace period, or the milestone's completion if earlier. The label
becomes known at E (``label_known_at``); snapshots whose E lies after the data's end are the
open ones to forecast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.tables import Tables
from features.timeline import Timelines, asof

DAY = pd.Timedelta(days=1)


def schedule(tables: Tables, tl: Timelines, span_fractions: list[float],
             every_n_days: int | None) -> pd.DataFrame:
    """As-of times per milestone: shares of the span planned at start (plus every N days),
    never past the due date known at that time, the milestone's completion or the data's end."""
    ms = tables.milestones.dropna(subset=["start_at"])
    ms = ms[["milestone_id", "start_at", "completed_at"]]
    due0 = asof(ms, tl.due_changes, "start_at", "milestone_id", ["due"])["due"]
    ms = ms.assign(due0=due0).dropna(subset=["due0"])
    ms = ms[ms["due0"] > ms["start_at"]]
    span = ms["due0"] - ms["start_at"]
    parts = [ms.assign(as_of=ms["start_at"] + span * f) for f in span_fractions]
    if every_n_days:
        longest = int(np.ceil(span.max() / DAY / every_n_days)) if len(ms) else 0
        parts += [ms.assign(as_of=ms["start_at"] + DAY * every_n_days * k) for k in range(1, longest + 1)]
    snaps = pd.concat(parts, ignore_index=True) if parts else ms.assign(as_of=ms["start_at"])
    snaps["as_of"] = snaps["as_of"].astype("datetime64[us, UTC]")
    snaps = snaps.drop_duplicates(["milestone_id", "as_of"])
    due_now = asof(snaps, tl.due_changes, "as_of", "milestone_id", ["due"])["due"]
    keep = (snaps["as_of"] < due_now) & (snaps["as_of"] <= tl.data_end)
    keep &= snaps["completed_at"].isna() | (snaps["as_of"] < snaps["completed_at"])
    snaps = snaps[keep]
    return snaps[["milestone_id", "as_of"]].sort_values(["milestone_id", "as_of"]).reset_index(drop=True)


def scope_rows(snaps: pd.DataFrame, tl: Timelines) -> pd.DataFrame:
    """One row per (snapshot, ticket) committed to the milestone at as_of.

    ``snap`` indexes ``snaps``; ``member_until`` is when that membership ended (far future if
    it had not).
    """
    pairs = snaps.reset_index(names="snap").merge(tl.membership, on="milestone_id", how="inner")
    pairs = pairs[(pairs["start"] <= pairs["as_of"]) & (pairs["as_of"] < pairs["end"])]
    pairs = pairs.drop_duplicates(["snap", "ticket_id"], keep="last")
    return pairs.rename(columns={"end": "member_until"}).drop(columns="start").reset_index(drop=True)


def evaluation_time(snaps: pd.DataFrame, tables: Tables, tl: Timelines, grace_days: float) -> pd.Series:
    """E per snapshot: due date known at as_of plus grace, or completion if earlier."""
    due_now = asof(snaps, tl.due_changes, "as_of", "milestone_id", ["due"])["due"]
    deadline = due_now + pd.Timedelta(days=grace_days)
    completed = snaps["milestone_id"].map(tables.milestones.set_index("milestone_id")["completed_at"])
    return deadline.where(completed.isna() | (completed > deadline), completed)


def ticket_outcomes(scope: pd.DataFrame, evaluated_at: pd.Series, tl: Timelines) -> pd.Series:
    """1 where a committed ticket was not done, or no longer in the milestone, at E."""
    rows = scope.assign(evaluated_at=scope["snap"].map(evaluated_at))
    status = asof(rows, tl.ticket_values["status"], "evaluated_at", "ticket_id", ["value"])["value"]
    done = (status == "done") & (rows["member_until"] > rows["evaluated_at"])
    return (~done).astype("float64")


def labels(snaps: pd.DataFrame, scope: pd.DataFrame, tables: Tables, tl: Timelines,
           grace_days: float) -> pd.DataFrame:
    """``label`` (1 slipped, 0 on time, NaN not yet known), ``label_known_at`` per snapshot and
    the per-ticket outcomes of the scope rows."""
    evaluated_at = evaluation_time(snaps, tables, tl, grace_days)
    ticket_slip = ticket_outcomes(scope, evaluated_at, tl)
    slipped = ticket_slip.groupby(scope["snap"]).max().reindex(snaps.index)
    known = evaluated_at <= tl.data_end
    label = slipped.where(known)
    return pd.DataFrame({"label": label, "label_known_at": evaluated_at}, index=snaps.index), ticket_slip
