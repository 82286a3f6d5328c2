"""Canonical tables rendered as Linear's GraphQL records, as ``slipcast sync linear`` stores them.

One file per issue (``issues/<identifier>.json``): the issue node with its workflow state (name
and ``type``), cycle, project, estimate, priority (0-4), assignee, labels (its type is its first
label), parent, ``relations`` (a dependency ``a depends on b`` is ``b blocks a``) and its whole
``history`` (``fromState``/``toState``, ``fromCycle``/``toCycle``, ``fromProject``/``toProject``,
``fromEstimate``/``toEstimate``, ``fromAssignee``/``toAssignee``, ``fromPriority``/``toPriority``,
``fromDueDate``/``toDueDate``, ``toParent``). Beside them, the workspace's cycles (sprints) and
projects (releases) in ``cycles.json`` and ``projects.json``. Each quirk of ``quirks.QUIRKS`` that
applies to Linear changes the rendering the way a real workspace differs (docs/architecture.md,
"Any tracker").
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slipcast.ingest.exports.history import Change, TicketHistory, ticket_histories
from slipcast.ingest.importers.vocab import LINEAR_PRIORITIES
from slipcast.ingest.tables import Tables, make_tables

STATES = {  # category -> (name, Linear's state type)
    "todo": ("Todo", "unstarted"), "in_progress": ("In Progress", "started"),
    "blocked": ("Blocked", "started"), "done": ("Done", "completed"),
}
CUSTOM_STATES = {  # a team's own workflow: placed by their type only
    "todo": ("Icebox", "backlog"), "in_progress": ("Patch Available", "started"),
    "blocked": ("Waiting for Vendor", "started"), "done": ("Shipped", "completed"),
}
CANCELED = ("Canceled", "canceled")
PRIORITIES = {name: number for number, name in LINEAR_PRIORITIES.items()}  # Linear's 0 is "No priority"
CANCEL_EVERY = 5  # with removed_items, every fifth ticket done at the end is canceled instead
MOVE_EVERY = 4  # with moved_across_cycles, every fourth cycle's unfinished tickets move on to the next
NAMESPACE = uuid.UUID("6f1c9a52-8d0e-4a57-9d8b-3c2a71e0b5d4")


def linear_id(kind: str, name: str) -> str:
    """A Linear id (a UUID) for a canonical name (stable: the same name, the same id)."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{name}"))


def _time(ts) -> str | None:
    if ts is None or pd.isna(ts):
        return None
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _date(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class LinearIds:
    """How canonical names appear in the rendered Linear workspace: what an import of it gives back."""

    milestones: dict[str, str]  # canonical milestone id -> the id an import gives it
    canceled: frozenset[str]  # tickets whose final done is a cancellation
    tables: Tables  # the history rendered (moved_across_cycles carries tickets on to the next cycle)


class _Renderer:
    def __init__(self, tables: Tables, quirks: frozenset[str]):
        self.q, self.tables = quirks, tables
        milestones, tickets, _, links = tables.frames()
        self.milestones = {r.milestone_id: r for r in milestones.itertuples(index=False)}
        self.tickets = tickets.set_index("ticket_id", drop=False)
        self.states = CUSTOM_STATES if "custom_statuses" in quirks else STATES
        last: dict[str, str] = {}
        for m, r in sorted(self.milestones.items(), key=lambda kv: kv[1].start_at):
            if r.kind == "sprint":
                last[r.project] = m
        self.last_cycles = frozenset(last.values())
        self.undated_projects = frozenset(sorted(m for m, r in self.milestones.items() if r.kind != "sprint")[::2])
        done = sorted(k for k, s in zip(tickets["ticket_id"], tickets["status"]) if s == "done")
        self.canceled = frozenset(done[::CANCEL_EVERY]) if "removed_items" in quirks else frozenset()
        self.parents: dict[str, tuple[str, object]] = {}  # child -> (parent, when linked)
        self.relations: dict[str, list[dict]] = {}
        for link in links.sort_values(["from_ticket", "to_ticket", "kind"]).itertuples(index=False):
            if link.kind == "parent":
                self.parents.setdefault(link.to_ticket, (link.from_ticket, link.created_at))
                continue
            source, target, kind = {"depends_on": (link.to_ticket, link.from_ticket, "blocks"),
                                    "duplicates": (link.from_ticket, link.to_ticket, "duplicate"),
                                    "relates": (link.from_ticket, link.to_ticket, "related"),
                                    "blocks": (link.from_ticket, link.to_ticket, "blocks")}[link.kind]
            relation = {"id": linear_id("relation", f"{source}>{target}:{kind}"), "type": kind,
                        "createdAt": _time(link.created_at), "relatedIssue": {"identifier": target}}
            self.relations.setdefault(source, []).append(relation)

    def ids(self) -> LinearIds:
        return LinearIds({m: f"linear-{'cycle' if r.kind == 'sprint' else 'project'}-{self.ref(m)['id']}"
                          for m, r in self.milestones.items()}, self.canceled, self.tables)

    # -- values --------------------------------------------------------------------------------
    def ref(self, mid: str) -> dict:
        """A cycle (a sprint) or a project (any other milestone) as an issue and its history name it."""
        m = self.milestones[mid]
        if m.kind == "sprint":
            number = int("".join(c for c in mid.rsplit("-", 1)[-1] if c.isdigit()) or 0)
            completed = None if "open_cycle" in self.q and self.open_cycle(mid) else _time(m.completed_at)
            return {"id": linear_id("cycle", mid), "number": number, "name": m.name, "startsAt": _time(m.start_at),
                    "endsAt": _time(m.due_at), "completedAt": completed, "team": {"key": m.project}}
        undated = "undated_project" in self.q and self.undated(mid)
        return {"id": linear_id("project", mid), "name": m.name, "startDate": _date(m.start_at),
                "targetDate": None if undated else _date(m.due_at), "completedAt": _time(m.completed_at),
                "teams": {"nodes": [{"key": m.project}]}}

    def open_cycle(self, mid: str) -> bool:
        """The cycles open_cycle leaves without a completion: each team's last."""
        return mid in self.last_cycles

    def undated(self, mid: str) -> bool:
        """The projects undated_project leaves without a target date: every other release."""
        return mid in self.undated_projects

    def state(self, category: str | None, key: str, final: bool) -> dict | None:
        if category is None:
            return None
        name, kind = CANCELED if category == "done" and final and key in self.canceled else self.states[category]
        return {"id": linear_id("state", name), "name": name, "type": kind}

    @staticmethod
    def user(name: str | None) -> dict | None:
        return None if name is None else {"id": linear_id("user", name), "name": name}

    def estimate(self, points: str | None) -> float | None:
        return None if points is None or "no_story_points" in self.q else float(points)

    @staticmethod
    def priority(name: str | None) -> int | None:
        return None if name is None else PRIORITIES.get(name, 0)

    # -- issues --------------------------------------------------------------------------------
    def issue(self, h: TicketHistory) -> dict:
        t = self.tickets.loc[h.key]
        values, members = h.final()
        cycle = next((m for m in sorted(members) if self.milestones[m].kind == "sprint"), None)
        project = next((m for m in sorted(members) if self.milestones[m].kind != "sprint"), None)
        canceled = h.key in self.canceled
        resolved = _time(t.resolved_at) if t.status == "done" else None
        history = self.history(h)
        issue = {
            "id": linear_id("issue", h.key), "identifier": h.key, "title": f"Work item {h.key}",
            "createdAt": _time(h.created),
            "updatedAt": _time(max([h.created] + [c.at for c in h.changes])),
            "completedAt": None if canceled else resolved, "canceledAt": resolved if canceled else None,
            "dueDate": values["due_at"][:10] if values["due_at"] else None,
            "estimate": self.estimate(values["story_points"]),
            "priority": self.priority(values["priority"]) or 0,
            "team": {"id": linear_id("team", t.project), "key": t.project, "name": t.project},
            "state": self.state(t.status, h.key, final=True),
            "assignee": self.user(values["assignee"]),
            "cycle": self.ref(cycle) if cycle else None,
            "project": self.ref(project) if project else None,
            "projectMilestone": None,
            "parent": {"identifier": self.parents[h.key][0]} if h.key in self.parents else None,
            "labels": {"nodes": [{"name": t.type}] if isinstance(t.type, str) else []},
            "relations": {"nodes": self.relations.get(h.key, [])},
            "history": {"nodes": history, "pageInfo": {"hasNextPage": False, "endCursor": None}},
        }
        return issue

    def history(self, h: TicketHistory) -> list[dict]:
        by_time: dict[pd.Timestamp, dict] = {}
        last_done = max((c.at for c in h.changes if c.field == "status" and c.new == "done"), default=None)
        for c in h.changes:
            fields = self.fields(c, h.key, final=c.at == last_done)
            if fields:
                by_time.setdefault(c.at, {}).update(fields)
        if h.key in self.parents:
            at = self.parents[h.key][1]
            if at is not None and not pd.isna(at):
                by_time.setdefault(max(at, h.created), {})["toParent"] = {"identifier": self.parents[h.key][0]}
        return [{"id": linear_id("history", f"{h.key}@{at}"), "createdAt": _time(at), **fields}
                for at, fields in sorted(by_time.items())]

    def fields(self, c: Change, key: str, final: bool) -> dict:
        if c.field == "milestone":
            out: dict = {}
            for mid, side in ((c.old, "from"), (c.new, "to")):
                if mid is not None:
                    out[f"{side}{'Cycle' if self.milestones[mid].kind == 'sprint' else 'Project'}"] = self.ref(mid)
            return out
        if c.field == "status":
            return {"fromState": self.state(c.old, key, final=False), "toState": self.state(c.new, key, final=final)}
        if c.field == "story_points":
            return {} if "no_story_points" in self.q else {"fromEstimate": self.estimate(c.old),
                                                          "toEstimate": self.estimate(c.new)}
        if c.field == "assignee":
            return {"fromAssignee": self.user(c.old), "toAssignee": self.user(c.new)}
        if c.field == "priority":
            return {"fromPriority": self.priority(c.old) or 0, "toPriority": self.priority(c.new) or 0}
        if c.field == "due_at":
            return {"fromDueDate": c.old and c.old[:10], "toDueDate": c.new and c.new[:10]}
        return {}  # resolution, type: Linear records neither


def _moved(tables: Tables) -> Tables:
    """The tables with every fourth cycle's unfinished tickets moved on to their team's next cycle
    when it ended (Linear's "move unfinished issues to the next cycle")."""
    milestones, tickets, events, links = tables.frames()
    sprints = milestones[milestones["kind"] == "sprint"].sort_values(["project", "start_at"])
    moves = []
    for _, team in sprints.groupby("project"):
        rows = list(team.itertuples(index=False))
        for here, following in list(zip(rows, rows[1:]))[::MOVE_EVERY]:
            ended = here.due_at
            joined = events[(events["field"] == "milestone") & (events["to_value"] == here.milestone_id)]
            for key in sorted(set(joined["ticket_id"].dropna())):
                mine = events[(events["ticket_id"] == key) & (events["at"] <= ended)].sort_values("at", kind="stable")
                status = mine[mine["field"] == "status"]["to_value"]
                placed = mine[mine["field"] == "milestone"]
                inside = not len(placed) or placed.iloc[-1]["to_value"] == here.milestone_id
                if inside and (not len(status) or status.iloc[-1] != "done"):
                    moves.append({"ticket_id": key, "milestone_id": None, "at": ended + pd.Timedelta(seconds=1),
                                  "field": "milestone", "from_value": here.milestone_id,
                                  "to_value": following.milestone_id})
    if not moves:
        return tables
    return make_tables(milestones=milestones, tickets=tickets, events=pd.concat([events, pd.DataFrame(moves)]),
                       links=links)


def render_linear(tables: Tables, folder: Path, quirks: frozenset[str]) -> LinearIds:
    """Write ``tables`` into ``folder`` as Linear's records with ``quirks``; the ids it used."""
    if "moved_across_cycles" in quirks:
        tables = _moved(tables)
    r = _Renderer(tables, quirks)
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, payload) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1))

    for h in ticket_histories(tables).values():
        write(f"issues/{h.key}.json", r.issue(h))
    write("cycles.json", {"cycles": [r.ref(m) for m, row in sorted(r.milestones.items()) if row.kind == "sprint"]})
    write("projects.json", {"projects": [r.ref(m) for m, row in sorted(r.milestones.items()) if row.kind != "sprint"]})
    return r.ids()


CSV_HEADER = ("ID,Team,Title,Description,Status,Estimate,Priority,Project ID,Project,Creator,Assignee,Labels,"
              "Cycle Number,Cycle Name,Cycle Start,Cycle End,Created,Updated,Started,Triaged,Completed,Canceled,"
              "Archived,Due Date,Parent issue,Initiatives,Project Milestone ID,Project Milestone,SLA Status,UUID,"
              "Time in status (minutes),Related to,Blocked by,Duplicate of").split(",")


def render_linear_csv(tables: Tables, folder: Path, quirks: frozenset[str]) -> LinearIds:
    """Write ``tables`` into ``folder`` as ``issues.csv``, Linear's CSV export (its final states,
    no history) with ``quirks``; the ids it used."""
    import csv

    r = _Renderer(tables, quirks)
    rows = []
    for h in ticket_histories(tables).values():
        issue = r.issue(h)
        t = r.tickets.loc[h.key]
        started = next((c.at for c in h.changes if c.field == "status" and c.new in ("in_progress", "blocked")),
                       h.created)
        cycle, project = issue["cycle"] or {}, issue["project"] or {}
        links = {kind: [rel["relatedIssue"]["identifier"] for rel in issue["relations"]["nodes"] if rel["type"] == kind]
                 for kind in ("related", "duplicate")}
        blocked_by = [k for k, rels in r.relations.items() for rel in rels
                      if rel["type"] == "blocks" and rel["relatedIssue"]["identifier"] == h.key]
        priority = {v: k for k, v in PRIORITIES.items()}.get(issue["priority"], "No priority")
        rows.append({
            "ID": h.key, "Team": t.project, "Title": issue["title"], "Status": issue["state"]["name"],
            "Estimate": "" if issue["estimate"] is None else f"{issue['estimate']:g}", "Priority": priority,
            "Project ID": project.get("id", ""), "Project": project.get("name", ""),
            "Assignee": (issue["assignee"] or {}).get("name", ""), "Labels": ", ".join(
                label["name"] for label in issue["labels"]["nodes"]),
            "Cycle Number": cycle.get("number", ""), "Cycle Name": cycle.get("name", ""),
            "Cycle Start": cycle.get("startsAt", ""), "Cycle End": cycle.get("endsAt", ""),
            "Created": issue["createdAt"], "Updated": issue["updatedAt"],
            "Started": _time(started) if t.status != "todo" else "",
            "Completed": issue["completedAt"] or "", "Canceled": issue["canceledAt"] or "",
            "Due Date": issue["dueDate"] or "", "Parent issue": (issue["parent"] or {}).get("identifier", ""),
            "UUID": issue["id"], "Related to": ", ".join(links["related"]), "Blocked by": ", ".join(blocked_by),
            "Duplicate of": ", ".join(links["duplicate"]),
        })
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "issues.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.DictWriter(f, CSV_HEADER, restval="")
        out.writeheader()
        out.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return r.ids()
