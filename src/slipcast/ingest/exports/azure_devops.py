"""Canonical tables rendered as Azure DevOps Boards serves them, in the files a sync keeps.

One file per work item (``workitems/{id}.json``): its fields now, as ``workitemsbatch`` answers
(an identity as an object), its ``relations`` (Dependency and Hierarchy links, seen from both
ends) and its ``revisions``, as the reporting revisions feed gives them (each the whole set of
fields at that revision, an identity as ``Name <unique name>``). Beside them ``states.json``, each
work-item type's states with their category, and ``iterations.json``, the project's iteration
tree (classification nodes with ``startDate`` and ``finishDate``). A project of the canonical
tables is a team: an area path and an iteration node under the one Azure DevOps project.
Sprints are dated iterations; a release is the ``Target Date`` of the items in it (what a team
without an iteration tree of releases holds). Each quirk of ``quirks.QUIRKS`` that applies
changes the rendering the way a real project differs.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slipcast.ingest.exports.history import TicketHistory, ticket_histories
from slipcast.ingest.importers.azure_devops import target_release
from slipcast.ingest.tables import Tables

PROJECT = "Slipcast"
ORG_URL = "https://dev.azure.com/slipcast-sim"
STATES = {  # category -> (state, Azure DevOps state category)
    "todo": ("New", "Proposed"), "in_progress": ("Active", "InProgress"),
    "blocked": ("Blocked", "InProgress"), "done": ("Closed", "Completed"),
}
CUSTOM_STATES = {
    "todo": ("Ready for Triage", "Proposed"), "in_progress": ("Doing", "InProgress"),
    "blocked": ("Waiting on Partner", "InProgress"), "done": ("Shipped", "Completed"),
}
OTHER_STATES = [("Resolved", "Resolved"), ("Removed", "Removed")]
PRIORITIES = {"Highest": 1, "High": 2, "Medium": 3, "Low": 4, "Lowest": 4}  # Azure DevOps allows 1-4
REMOVED_ITEMS = 3
FIELD = {"points": "Microsoft.VSTS.Scheduling.StoryPoints", "effort": "Microsoft.VSTS.Scheduling.Effort",
         "target": "Microsoft.VSTS.Scheduling.TargetDate", "due": "Microsoft.VSTS.Scheduling.DueDate",
         "priority": "Microsoft.VSTS.Common.Priority", "closed": "Microsoft.VSTS.Common.ClosedDate"}


@dataclass(frozen=True)
class AdoIds:
    """How canonical names appear once the rendering is imported: work item ids, milestone ids."""

    tickets: dict[str, str]
    milestones: dict[str, str]


def _time(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def _day(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%dT00:00:00Z")


class _Renderer:
    def __init__(self, tables: Tables, quirks: frozenset[str]):
        self.q = quirks
        milestones, tickets, _, self.link_frame = tables.frames()
        self.milestones = {r.milestone_id: r for r in milestones.itertuples(index=False)}
        self.tickets = tickets.set_index("ticket_id", drop=False)
        self.states = CUSTOM_STATES if "custom_statuses" in quirks else STATES
        self.points = FIELD["effort"] if "effort_points" in quirks else FIELD["points"]
        self.histories = ticket_histories(tables)
        self.ids = {key: i for i, key in enumerate(self.histories, start=1)}
        self.nodes: dict[str, dict] = {}  # canonical sprint id -> its iteration node
        self.teams: dict[str, dict] = {}
        self.root = {"id": 1, "identifier": "00000000-0000-0000-0000-000000000001", "name": PROJECT,
                     "structureType": "iteration", "hasChildren": True, "path": f"\\{PROJECT}\\Iteration",
                     "children": []}
        for project in sorted(self.tickets["project"].unique()):
            self.teams[project] = self._node(self.root, project)
        for mid, m in sorted(self.milestones.items()):
            if m.kind == "release":
                continue
            parent = self.teams[m.project]
            if "nested_iterations" in quirks and pd.notna(m.start_at):  # sprints under a node per year
                year = f"{m.start_at.year}"
                held = [c for c in parent["children"] if c["name"] == year]
                parent = held[0] if held else self._node(parent, year)
            node = self._node(parent, m.name)
            node["attributes"] = {"startDate": _day(m.start_at), "finishDate": _day(m.due_at)}
            self.nodes[mid] = node

    def _node(self, parent: dict, name: str) -> dict:
        node_id = 2 + sum(1 for _ in _walk(self.root))
        node = {"id": node_id, "identifier": f"00000000-0000-0000-0000-{node_id:012d}", "name": name,
                "structureType": "iteration", "hasChildren": False, "path": f"{parent['path']}\\{name}",
                "children": []}
        parent["children"].append(node)
        parent["hasChildren"] = True
        return node

    def imported_ids(self) -> AdoIds:
        out = {mid: f"ado-iteration-{node['id']}" for mid, node in self.nodes.items()}
        out.update({mid: target_release(m.project, m.due_at) for mid, m in self.milestones.items()
                    if m.kind == "release" and pd.notna(m.due_at)})
        return AdoIds({k: str(i) for k, i in self.ids.items()}, out)

    # -- one work item ---------------------------------------------------------------------------
    def _path(self, node: dict) -> str:
        """A work item's IterationPath: the node's path without the ``\\Iteration`` part."""
        return node["path"].lstrip("\\").replace(f"{PROJECT}\\Iteration", PROJECT, 1)

    def _fields(self, h: TicketHistory, values: dict, members: frozenset[str], rev: int, at, identity) -> dict:
        t = self.tickets.loc[h.key]
        team = self.teams[t.project]
        sprint = next((self.nodes[m] for m in sorted(members) if m in self.nodes), None)
        release = next((self.milestones[m] for m in sorted(members)
                        if m in self.milestones and self.milestones[m].kind == "release"
                        and pd.notna(self.milestones[m].due_at)), None)
        node = sprint or team
        state = self.states[values["status"] or "todo"][0]
        fields = {"System.Id": self.ids[h.key], "System.Rev": rev, "System.TeamProject": PROJECT,
                  "System.AreaPath": f"{PROJECT}\\{t.project}", "System.IterationPath": self._path(node),
                  "System.IterationId": node["id"], "System.WorkItemType": t.type or "Task",
                  "System.Title": f"Work item {h.key}", "System.State": state,
                  "System.CreatedDate": _time(h.created), "System.ChangedDate": _time(at)}
        if values["assignee"]:
            fields["System.AssignedTo"] = identity(values["assignee"])
        if values["priority"] and "no_priorities" not in self.q:
            fields[FIELD["priority"]] = PRIORITIES[values["priority"]]
        if values["story_points"] is not None and "no_story_points" not in self.q:
            fields[self.points] = float(values["story_points"])
        if values["due_at"]:
            fields[FIELD["due"]] = _day(pd.Timestamp(values["due_at"]))
        if release is not None:
            fields[FIELD["target"]] = _day(release.due_at)
        if values["status"] == "done" and pd.notna(t.resolved_at):
            fields[FIELD["closed"]] = _time(t.resolved_at)
        return fields

    def item(self, h: TicketHistory) -> dict:
        values, members = dict(h.initial), set(h.members)
        times = sorted({c.at for c in h.changes if c.field in ("status", "assignee", "priority", "story_points",
                                                                  "due_at", "milestone")})
        revisions: list[dict] = [{"id": self.ids[h.key], "rev": 1,
                      "fields": self._fields(h, values, frozenset(members), 1, h.created, _display)}]
        for rev, at in enumerate(times, start=2):
            for c in (c for c in h.changes if c.at == at):
                if c.field == "milestone":
                    members.discard(c.old)
                    if c.new is not None:
                        members.add(c.new)
                else:
                    values[c.field] = c.new
            revisions.append({"id": self.ids[h.key], "rev": rev,
                              "fields": self._fields(h, values, frozenset(members), rev, at, _display)})
        current = self._fields(h, values, frozenset(members), len(revisions), times[-1] if times else h.created,
                               _identity)
        if "moved_iterations" in self.q:  # the node was renamed since: older revisions hold its old path
            for r in revisions[:-1]:
                if r["fields"]["System.IterationId"] in {n["id"] for n in self.nodes.values()}:
                    path = r["fields"]["System.IterationPath"]
                    r["fields"]["System.IterationPath"] = path.rsplit("\\", 1)[0] + "\\Old " + path.rsplit("\\", 1)[1]
        return {"id": self.ids[h.key], "rev": len(revisions), "fields": current,
                "relations": self.relations.get(h.key, []), "revisions": revisions,
                "url": f"{ORG_URL}/_apis/wit/workItems/{self.ids[h.key]}"}

    # -- links -----------------------------------------------------------------------------------
    def link(self) -> None:
        """Each link as the two relations its ends hold (a blocks b: b depends on a)."""
        self.relations: dict[str, list[dict]] = {}
        for link in self.link_frame.itertuples(index=False):
            first, second = (link.to_ticket, link.from_ticket) if link.kind == "blocks" else (link.from_ticket,
                                                                                               link.to_ticket)
            if first not in self.ids or second not in self.ids:
                continue
            names = {"depends_on": ("Dependency-Reverse", "Dependency-Forward"), "blocks": ("Dependency-Reverse",
                     "Dependency-Forward"), "parent": ("Hierarchy-Forward", "Hierarchy-Reverse"),
                     "duplicates": ("Duplicate-Reverse", "Duplicate-Forward"), "relates": ("Related", "Related")}
            ours, theirs = names[link.kind]
            self._relation(first, ours, second)
            self._relation(second, theirs, first)

    def _relation(self, key: str, rel: str, other: str) -> None:
        self.relations.setdefault(key, []).append(
            {"rel": f"System.LinkTypes.{rel}", "url": f"{ORG_URL}/_apis/wit/workItems/{self.ids[other]}",
             "attributes": {"isLocked": False, "name": rel.replace("-", " ")}})

    def removed(self, n: int) -> list[dict]:
        """Work items created by mistake and removed: state Removed, no history worth keeping."""
        first = min(h.created for h in self.histories.values())
        out = []
        for i in range(n):
            item_id = len(self.ids) + 1 + i
            fields = {"System.Id": item_id, "System.Rev": 1, "System.TeamProject": PROJECT,
                      "System.AreaPath": PROJECT, "System.IterationPath": PROJECT, "System.IterationId": 1,
                      "System.WorkItemType": "Task", "System.Title": "Duplicate of an item", "System.State": "Removed",
                      "System.CreatedDate": _time(first), "System.ChangedDate": _time(first)}
            out.append({"id": item_id, "rev": 1, "fields": fields, "relations": [],
                        "revisions": [{"id": item_id, "rev": 1, "fields": fields}]})
        return out

    def state_lists(self) -> dict[str, list[dict]]:
        types = sorted({t or "Task" for t in self.tickets["type"]} | {"Task"})
        states = [{"name": name, "category": category} for name, category in self.states.values()]
        states += [{"name": name, "category": category} for name, category in OTHER_STATES]
        return {t: states for t in types}


def _walk(node: dict):
    yield node
    for child in node.get("children", []):
        yield from _walk(child)


def _display(name: str) -> str:
    """An identity as the reporting revisions feed writes it."""
    return f"{name} <{name}>"


def _identity(name: str) -> dict:
    """An identity as ``workitemsbatch`` answers it."""
    return {"displayName": name, "uniqueName": name, "id": f"{zlib.crc32(name.encode()):08x}"}


def render_azure_devops(tables: Tables, folder: Path, quirks: frozenset[str]) -> AdoIds:
    """Write ``tables`` into ``folder`` as an Azure DevOps project's work items, states and iterations."""
    r = _Renderer(tables, quirks)
    r.link()
    items = [r.item(h) for h in r.histories.values()]
    if "removed_items" in quirks:
        items += r.removed(REMOVED_ITEMS)
    (folder / "workitems").mkdir(parents=True, exist_ok=True)
    for item in items:
        (folder / "workitems" / f"{item['id']}.json").write_text(json.dumps(item))
    (folder / "states.json").write_text(json.dumps(r.state_lists()))
    (folder / "iterations.json").write_text(json.dumps(r.root))
    return r.imported_ids()


CSV_TIME = "%m/%d/%Y %I:%M:%S %p"  # an en-US user's export


def render_azure_devops_csv(tables: Tables, folder: Path, quirks: frozenset[str]) -> AdoIds:
    """Write ``tables`` into ``folder`` as ``workitems.csv``, an Azure Boards query's "Export to CSV":
    each work item as it is now, its parent in the Parent column."""
    import csv

    r = _Renderer(tables, quirks)
    r.link()
    items = [r.item(h) for h in r.histories.values()]
    if "removed_items" in quirks:
        items += r.removed(REMOVED_ITEMS)
    points = "Effort" if "effort_points" in quirks else "Story Points"
    parents: dict[int, int] = {}
    for link in r.link_frame.itertuples(index=False):
        if link.kind == "parent" and link.from_ticket in r.ids and link.to_ticket in r.ids:
            parents.setdefault(r.ids[link.to_ticket], r.ids[link.from_ticket])

    def when(value, fmt=CSV_TIME):
        return "" if value is None else pd.Timestamp(value).strftime(fmt)

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "workitems.csv").open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["ID", "Work Item Type", "Title", "State", "Iteration Path", "Area Path", points, "Assigned To",
                      "Priority", "Target Date", "Created Date", "Closed Date", "Parent"])
        for item in items:
            fields = item["fields"]
            assigned = fields.get("System.AssignedTo")
            out.writerow([item["id"], fields["System.WorkItemType"], fields["System.Title"], fields["System.State"],
                          fields["System.IterationPath"], fields["System.AreaPath"],
                          fields.get(r.points, ""), _display(assigned["uniqueName"]) if assigned else "",
                          fields.get(FIELD["priority"], ""), when(fields.get(FIELD["target"]), "%m/%d/%Y"),
                          when(fields["System.CreatedDate"]), when(fields.get(FIELD["closed"])),
                          parents.get(item["id"], "")])
    return r.imported_ids()
