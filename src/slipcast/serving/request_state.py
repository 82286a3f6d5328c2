"""A request's state as canonical columns, checked at once, whichever shape it came in.

Two shapes carry state: items (``ForecastRequest``: one milestone with its tickets, events and
links as objects; a batch holds many) and columns (``TablesRequest``: a team's canonical tables
as columns, every milestone of it scored from one copy of its tickets). Both become the same
columns (``features.now.Columns``) and pass the same checks, each a few calls over whole
columns; an error names where the value sits in the body it came in (docs/architecture.md,
"Requests as columns").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from slipcast.core.contracts import EARLIEST, LATEST, YEARS
from slipcast.core.errors import FieldError
from slipcast.features.now import Columns, state_tables
from slipcast.features.timeline import NAT, micros, open_at, parse_numbers, parse_times, timestamps
from slipcast.ingest.tables import Tables
from slipcast.scoring.records import When
from slipcast.serving.schemas import (
    EventColumns,
    ForecastRequest,
    LinkColumns,
    OutcomeColumns,
    TablesRequest,
)

SEP = "\x1f"  # namespaces each item's ids inside a batch
_UTC_US = pa.timestamp("us", tz="UTC")
_EPOCH, _MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)
_EARLIEST_US, _LATEST_US = ((bound - _EPOCH) // _MICROSECOND for bound in (EARLIEST, LATEST))
_ARROW_FROM = 500  # times per column (measured: docs/architecture.md, "Requests as columns")
_TIMES = TypeAdapter(list[When | None])


def times(values: list) -> np.ndarray:
    """Aware datetimes (None where unknown) as int64 µs since the epoch, NAT where unknown.
    Arrow converts a long column at half the cost of a Python loop, but its fixed cost per call
    outweighs that below a few hundred times (a single request's columns)."""
    if len(values) < _ARROW_FROM:
        return np.array([NAT if t is None else (t - _EPOCH) // _MICROSECOND for t in values], dtype=np.int64)
    return pa.array(values, type=_UTC_US).cast(pa.int64()).fill_null(NAT).to_numpy()


def _bounded(us: np.ndarray) -> np.ndarray:
    """Times (µs) inside the bounds every time keeps (``contracts.EARLIEST``, ``LATEST``)."""
    return (us != NAT) & (us >= _EARLIEST_US) & (us < _LATEST_US)


def read_times(values: list, loc: tuple) -> np.ndarray:
    """A column of times as sent (ISO-8601 text, None where unknown) as int64 µs, NAT where
    unknown, to the rules of the item shape's times (``schemas.When``). Arrow reads the column in
    one call; a column it cannot read whole goes through pydantic's parser, which reads what
    Arrow does not and names the first time it refuses (``loc``: the column in the body)."""
    try:
        us = pa.array(values, type=pa.string()).cast(_UTC_US).cast(pa.int64()).fill_null(NAT).to_numpy()
        if (_bounded(us) | (us == NAT)).all():
            return us
    except pa.ArrowInvalid:
        pass
    try:
        return times(_TIMES.validate_python(values))
    except ValidationError as error:
        first = error.errors()[0]
        raise FieldError(("body", *loc, *first["loc"]), first["msg"]) from None


_YEAR_FIRST = re.compile(r"\d{4}-")
# event fields whose values the feature code reads: which values it can read (of an array of
# strings), and what they are
READABLE = {
    "due_at": (lambda text: _bounded(parse_times(text, errors="coerce"))
               & np.array([_YEAR_FIRST.match(t) is not None for t in text], dtype=bool),
               f"an ISO-8601 time (UTC where it has no offset) in {YEARS}"),
    "story_points": (lambda text: np.isfinite(parse_numbers(text, errors="coerce")), "a finite number"),
}


@dataclass
class RequestState:
    """The state of a request as columns, the forecasts it asks for, and where each row sits.

    ``owner``: per table (``snaps`` too), the item each row came in, ascending (all 0 for a
    columns request); ``locate(table, item, row, field)``: where that value sits in the body
    (``row`` counted within its item).
    """

    milestones: Columns
    tickets: Columns
    events: Columns
    links: Columns
    snaps: pd.DataFrame  # milestone_id, as_of: the forecasts asked for
    snap_rows: np.ndarray  # per forecast: its milestone's row
    snap_as_of: np.ndarray  # per forecast: as_of in µs
    outcomes: pd.DataFrame  # project, known_at, slipped: the teams' earlier milestones
    as_ofs: list[datetime]  # per forecast
    names: list[str]  # per forecast: the milestone id as sent
    projects: list[str]  # per forecast
    ticket_as_of: np.ndarray  # µs per ticket: the as_of its state is sent as of
    owner: dict[str, np.ndarray]
    locate: Callable[[str, int, int, str | None], list]

    def tables(self) -> Tables:
        """The canonical tables, events implied for tickets sent without any."""
        return state_tables(self.milestones, self.tickets, self.events, self.links)

    def check(self) -> None:
        """Refuses the first broken value: the earliest item with one, in it the first rule
        broken (in the order below), and in that the first row. Raises ``FieldError``."""
        ms, tk, ev, lk = self.milestones, self.tickets, self.events, self.links
        due, start = ms["due_at"], ms["start_at"]
        link_keys = list(zip(lk["from_ticket"], lk["to_ticket"], lk["kind"]))
        rules = [  # (table, field, which rows break it, message of a row)
            ("milestones", "due_at", due <= start, lambda i: "due_at must be after start_at"),
            ("snaps", "as_of", self.snap_as_of < start[self.snap_rows], lambda i: "as_of is before the milestone's start_at"),
            ("tickets", "ticket_id", _repeated(list(tk["ticket_id"])),
             lambda i: f"duplicate ticket_id {_sent(tk['ticket_id'][i])!r}"),
            ("tickets", "project", pd.isna(tk["project"]),
             lambda i: "a ticket in no milestone (or in one not sent) names its project"),
            ("tickets", "created_at", tk["created_at"] > self.ticket_as_of,
             lambda i: "created after as_of: send the state as of as_of"),
            ("events", None, pd.isna(ev["ticket_id"]) & pd.isna(ev["milestone_id"]),
             lambda i: "an event names a ticket_id or a milestone_id"),
            *[("events", "to_value", _unreadable(ev, field), lambda i, field=field, what=what: f"a {field} event's "
               f"to_value is {what}") for field, (_, what) in READABLE.items()],
            ("links", None, _repeated(link_keys),
             lambda i: "duplicate link " + str(tuple(_sent(v) for v in link_keys[i]))),
        ]
        first = None
        for rank, (table, field, bad, message) in enumerate(rules):
            rows = np.flatnonzero(bad)
            if len(rows) and (first is None or (self.owner[table][rows[0]], rank) < first[:2]):
                first = (self.owner[table][rows[0]], rank, table, field, int(rows[0]), message)
        if first is not None:
            item, _, table, field, row, message = first
            within = row - int(np.searchsorted(self.owner[table], item))
            raise FieldError(("body", *self.locate(table, int(item), within, field)), message(row))


def _sent(value) -> str:
    """An id as its request sent it (a batch's namespace taken off)."""
    return str(value).split(SEP, 1)[-1]


def _repeated(keys: list) -> np.ndarray:
    """Which keys an earlier row already has."""
    if len(keys) < 2:
        return np.zeros(len(keys), dtype=bool)
    return pd.Series(keys, dtype=object).duplicated().to_numpy(bool)


def _unreadable(events: Columns, field: str) -> np.ndarray:
    """Which events of ``field`` carry a to_value the feature code cannot read."""
    rows = np.flatnonzero((events["field"] == field) & pd.notna(events["to_value"]))
    bad = np.zeros(len(events["field"]), dtype=bool)
    if len(rows):
        bad[rows[~READABLE[field][0](events["to_value"][rows])]] = True
    return bad


def _strings(values) -> np.ndarray:
    return np.array(values, dtype=object)


def _id_column(ids: np.ndarray) -> pd.Series:
    """Ids as a frame's column of objects, as the tables hold them: a frame would infer Arrow
    strings, a conversion there and again at each lookup of them (0.4 ms of a single forecast)."""
    return pd.Series(ids, dtype=object)


def item_state(reqs: list[ForecastRequest], now: datetime, within: Callable[[int], list] = lambda i: []
               ) -> RequestState:
    """The state of item requests (``now``: the as_of of those that give none; ``within(i)``:
    where item i sits in the body); in a batch, every id is prefixed with its item's number so
    that items never share one."""
    batch = len(reqs) > 1
    prefix = np.array([f"{i}{SEP}" for i in range(len(reqs))], dtype=object)
    as_ofs = [r.as_of or now for r in reqs]

    def rows(attr: str) -> tuple[list, np.ndarray]:
        items = [getattr(r, attr) for r in reqs]
        return [x for xs in items for x in xs], np.repeat(np.arange(len(reqs)), [len(xs) for xs in items])

    def ids(values: list, owners, where: list[bool] | None = None) -> np.ndarray:
        out = _strings(values)
        if batch:
            spaced = pd.notna(out) if where is None else pd.notna(out) & np.asarray(where, dtype=bool)
            out[spaced] = prefix[np.asarray(owners)[spaced]] + out[spaced]  # str + str, element by element
        return out

    ms = [r.milestone for r in reqs]
    own = np.arange(len(reqs))
    project = [m.project for m in ms]
    milestones: Columns = {
        "milestone_id": ids([m.milestone_id for m in ms], own), "project": ids(project, own),
        "name": _strings([m.name or m.milestone_id for m in ms]), "kind": _strings([m.kind for m in ms]),
        "start_at": times([m.start_at for m in ms]), "due_at": times([m.due_at for m in ms]),
        "completed_at": times([m.completed_at for m in ms])}
    tk, tk_owner = rows("tickets")
    tickets: Columns = {
        "ticket_id": ids([t.ticket_id for t in tk], tk_owner),
        "project": ids([t.project or project[i] for t, i in zip(tk, tk_owner)], tk_owner),
        "type": _strings([t.type for t in tk]), "priority": _strings([t.priority for t in tk]),
        "created_at": times([t.created_at for t in tk]), "resolved_at": times([t.resolved_at for t in tk]),
        "story_points": np.array([np.nan if t.story_points is None else t.story_points for t in tk], dtype=np.float64),
        "assignee": _strings([t.assignee for t in tk]), "status": _strings([t.status for t in tk]),
        "milestone_id": ids([t.milestone_id for t in tk], tk_owner)}
    ev, ev_owner = rows("events")
    names_milestones = [e.field == "milestone" for e in ev]
    events: Columns = {
        "ticket_id": ids([e.ticket_id for e in ev], ev_owner), "milestone_id": ids([e.milestone_id for e in ev], ev_owner),
        "at": times([e.at for e in ev]), "field": _strings([e.field for e in ev]),
        "from_value": ids([e.from_value for e in ev], ev_owner, names_milestones),
        "to_value": ids([e.to_value for e in ev], ev_owner, names_milestones)}
    lk, lk_owner = rows("links")
    links: Columns = {"from_ticket": ids([x.from_ticket for x in lk], lk_owner),
                      "to_ticket": ids([x.to_ticket for x in lk], lk_owner),
                      "kind": _strings([x.kind for x in lk]), "created_at": times([x.created_at for x in lk])}
    past, past_owner = rows("past_milestones")
    outcomes = pd.DataFrame({"project": _id_column(ids([project[i] for i in past_owner], past_owner)),
                             "known_at": timestamps(times([p.known_at for p in past])),
                             "slipped": np.array([float(p.slipped) for p in past])})
    as_of_us = times(as_ofs)
    snaps = pd.DataFrame({"milestone_id": _id_column(milestones["milestone_id"]), "as_of": timestamps(as_of_us)})

    def locate(table: str, item: int, row: int, field: str | None) -> list:
        if table == "snaps":
            return [*within(item), "as_of"]
        if table == "milestones":
            return [*within(item), "milestone", field]
        return [*within(item), table, row, *([field] if field else [])]

    return RequestState(milestones, tickets, events, links, snaps, own, as_of_us, outcomes, as_ofs,
                        [m.milestone_id for m in ms], project, as_of_us[tk_owner],
                        {"milestones": own, "tickets": tk_owner, "events": ev_owner, "links": lk_owner, "snaps": own},
                        locate)


def table_state(req: TablesRequest, now: datetime) -> RequestState:
    """The state of a columns request (``now``: its as_of if it gives none): every milestone
    it names in ``milestone_ids``, or every one started and not completed by as_of."""
    as_of = req.as_of or now
    t = micros([as_of])[0]
    m, tk = req.milestones, req.tickets
    ev = req.events or EventColumns(at=[], field=[])
    lk = req.links or LinkColumns(from_ticket=[], to_ticket=[], kind=[])
    past = req.past_milestones or OutcomeColumns(project=[], known_at=[], slipped=[])
    milestone_id = _strings(m.milestone_id)
    repeated = pd.Index(milestone_id).duplicated()
    if repeated.any():
        row = int(np.argmax(repeated))
        raise FieldError(("body", "milestones", "milestone_id", row), f"duplicate milestone_id {milestone_id[row]!r}")

    def column(table, name: str) -> np.ndarray:
        values = getattr(table, name)
        return np.full(len(table), None, dtype=object) if values is None else _strings(values)

    def column_times(table, table_name: str, name: str) -> np.ndarray:
        values = getattr(table, name)
        return np.full(len(table), NAT, dtype=np.int64) if values is None else read_times(values, (table_name, name))

    name, kind = column(m, "name"), column(m, "kind")
    milestones: Columns = {
        "milestone_id": milestone_id, "project": _strings(m.project), "name": np.where(pd.isna(name), milestone_id, name),
        "kind": np.where(pd.isna(kind), "release", kind).astype(object), "start_at": column_times(m, "milestones", "start_at"),
        "due_at": column_times(m, "milestones", "due_at"), "completed_at": column_times(m, "milestones", "completed_at")}
    ticket_milestone = column(tk, "milestone_id")
    project = column(tk, "project")
    theirs = pd.Index(milestone_id).get_indexer(ticket_milestone)
    project = np.where(pd.isna(project) & (theirs >= 0), milestones["project"][np.maximum(theirs, 0)], project)
    tickets: Columns = {
        "ticket_id": _strings(tk.ticket_id), "project": project, "type": column(tk, "type"),
        "priority": column(tk, "priority"), "created_at": column_times(tk, "tickets", "created_at"),
        "resolved_at": column_times(tk, "tickets", "resolved_at"),
        "story_points": pd.array(column(tk, "story_points"), dtype="Float64").to_numpy(np.float64, na_value=np.nan),
        "assignee": column(tk, "assignee"), "status": _strings(tk.status), "milestone_id": ticket_milestone}
    events: Columns = {"ticket_id": column(ev, "ticket_id"), "milestone_id": column(ev, "milestone_id"),
                       "at": column_times(ev, "events", "at"), "field": _strings(ev.field),
                       "from_value": column(ev, "from_value"), "to_value": column(ev, "to_value")}
    links: Columns = {"from_ticket": _strings(lk.from_ticket), "to_ticket": _strings(lk.to_ticket),
                      "kind": _strings(lk.kind), "created_at": column_times(lk, "links", "created_at")}
    outcomes = pd.DataFrame({"project": _id_column(_strings(past.project)),
                             "known_at": timestamps(column_times(past, "past_milestones", "known_at")),
                             "slipped": np.array(past.slipped, dtype=np.float64)})
    if req.milestone_ids is None:
        rows = np.flatnonzero(open_at(milestones["start_at"], milestones["completed_at"], t))
    else:
        rows = pd.Index(milestone_id).get_indexer(_strings(req.milestone_ids))
        if (rows < 0).any():
            k = int(np.argmax(rows < 0))
            raise FieldError(("body", "milestone_ids", k), f"no milestone {req.milestone_ids[k]!r} in milestones")
    snap_as_of = np.full(len(rows), t, dtype=np.int64)
    snaps = pd.DataFrame({"milestone_id": _id_column(milestone_id[rows]), "as_of": timestamps(snap_as_of)})
    first_column = {"events": "ticket_id", "links": "from_ticket"}

    def locate(table: str, item: int, row: int, field: str | None) -> list:
        if table == "snaps":
            return ["milestone_ids", row]
        return [table, field or first_column[table], row]

    zeros = {name: np.zeros(n, dtype=np.int64) for name, n in (
        ("milestones", len(m)), ("tickets", len(tk)), ("events", len(ev)), ("links", len(lk)), ("snaps", len(rows)))}
    return RequestState(milestones, tickets, events, links, snaps, rows, snap_as_of, outcomes, [as_of] * len(rows),
                        list(milestone_id[rows]), list(milestones["project"][rows]), np.full(len(tk), t, dtype=np.int64),
                        zeros, locate)
