"""Event timelines: the canonical tables as integer codes, the events sorted once and split by
what they change.

Tickets, milestones and projects become integer codes (their ids sorted, so code order is id
order); every string column of the events is factorized once, and what a value means (a status,
a milestone, a date) is worked out on its few distinct values, not on every row. Times become
int64 microseconds since the epoch, ``NAT`` where unknown. Every later question of the form
"what was X at time t" is a lookup in one ``Timeline``, never a scan of the event table; a
lookup costs a few numpy calls whatever the size, so one milestone online pays microseconds
and a million snapshots offline pay seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from slipcast.core.vocabulary import LinkKind, TicketStatus
from slipcast.ingest.tables import Tables

NAT = np.iinfo(np.int64).min  # a missing time: compares below every real one
DAY_US = 86_400_000_000
FAR_PAST = int(np.datetime64("1000-01-01", "us").astype(np.int64))
FAR_FUTURE = int(np.datetime64("9999-01-01", "us").astype(np.int64))


def open_at(start: np.ndarray, completed: np.ndarray, t: int) -> np.ndarray:
    """Which milestones are open at ``t`` (µs), given their start and completion times (µs,
    ``NAT`` where unknown): started by ``t``, and not completed by then. The one rule for the
    live state's open milestones and a columns request's."""
    return (start != NAT) & (start <= t) & ((completed == NAT) | (completed > t))


def micros(times) -> np.ndarray:
    """Timestamps (a column, an array, a list; int64 arrays are taken as microseconds already)
    as int64 microseconds since the epoch, NAT where missing."""
    if isinstance(times, np.ndarray) and times.dtype == np.int64:
        return times
    if not isinstance(times, (pd.Series, pd.Index)):
        times = pd.Series(times)
    if not isinstance(times.dtype, pd.DatetimeTZDtype):
        times = pd.to_datetime(times, utc=True)
    return times.array.as_unit("us").asi8.astype(np.int64, copy=False)


def timestamps(us: np.ndarray) -> pd.arrays.DatetimeArray:
    """int64 microseconds (NAT where missing) back to UTC timestamps."""
    return pd.array(np.asarray(us, dtype=np.int64).view("M8[us]")).tz_localize("UTC")


def parse_times(values, errors: str = "raise") -> np.ndarray:
    """Event values that hold times (a due date: ISO-8601, UTC where no offset is given) as
    int64 microseconds; NAT where missing (or unreadable, with ``errors="coerce"``)."""
    # an array, not a Series: the same parse without a Series' fixed cost, which is most of it for
    # the few values a request holds
    return micros(pd.to_datetime(np.asarray(values, dtype=object), utc=True, format="ISO8601", errors=errors))


def parse_numbers(values, errors: str = "raise") -> np.ndarray:
    """Event values that hold numbers (story points) as floats; NaN where missing (or
    unreadable, with ``errors="coerce"``)."""
    return np.asarray(pd.to_numeric(np.asarray(values, dtype=object), errors=errors), dtype=np.float64)


def days_between(later_us: np.ndarray, earlier_us: np.ndarray) -> np.ndarray:
    """``later - earlier`` in days, NaN where either time is missing."""
    known = (later_us != NAT) & (earlier_us != NAT)
    return np.where(known, (later_us - earlier_us) / DAY_US, np.nan)


def take(values, codes: np.ndarray):
    """``values[codes]``, missing where a code is -1 (an unknown entity)."""
    return pd.api.extensions.take(values, np.asarray(codes, dtype=np.intp), allow_fill=True)


def pick(column: np.ndarray, pos: np.ndarray, missing=np.nan) -> np.ndarray:
    """``column[pos]``, ``missing`` where ``pos`` is -1 (nothing found)."""
    if not len(column):
        return np.full(len(pos), missing)
    return np.where(pos >= 0, column[np.maximum(pos, 0)], missing)


def later(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The later of two times, NAT where either is missing."""
    return np.where((a == NAT) | (b == NAT), NAT, np.maximum(a, b))


def shifted(times: np.ndarray, delta_us: int) -> np.ndarray:
    """``times`` moved by ``delta_us`` microseconds; missing times stay missing."""
    return np.where(times == NAT, NAT, times + np.int64(delta_us))


def matching(keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A one-to-many join of ``queries`` to rows whose sorted ``keys`` equal them: the position
    of every matching row, and the query each matched."""
    lo = np.searchsorted(keys, queries, side="left")
    hi = np.searchsorted(keys, queries, side="right")
    counts = hi - lo
    owner = np.repeat(np.arange(len(lo)), counts)
    return np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts - lo, counts), owner


def last_of_each(key: np.ndarray) -> np.ndarray:
    """Mask of the last row of each distinct ``key``, rows kept in their order."""
    _, first_from_end = np.unique(key[::-1], return_index=True)
    mask = np.zeros(len(key), dtype=bool)
    mask[len(key) - 1 - first_from_end] = True
    return mask


def running_sum(key: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The cumulative sum of ``x`` within each run of equal ``key`` (rows grouped by key)."""
    total = np.cumsum(x)
    if not len(x):
        return total
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    before = (total - x)[starts]
    return total - np.repeat(before, np.diff(np.append(starts, len(x))))


class Timeline:
    """Rows of one kind of change, sorted by (key, time), ties in their given order.

    ``find(keys, times)`` gives, for each query, the position of the last row with that key at
    or before that time (-1 where none), as ``pd.merge_asof(direction="backward")`` would.
    ``running`` columns are counted up within each key in that order (changes so far).
    """

    def __init__(self, key: np.ndarray, at: np.ndarray, values: dict[str, np.ndarray] | None = None,
                 running: dict[str, np.ndarray] | None = None):
        key = np.asarray(key, dtype=np.int64)
        order = np.lexsort((at, key))
        self.key, self.at = key[order], at[order]
        self.values = {name: np.asarray(v)[order] for name, v in (values or {}).items()}
        for name, step in (running or {}).items():
            self.values[name] = running_sum(self.key, np.asarray(step)[order])
        # a time's rank (rows at or before it) keeps order and fits beside the key in one int64;
        # ranked in time order, where each lookup starts from the one before
        by_time = np.argsort(self.at)
        self._times = self.at[by_time]
        rank = np.empty(len(self.at), dtype=np.intp)
        rank[by_time] = np.searchsorted(self._times, self._times, side="right")
        self._base = np.int64(len(self.at) + 1)
        self._packed = self.key * self._base + rank

    def __len__(self) -> int:
        return len(self.key)

    def find(self, key: np.ndarray, at: np.ndarray, of: np.ndarray | None = None) -> np.ndarray:
        """Position of the last row with ``key`` at or before ``at``, per query; -1 where none.

        With ``of``, ``at`` holds one time per group and ``of`` each query's group (a snapshot's
        scope rows share its as_of): each distinct time is looked up once."""
        key = np.asarray(key, dtype=np.int64)
        rank = np.searchsorted(self._times, at, side="right")
        if of is not None:
            rank = rank[of]
        pos = np.searchsorted(self._packed, key * self._base + rank, side="right") - 1
        found = (pos >= 0) & (key >= 0)
        found[found] = self.key[pos[found]] == key[found]
        return np.where(found, pos, -1)

    def get(self, name: str, pos: np.ndarray, missing=np.nan) -> np.ndarray:
        """Column ``name`` at positions ``pos`` from ``find``, ``missing`` where it found nothing."""
        return pick(self.values[name], pos, missing)

    def first_at(self, n_keys: int) -> np.ndarray:
        """The time of each key's first row (NAT for keys without rows)."""
        first = np.full(n_keys, NAT, dtype=np.int64)
        keys, where = np.unique(self.key, return_index=True)
        first[keys] = self.at[where]
        return first


@dataclass
class Timelines:
    """A tracker history as codes and per-field timelines (each sorted by entity and time)."""

    tickets: pd.Index  # ticket id by ticket code
    milestones: pd.Index  # milestone id by milestone code (sorted)
    projects: pd.Index  # project by project code
    values: pd.Index  # the events' to_value strings by value code
    ticket_project: np.ndarray  # project code per ticket (-1 unknown)
    ticket_created: np.ndarray  # µs per ticket
    ticket_type: pd.Index  # the tickets' own type strings by type code
    ticket_type_code: np.ndarray  # type code per ticket (-1 none)
    milestone_project: np.ndarray
    milestone_kind: pd.api.extensions.ExtensionArray | np.ndarray  # kind per milestone code
    milestone_start: np.ndarray
    milestone_completed: np.ndarray
    ticket_values: dict[str, Timeline]  # field -> key ticket; value (a value code, or points), changes
    membership: dict[str, np.ndarray]  # ticket, milestone, start, end: intervals [start, end), by milestone then start
    moves: Timeline  # key milestone; added, removed (cumulative)
    due: Timeline  # key milestone; due (µs), replans (cumulative), shift_days
    done: Timeline  # key project; cum_done: the project's finished tickets so far
    dependencies: dict[str, np.ndarray]  # ticket, dependency, since (µs): who waits on whom, by ticket
    parents: dict[str, np.ndarray]  # parent, child: an epic or initiative and what it holds (parent links)
    data_end: int

    def value_code(self, value: str) -> int:
        """The code of an event value (-2, matching nothing, if no event holds it)."""
        return _code_of(self.values, value)


def _index(values) -> pd.Index:
    """An index of values as they are typed (Python strings stay objects, never re-inferred)."""
    return pd.Index(values, dtype=values.dtype)


def _codes(*columns) -> tuple[list[np.ndarray], pd.Index]:
    """Shared sorted codes for several columns of ids (-1 where missing)."""
    values = [_values(c) for c in columns]
    if all(isinstance(v, np.ndarray) for v in values):
        joined = np.concatenate(values)
    else:
        joined = pd.concat([pd.Series(v, dtype=v.dtype) for v in values], ignore_index=True)
    codes, ids = pd.factorize(joined, sort=True)
    bounds = np.cumsum([0] + [len(v) for v in values])
    return [codes[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:])], _index(ids)


def _factorize(column) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(column)
    return codes.astype(np.int64), _index(uniques)


def _by_code(n: int, codes: np.ndarray, values, missing) -> np.ndarray:
    """An array over codes 0..n-1: ``values`` at ``codes``, ``missing`` elsewhere."""
    out = np.full(n, missing, dtype=np.result_type(np.asarray(values).dtype, np.min_scalar_type(missing)))
    out[codes] = values
    return out


def _code_of(index: pd.Index, value: str) -> int:
    """The code of ``value`` in ``index`` (-2, matching no code, if absent)."""
    return int(index.get_loc(value)) if value in index else -2


def _values(column):
    """A column's values: a frame's own array where pandas holds it in one of its own (Arrow
    strings stay Arrow), else a numpy array (so that numpy columns join in one concatenation)."""
    if isinstance(column, (pd.Series, pd.Index)):
        return column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array
    return np.asarray(column)


def build_timelines(tables: Tables, data_end: pd.Timestamp | None = None) -> Timelines:
    """Code and sort the tables into the timelines the features use; the data ends at
    ``data_end`` (default: the last event). Columns are read by name, so a table may be a
    DataFrame or a dict of arrays (a request's state, see ``features.now``)."""
    ev, tk, ms, lk = tables.events, tables.tickets, tables.milestones, tables.links
    (tk_code, ev_ticket, lk_from, lk_to), tickets = _codes(
        tk["ticket_id"], ev["ticket_id"], lk["from_ticket"], lk["to_ticket"])
    field, fields = _factorize(ev["field"])
    to_code, values = _factorize(ev["to_value"])
    from_code, from_values = _factorize(ev["from_value"])
    at = micros(ev["at"])

    def rows(name: str, of: np.ndarray) -> np.ndarray:
        return np.flatnonzero((field == fields.get_loc(name)) & (of >= 0)) if name in fields else np.zeros(0, int)

    # milestone ids: the table's, those events name, and those tickets move between
    moved = rows("milestone", ev_ticket)
    used_to, used_from = np.unique(to_code[moved]), np.unique(from_code[moved])
    used_to, used_from = used_to[used_to >= 0], used_from[used_from >= 0]
    (ms_code, ev_milestone, to_ms, from_ms), milestones = _codes(
        ms["milestone_id"], ev["milestone_id"], values[used_to], from_values[used_from])
    (tk_project, ms_project), projects = _codes(tk["project"], ms["project"])

    n_tickets, n_milestones = len(tickets), len(milestones)
    ticket_project = _by_code(n_tickets, tk_code, tk_project, -1)
    ticket_created = _by_code(n_tickets, tk_code, micros(tk["created_at"]), NAT)
    type_code, ticket_types = _factorize(tk["type"])
    ticket_type_code = _by_code(n_tickets, tk_code, type_code, -1)

    ticket_values = {}
    done_code, from_done = _code_of(values, TicketStatus.DONE), _code_of(from_values, TicketStatus.DONE)
    for name in ("status", "assignee", "priority", "story_points", "type"):
        i = rows(name, ev_ticket)
        value = to_code[i]
        if name == "story_points":
            value = _parsed(value, values, parse_numbers, np.nan)
        changes = (from_code[i] == from_done) & (to_code[i] != done_code) if name == "status" else from_code[i] >= 0
        ticket_values[name] = Timeline(ev_ticket[i], at[i], {"value": value}, {"changes": changes.astype(np.int64)})

    joins = pick(_by_code(len(values), used_to, to_ms, -1), to_code[moved], -1)
    leaves = pick(_by_code(len(from_values), used_from, from_ms, -1), from_code[moved], -1)
    membership = _membership(ev_ticket[moved], joins, leaves, at[moved])
    moves_key = np.concatenate([joins, leaves])
    keep = moves_key >= 0
    added = np.repeat([1.0, 0.0], len(moved))
    moves = Timeline(moves_key[keep], np.tile(at[moved], 2)[keep],
                     running={"added": added[keep], "removed": 1.0 - added[keep]})

    milestone_start = _by_code(n_milestones, ms_code, micros(ms["start_at"]), NAT)
    milestone_completed = _by_code(n_milestones, ms_code, micros(ms["completed_at"]), NAT)
    milestone_project = _by_code(n_milestones, ms_code, ms_project, -1)
    milestone_kind = take(_values(ms["kind"]), _by_code(n_milestones, ms_code, np.arange(len(ms_code)), -1))

    due = _due_changes(rows("due_at", ev_milestone), ev_milestone, at, to_code, from_code, values,
                       ms_code, micros(ms["due_at"]))

    status = ticket_values["status"]
    finished = status.values["value"] == done_code
    done_project = ticket_project[status.key[finished]]
    keep = done_project >= 0
    done = Timeline(done_project[keep], status.at[finished][keep], running={"cum_done": np.ones(int(keep.sum()))})

    deps = _dependencies(lk, lk_from, lk_to, ticket_created)
    is_parent = np.asarray(_values(lk["kind"]) == LinkKind.PARENT, dtype=bool)
    parents = {"parent": lk_from[is_parent], "child": lk_to[is_parent]}
    end = int(at.max()) if len(at) else micros([pd.Timestamp.now(tz="UTC")])[0]
    if data_end is not None:
        end = micros([pd.Timestamp(data_end)])[0]
    return Timelines(tickets, milestones, projects, values, ticket_project, ticket_created, ticket_types,
                     ticket_type_code, milestone_project, milestone_kind, milestone_start, milestone_completed,
                     ticket_values, membership, moves, due, done, deps, parents, end)


def _parsed(codes: np.ndarray, values: pd.Index, parse, missing) -> np.ndarray:
    """``parse`` applied to the distinct values that ``codes`` name (not to every row), per row;
    ``missing`` where a code is -1."""
    used = np.unique(codes)
    used = used[used >= 0]
    table = np.full(len(values), missing)
    if len(used):
        table[used] = parse(values[used])
    return pick(table, codes, missing)


def _group_rank(key: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each group of equal ``key``, in row order."""
    order = np.argsort(key, kind="stable")
    position = np.arange(len(key)) - np.searchsorted(key[order], key[order], side="left")
    rank = np.empty(len(key), dtype=np.int64)
    rank[order] = position
    return rank


def _membership(ticket: np.ndarray, joins: np.ndarray, leaves: np.ndarray, at: np.ndarray) -> dict[str, np.ndarray]:
    """Intervals [start, end) during which a ticket belonged to a milestone, replaying each
    (ticket, milestone)'s joins and leaves in time order: a join opens an interval unless one is
    open, a leave closes the open one. A leave with nothing open (a changelog that starts
    mid-history, or was truncated) and a join while open close or open nothing. Ordered by
    milestone, then start."""
    width = np.int64(max(int(joins.max(initial=-1)), int(leaves.max(initial=-1))) + 2)
    j, l_ = np.flatnonzero(joins >= 0), np.flatnonzero(leaves >= 0)
    rows = np.concatenate([j, l_])
    is_join = np.concatenate([np.ones(len(j), bool), np.zeros(len(l_), bool)])
    milestone = np.concatenate([joins[j], leaves[l_]])
    pair = ticket[rows] * width + milestone
    order = np.lexsort((rows, at[rows], pair))  # by pair, then time, ties in event order
    pair, is_join, rows, milestone = pair[order], is_join[order], rows[order], milestone[order]
    new_pair = np.r_[True, pair[1:] != pair[:-1]] if len(pair) else np.zeros(0, bool)
    was_open = np.r_[False, is_join[:-1]] & ~new_pair if len(pair) else np.zeros(0, bool)  # the last event a join
    opens, closes = is_join & ~was_open, ~is_join & was_open
    start_rows, start_pair = rows[opens], pair[opens]
    end_rows, end_pair = rows[closes], pair[closes]
    # opens and closes alternate within a pair: the k-th close ends the k-th open
    k_start = _group_rank(start_pair)
    k_end = _group_rank(end_pair)
    depth = np.int64(len(at) + 1)
    closing = pd.Index(end_pair * depth + k_end).get_indexer(start_pair * depth + k_start)
    end = pick(at[end_rows], closing, FAR_FUTURE)
    first = np.lexsort((start_rows, at[start_rows], milestone[opens]))  # by milestone, start, event order
    return {"ticket": ticket[start_rows][first], "milestone": milestone[opens][first],
            "start": at[start_rows][first], "end": end[first]}


def _due_changes(rows: np.ndarray, milestone: np.ndarray, at: np.ndarray, to_code: np.ndarray,
                 from_code: np.ndarray, values: pd.Index, ms_code: np.ndarray, due_at: np.ndarray) -> Timeline:
    """Due date in force from each time on; milestones without due history get their due_at
    from the start of time (an export that keeps only the final date, as Jira versions do)."""
    due = _parsed(to_code[rows], values, parse_times, NAT)
    static = ~np.isin(ms_code, milestone[rows]) & (due_at != NAT)
    key = np.concatenate([milestone[rows], ms_code[static]])
    timeline = Timeline(key, np.concatenate([at[rows], np.full(int(static.sum()), FAR_PAST)]),
                        {"due": np.concatenate([due, due_at[static]])},
                        {"replans": np.concatenate([from_code[rows] >= 0, np.zeros(int(static.sum()), bool)])})
    # shift from the first known due date the milestone had
    d = timeline.values["due"]
    dated = np.flatnonzero(d != NAT)
    keys, first = np.unique(timeline.key[dated], return_index=True)
    first_due = _by_code(int(timeline.key.max(initial=-1)) + 1, keys, d[dated][first], NAT)[timeline.key]
    timeline.values["shift_days"] = days_between(d, first_due)
    return timeline


def _dependencies(lk: pd.DataFrame, lk_from: np.ndarray, lk_to: np.ndarray,
                  created: np.ndarray) -> dict[str, np.ndarray]:
    """Who waits on whom: (ticket, dependency, since) from ``depends_on`` and ``blocks`` links,
    by ticket. A link without a timestamp exists from when both of its tickets did."""
    kind = _values(lk["kind"])
    depends, blocks = np.asarray(kind == "depends_on", dtype=bool), np.asarray(kind == "blocks", dtype=bool)
    ticket = np.concatenate([lk_from[depends], lk_to[blocks]])
    dependency = np.concatenate([lk_to[depends], lk_from[blocks]])
    since = micros(lk["created_at"])
    since = np.concatenate([since[depends], since[blocks]])
    a, b = created[ticket], created[dependency]
    known_from = np.where((a == NAT) | (b == NAT), NAT, np.maximum(a, b))
    since = np.where(since == NAT, known_from, since)
    order = np.argsort(ticket, kind="stable")
    return {"ticket": ticket[order], "dependency": dependency[order], "since": since[order]}
