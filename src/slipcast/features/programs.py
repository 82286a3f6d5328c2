"""Programs across teams and the dependencies between milestones, as of any time.

A dependency between milestones is read from ticket links whose two ends sat in different
milestones at as_of (``depends_on`` and ``blocks``, whatever the tracker called them), with the
tickets behind it, plus those declared in the settings or through the API. A program is a named
set of milestones: an epic or initiative whose children sit in milestones of several projects, a
milestone name shared across projects, or a declaration (docs/architecture.md, "Programs").
Everything here is point in time: what the links, memberships and statuses said at as_of.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration, ProgramSettings
from slipcast.core.vocabulary import ProgramSource, TicketStatus
from slipcast.features.timeline import DAY_US, NAT, Timelines

PARENT_DEPTH = 3  # an initiative holds epics that hold stories: children are found this many levels down


@dataclass(frozen=True)
class Dependency:
    """``dependent`` cannot finish before ``blocker``: the tickets behind it (the waiting ticket,
    the ticket it waits on), how many of those it waits on were open at as_of, where it came from
    (``links`` or ``declared``), and whether its blocker lies outside the store (``external``:
    ``blocker`` is then the ticket or milestone named, which the store does not hold)."""

    blocker: str
    dependent: str
    tickets: tuple[tuple[str, str], ...] = ()
    open_blockers: int = 0
    source: str = "links"
    external: bool = False


@dataclass
class Graph:
    """The dependencies between milestones at one time, and its cycles (each a set of milestones
    that wait on one another, with the tickets that make it)."""

    edges: list[Dependency]
    cycles: list[tuple[str, ...]] = field(default_factory=list)

    def in_cycle(self, edge: Dependency) -> bool:
        return any(edge.blocker in c and edge.dependent in c for c in self.cycles)

    def propagated(self, edge: Dependency) -> bool:
        """Whether a slip is carried along ``edge``: inside the store, not in a cycle, and still
        waiting on something open (a declared edge always is)."""
        return (not edge.external and not self.in_cycle(edge)
                and (edge.source == "declared" or edge.open_blockers > 0))

    def touching(self, milestones: Iterable[str]) -> list[Dependency]:
        """The edges with either end among ``milestones``, in the graph's order."""
        if not hasattr(self, "_by_milestone"):  # indexed once, on the first ask
            index: dict[str, list[int]] = {}
            for i, e in enumerate(self.edges):
                index.setdefault(e.blocker, []).append(i)
                if e.dependent != e.blocker:
                    index.setdefault(e.dependent, []).append(i)
            self._by_milestone = index
        found = sorted({i for m in milestones for i in self._by_milestone.get(m, ())})
        return [self.edges[i] for i in found]


@dataclass(frozen=True)
class Program:
    """A named set of milestones that lands when its last one does; ``target_at``: every
    milestone done by then (None: each by its own due date)."""

    program_id: str
    name: str
    source: ProgramSource
    milestones: tuple[str, ...]
    target_at: datetime | None = None


def milestone_at(tl: Timelines, t: int) -> np.ndarray:
    """Each ticket's milestone code at ``t`` (µs), -1 where it sat in none."""
    member = tl.membership
    inside = (member["start"] <= t) & (t < member["end"])
    out = np.full(len(tl.tickets), -1, dtype=np.int64)
    out[member["ticket"][inside]] = member["milestone"][inside]  # the latest interval wins (rows by start)
    return out


def is_done_at(tl: Timelines, tickets: np.ndarray, t: int) -> np.ndarray:
    """Whether each ticket's status at ``t`` was done."""
    status = tl.ticket_values["status"]
    value = status.get("value", status.find(tickets, np.full(len(tickets), t, dtype=np.int64)), -1)
    return value == tl.value_code(TicketStatus.DONE)


def dependency_graph(tl: Timelines, t: int, declared: Iterable[DependencyDeclaration] = ()) -> Graph:
    """The milestone dependencies at ``t`` (µs): from the links that existed then between tickets
    of two different milestones, and ``declared``; cycles found, never followed."""
    deps = tl.dependencies
    live = (deps["since"] != NAT) & (deps["since"] <= t)
    waiting, blocker = deps["ticket"][live], deps["dependency"][live]
    where = milestone_at(tl, t)
    mine, theirs = where[waiting], where[blocker]
    known = tl.milestone_start != NAT  # the store's milestones table holds it
    outside = tl.ticket_created[blocker] == NAT  # a ticket the store does not hold
    keep = (mine >= 0) & known[np.maximum(mine, 0)] & ((outside | (theirs >= 0)) & (theirs != mine))
    waiting, blocker, mine, theirs, outside = waiting[keep], blocker[keep], mine[keep], theirs[keep], outside[keep]
    external = outside | ~known[np.maximum(theirs, 0)]
    is_open = ~is_done_at(tl, blocker, t) & ~outside
    ids, tickets = tl.milestones, tl.tickets
    blocker_id = np.where(outside, np.asarray(tickets[blocker], dtype=object),
                          np.asarray(ids[np.maximum(theirs, 0)], dtype=object))
    dependent_id = np.asarray(ids[mine], dtype=object)
    order = np.lexsort((tickets[waiting].to_numpy(dtype=object).astype(str), dependent_id.astype(str),
                        blocker_id.astype(str)))
    pair = np.char.add(np.char.add(blocker_id[order].astype(str), "\0"), dependent_id[order].astype(str))
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, int)
    bounds = np.append(first, len(pair))
    waiting_id = np.asarray(tickets[waiting], dtype=object)[order].tolist()
    on_id = np.asarray(tickets[blocker], dtype=object)[order].tolist()
    open_count = np.add.reduceat(is_open[order].astype(np.int64), first) if len(first) else np.zeros(0, int)
    edges = [Dependency(blocker=blocker_id[order][a], dependent=dependent_id[order][a],
                        tickets=tuple(zip(waiting_id[a:b], on_id[a:b])), open_blockers=int(n),
                        external=bool(external[order][a]))
             for a, b, n in zip(bounds[:-1], bounds[1:], open_count)]
    have = {(e.blocker, e.dependent) for e in edges}
    edges += [Dependency(blocker=d.blocker, dependent=d.dependent, source="declared",
                         external=d.blocker not in ids) for d in declared if (d.blocker, d.dependent) not in have]
    return Graph(edges, cycles_of(edges))


def cycles_of(edges: list[Dependency]) -> list[tuple[str, ...]]:
    """The sets of milestones that wait on one another (strongly connected, more than one), sorted."""
    inside = [e for e in edges if not e.external and e.blocker != e.dependent]
    if not inside:
        return []
    nodes = pd.Index(sorted({e.blocker for e in inside} | {e.dependent for e in inside}))
    rows, cols = nodes.get_indexer([e.blocker for e in inside]), nodes.get_indexer([e.dependent for e in inside])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(label)
    return sorted(tuple(sorted(nodes[label == c])) for c in np.flatnonzero(sizes > 1))


def dependency_lag_days(tl: Timelines, t: int, default: float, quantile: float = 0.5) -> float:
    """How long a dependent ticket takes to finish once what it waited on is done, in days: the
    ``quantile`` over dependencies both of whose tickets were done by ``t`` (the dependent after
    its blocker); ``default`` where the history has none."""
    deps = tl.dependencies
    status = tl.ticket_values["status"]
    done_code = tl.value_code(TicketStatus.DONE)

    def done_at(tickets: np.ndarray) -> np.ndarray:
        pos = status.find(tickets, np.full(len(tickets), t, dtype=np.int64))
        done = status.get("value", pos, -1) == done_code
        return np.where(done, status.at[np.maximum(pos, 0)] if len(status) else NAT, NAT)

    a, b = done_at(deps["ticket"]), done_at(deps["dependency"])
    waited = (a != NAT) & (b != NAT) & (a >= b) & (deps["since"] <= b)
    return float(np.quantile((a[waited] - b[waited]) / DAY_US, quantile)) if waited.any() else default


def programs_at(tl: Timelines, names: pd.Series, t: int, settings: ProgramSettings,
                declared: Iterable[ProgramDeclaration] = ()) -> list[Program]:
    """The programs at ``t`` (µs): declared ones (the settings' and ``declared``), then epics or
    initiatives whose children sat in milestones of at least two projects, then milestone names
    shared by at least two projects. A set of milestones already found is not found again."""
    found: list[Program] = []
    for d in [*settings.declared, *declared]:
        target = None if d.target_at is None else d.target_at
        found.append(Program(d.program_id, d.name or d.program_id, ProgramSource.DECLARED, tuple(d.milestones), target))
    known = tl.milestone_start != NAT
    if settings.from_epics and len(tl.parents["parent"]):
        found += _epics(tl, t, known)
    if settings.from_shared_names:
        found += _shared_names(tl, names, t, known, settings.shared_name_days)
    out, seen, taken = [], set(), set()
    for p in found:
        key = frozenset(p.milestones)
        if key in seen or p.program_id in taken:
            continue
        seen.add(key)
        taken.add(p.program_id)
        out.append(p)
    return out


def _shared_names(tl: Timelines, names: pd.Series, t: int, known: np.ndarray, days: float) -> list[Program]:
    """Programs from milestone names shared by two projects or more, among milestones started by
    ``t``: those of one name due within ``days`` of the next are one program (named for the name,
    and the month of its first due date where the name holds more than one)."""
    started = np.flatnonzero(known & (tl.milestone_start <= t))
    ids = np.asarray(tl.milestones[started], dtype=object)
    due = tl.due.get("due", tl.due.find(started, np.full(len(started), t, dtype=np.int64)), NAT)
    frame = pd.DataFrame({"id": ids, "name": names.reindex(ids).to_numpy(), "project": tl.milestone_project[started],
                          "due": due}).dropna(subset=["name"])
    frame = frame[frame["due"] != NAT]
    shared = frame.groupby("name")["project"].transform("nunique") >= 2  # most names are one project's own
    frame = frame[shared].sort_values(["name", "due"], kind="stable")
    out = []
    for name, g in frame.groupby("name", sort=True):
        cluster = np.cumsum(np.r_[0, np.diff(g["due"].to_numpy()) > days * DAY_US])
        parts = [part for _, part in g.groupby(cluster) if part["project"].nunique() >= 2]
        for part in parts:
            first = pd.Timestamp(int(part["due"].min()), unit="us", tz="UTC")
            key = str(name) if len(parts) == 1 else f"{name} ({first:%Y-%m})"
            out.append(Program(key, key, ProgramSource.SHARED_NAME, tuple(sorted(part["id"]))))
    return out


def _epics(tl: Timelines, t: int, known: np.ndarray) -> list[Program]:
    """Programs from parent links: each parent's descendants (``PARENT_DEPTH`` levels) and the
    milestones they sat in at ``t``, where those span two projects or more."""
    parent, child = tl.parents["parent"], tl.parents["child"]
    up = pd.Series(parent, index=child)
    up = up[~up.index.duplicated(keep="last")]
    where = milestone_at(tl, t)
    rows = []
    ancestor = pd.Series(child, index=child)
    for _ in range(PARENT_DEPTH):
        ancestor = pd.Series(up.reindex(ancestor.to_numpy()).to_numpy(), index=ancestor.index).dropna().astype(np.int64)
        if ancestor.empty:
            break
        rows.append(pd.DataFrame({"parent": ancestor.to_numpy(), "ticket": ancestor.index.to_numpy()}))
    if not rows:
        return []
    pairs = pd.concat(rows, ignore_index=True)
    pairs["milestone"] = where[pairs["ticket"].to_numpy()]
    pairs = pairs[pairs["milestone"] >= 0]
    pairs = pairs[known[pairs["milestone"].to_numpy()]]
    pairs["project"] = tl.milestone_project[pairs["milestone"].to_numpy()]
    out = []
    for code, g in pairs.groupby("parent", sort=True):
        if g["project"].nunique() >= 2:
            key = str(tl.tickets[int(code)])
            out.append(Program(key, f"epic {key}", ProgramSource.EPIC,
                               tuple(sorted(map(str, tl.milestones[np.unique(g["milestone"].to_numpy())])))))
    return out
