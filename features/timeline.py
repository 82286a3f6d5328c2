"""Event timelines: the canonical events sorted once and split by what they change.

Every later question of the form "what was X at time t" is an as-of join against one of
these frames, never a scan of the whole event table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.tables import Tables

FAR_FUTURE = pd.Timestamp("9999-01-01", tz="UTC").as_unit("us")
FAR_PAST = pd.Timestamp("1000-01-01", tz="UTC").as_unit("us")


@dataclass
class Timelines:
    """Per-field views of the events, each sorted by time."""

    ticket_values: dict[str, pd.DataFrame]  # field -> ticket_id, at, value (+ counter)
    membership: pd.DataFrame  # ticket_id, milestone_id, start, end: intervals in a milestone
    milestone_moves: pd.DataFrame  # milestone_id, at, added, removed (cumulative)
    due_changes: pd.DataFrame  # milestone_id, at, due, replans (cumulative)
    done: pd.DataFrame  # project, at, cum_done: project throughput counter
    data_end: pd.Timestamp


def build_timelines(tables: Tables, data_end: pd.Timestamp | None = None) -> Timelines:
    """Split and sort the events of ``tables`` into the timelines the features use; the data
    ends at ``data_end`` (default: the last event)."""
    ev = tables.events
    tev = ev[ev["ticket_id"].notna()]
    values = {}
    for field_ in ("status", "assignee", "priority", "story_points", "type"):
        part = tev.loc[tev["field"] == field_, ["ticket_id", "at", "from_value", "to_value"]]
        part = part.sort_values(["at"], kind="stable")
        changes = part["from_value"].notna().astype("int32")
        if field_ == "status":
            changes = ((part["from_value"] == "done") & (part["to_value"] != "done")).astype("int32")
        part = part.assign(changes=changes.groupby(part["ticket_id"]).cumsum())
        values[field_] = part.drop(columns="from_value").rename(columns={"to_value": "value"})
    values["story_points"]["value"] = pd.to_numeric(values["story_points"]["value"])
    membership = _membership(tev[tev["field"] == "milestone"])
    moves = _milestone_moves(tev[tev["field"] == "milestone"])
    due = _due_changes(ev[(ev["field"] == "due_at") & ev["milestone_id"].notna()], tables)
    status = values["status"]
    done = status[status["value"] == "done"][["ticket_id", "at"]]
    done = done.assign(project=done["ticket_id"].map(tables.tickets.set_index("ticket_id")["project"]))
    done = done.dropna(subset=["project"]).sort_values("at", kind="stable")
    done["cum_done"] = done.groupby("project").cumcount() + 1
    if data_end is None:
        data_end = ev["at"].max() if len(ev) else pd.Timestamp.now(tz="UTC")
    return Timelines(values, membership, moves, due, done[["project", "at", "cum_done"]], data_end)


def _membership(mev: pd.DataFrame) -> pd.DataFrame:
    """Intervals [start, end) during which a ticket belonged to a milestone."""
    joins = mev.loc[mev["to_value"].notna(), ["ticket_id", "to_value", "at"]]
    leaves = mev.loc[mev["from_value"].notna(), ["ticket_id", "from_value", "at"]]
    joins = joins.rename(columns={"to_value": "milestone_id", "at": "start"})
    leaves = leaves.rename(columns={"from_value": "milestone_id", "at": "end"})
    joins = joins.sort_values("start", kind="stable")
    leaves = leaves.sort_values("end", kind="stable")
    joins["n"] = joins.groupby(["ticket_id", "milestone_id"]).cumcount()
    leaves["n"] = leaves.groupby(["ticket_id", "milestone_id"]).cumcount()
    # the k-th leave closes the k-th join; a leave with no join before it (data starting
    # mid-history) is dropped by the left merge
    out = joins.merge(leaves, on=["ticket_id", "milestone_id", "n"], how="left")
    out["end"] = out["end"].fillna(FAR_FUTURE)
    out = out[out["end"] >= out["start"]]
    return out.drop(columns="n").reset_index(drop=True)


def _milestone_moves(mev: pd.DataFrame) -> pd.DataFrame:
    rows = pd.concat([
        pd.DataFrame({"milestone_id": mev["to_value"], "at": mev["at"], "added": 1, "removed": 0}),
        pd.DataFrame({"milestone_id": mev["from_value"], "at": mev["at"], "added": 0, "removed": 1}),
    ]).dropna(subset=["milestone_id"]).sort_values("at", kind="stable")
    grouped = rows.groupby("milestone_id")
    rows["added"] = grouped["added"].cumsum()
    rows["removed"] = grouped["removed"].cumsum()
    return rows.reset_index(drop=True)


def _due_changes(dev: pd.DataFrame, tables: Tables) -> pd.DataFrame:
    """Due date in force from each time on; milestones without due history get their due_at
    from the start of time (an export that keeps only the final date, as Jira versions do)."""
    rows = pd.DataFrame({
        "milestone_id": dev["milestone_id"],
        "at": dev["at"],
        "due": pd.to_datetime(dev["to_value"], utc=True, format="ISO8601").astype("datetime64[us, UTC]"),
        "replan": dev["from_value"].notna().astype("int32"),
    })
    ms = tables.milestones
    no_history = ms[~ms["milestone_id"].isin(rows["milestone_id"]) & ms["due_at"].notna()]
    static = pd.DataFrame({
        "milestone_id": no_history["milestone_id"],
        "at": FAR_PAST,
        "due": no_history["due_at"],
        "replan": np.int32(0),
    })
    rows = pd.concat([rows, static]).sort_values("at", kind="stable").reset_index(drop=True)
    rows["replans"] = rows.groupby("milestone_id")["replan"].cumsum()
    first_due = rows.groupby("milestone_id")["due"].transform("first")
    rows["shift_days"] = (rows["due"] - first_due).dt.total_seconds() / 86400
    return rows.drop(columns="replan")


def _micros(times: pd.Series) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (one unit on both sides of a join)."""
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.to_datetime(times, utc=True)
    return times.array.as_unit("us").asi8


def asof(left: pd.DataFrame, right: pd.DataFrame, on_left: str, by: str, cols: list[str],
         right_on: str = "at", by_right: str | None = None) -> pd.DataFrame:
    """For each row of ``left``, the last row of ``right`` with the same key at or before the time.

    ``right`` is sorted by its time column (every timeline is); among rows with equal key and
    time the last one wins, as in ``pd.merge_asof(direction="backward")``. Returns ``cols``
    aligned with ``left``'s index (NaN where nothing precedes).

    Searching one sorted integer key (key, rank of time) costs a few numpy calls whatever the
    size, so one milestone online pays microseconds where a merge would pay milliseconds.
    """
    key_right = by_right or by
    codes, _ = pd.factorize(pd.concat([left[by], right[key_right]], ignore_index=True), use_na_sentinel=True)
    lkey, rkey = codes[: len(left)], codes[len(left):]
    rtime = _micros(right[right_on])
    if len(rtime) > 1 and (np.diff(rtime) < 0).any():
        raise ValueError(f"asof: right side must be sorted by {right_on!r}")
    # rank of a time = how many right rows are at or before it: t_right <= t_left exactly
    # when rank(t_right) <= rank(t_left), and ranks are small enough to pack beside the key
    lrank = np.searchsorted(rtime, _micros(left[on_left]), side="right")
    rrank = np.searchsorted(rtime, rtime, side="right")
    order = np.argsort(rkey, kind="stable")  # by key, then time, ties in their original order
    base = np.int64(len(right) + 1)
    packed = rkey[order].astype(np.int64) * base + rrank[order]
    pos = np.searchsorted(packed, lkey.astype(np.int64) * base + lrank, side="right") - 1
    found = (pos >= 0) & (lkey >= 0)
    found[found] = rkey[order[pos[found]]] == lkey[found]
    if not len(right):
        return right[cols].reindex(range(len(left))).set_axis(left.index)
    picked = right[cols].iloc[order[np.where(found, pos, 0)]].reset_index(drop=True)
    return picked.where(pd.Series(found)).set_axis(left.index)
