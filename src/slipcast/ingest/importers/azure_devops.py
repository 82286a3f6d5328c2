"""Azure DevOps Boards work items, with their revisions, to canonical tables.

``src`` is what ``slipcast sync azure-devops`` keeps (or an export of the same shapes): one JSON
file per work item (``{"id", "fields", "relations", "revisions"}``: its fields now, as
``workitemsbatch`` gives them, and the reporting revisions feed's records of it) or a
``workitemsbatch`` answer (``{"value": [...]}``); beside them, optionally, ``states.json`` (each
work-item type's states with their category), ``iterations.json`` (the iteration tree:
classification nodes with ``startDate`` and ``finishDate``) and ``team-iterations-*.json`` (a
team's iteration settings).

- **States** are placed by the settings profile, else by their type's state category (Proposed,
  InProgress, Resolved, Completed); an item now in a Removed state is no work: ignored, counted.
- **Milestones.** A dated iteration is a sprint; a dated iteration holding dated iterations is a
  release (the iteration tree); an undated one schedules nothing. Where the items carry a
  ``Target Date`` instead, each date of a team is a release. Which of the two the data held is in
  the summary's ``modelled`` (``slipcast doctor`` says it). Azure DevOps ends an iteration by the
  calendar: one whose finish date is before the data's last change is complete at it. An
  iteration is named by its id (``System.IterationId``), never its path, which changes with a
  rename.
- **History**: each revision holds every field; the changes between two revisions of State,
  Iteration, Story Points or Effort, Assigned To, Priority, Due Date and Target Date are events.
- **Links**: Dependency links are ``depends_on`` (the successor depends on its predecessor),
  Hierarchy links ``parent``, Duplicate and Related links ``duplicates`` and ``relates``; links to
  other artifacts (commits, hyperlinks, files) are ignored, counted.
- A team is its area path's first level below the project: the canonical ``project``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportReport, finish
from slipcast.ingest.importers.shapes import AdoIteration, AdoRevision, AdoState, AdoWorkItem, check
from slipcast.ingest.importers.sources import list_files, read_json
from slipcast.ingest.importers.vocab import (
    ADO_RELATIONS,
    ADO_REMOVED,
    ADO_STATE_CATEGORIES,
    UNPLACED_STATUS,
    Vocabulary,
    end_of_day,
    parse_points,
    parse_time,
)

FIELDS = {"state": "System.State", "iteration": "System.IterationId", "path": "System.IterationPath",
          "area": "System.AreaPath", "assignee": "System.AssignedTo", "type": "System.WorkItemType",
          "created": "System.CreatedDate", "changed": "System.ChangedDate", "project": "System.TeamProject",
          "priority": "Microsoft.VSTS.Common.Priority", "due": "Microsoft.VSTS.Scheduling.DueDate",
          "target": "Microsoft.VSTS.Scheduling.TargetDate", "closed": "Microsoft.VSTS.Common.ClosedDate"}
SCALARS = ("status", "assignee", "priority", "story_points", "due_at")
IDENTITY = re.compile(r".*<([^<>]+)>\s*$")  # "Display Name <unique name>", as revisions write an identity
ITEM_URL = re.compile(r"/workItems/(\d+)$", re.IGNORECASE)


def target_release(project: str, day: pd.Timestamp) -> str:
    """The id of the release the items of ``project`` with Target Date ``day`` make."""
    return f"ado-target-{project}-{day:%Y-%m-%d}"


def identity(value) -> str | None:
    """A user's unique name: from an identity object, or the ``Name <unique>`` text of a revision."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return value.get("uniqueName") or value.get("displayName") or value.get("id")
    match = IDENTITY.fullmatch(str(value))
    return match.group(1) if match else str(value)


class _Iterations:
    """The iteration tree: what each iteration id is (sprint, release or nothing) and its dates."""

    def __init__(self):
        self.nodes: dict[int, dict] = {}  # id -> {"name", "start", "finish", "kind", "releases"}

    def read(self, tree: AdoIteration, ancestors: tuple[int, ...] = ()) -> bool:
        """Take in ``tree``; True when it or a node under it is dated."""
        dates = tree.attributes or None
        start = parse_time(dates.startDate) if dates else None
        finish = parse_time(dates.finishDate) if dates else None
        dated = start is not None or finish is not None
        below = [self.read(c, ancestors + (tree.id,)) for c in tree.children or []]
        kind = ("release" if any(below) else "sprint") if dated and ancestors else None
        self.nodes[tree.id] = {"name": tree.name, "start": start, "finish": finish, "kind": kind,
                               "ancestors": ancestors}
        return dated or any(below)

    def milestones(self, node_id) -> list[tuple[int, str]]:
        """The iterations an item in ``node_id`` is in: it, if dated, and the releases holding it."""
        node = self.nodes.get(node_id)
        if node is None:
            return []
        held = [(a, "release") for a in node["ancestors"] if self.nodes[a]["kind"] == "release"]
        return held + ([(node_id, node["kind"])] if node["kind"] else [])


class _Builder:
    def __init__(self, settings: Settings, report: ImportReport):
        self.report = report
        self.status = Vocabulary("status", settings.imports.status_categories, default=UNPLACED_STATUS)
        self.points_fields = settings.imports.azure_devops_points_fields
        self.iterations = _Iterations()
        self.milestones: dict[str, dict] = {}
        self.tickets: list[dict] = []
        self.events: list[dict] = []
        self.links: dict[tuple[str, str, str], dict] = {}
        self.removed_states: set[str] = set()
        self.last_change: pd.Timestamp | None = None
        self.by_target = False
        self.resolved_from_history = 0

    def states(self, lists: dict, file: str) -> None:
        """Each work-item type's states: their category places them (the profile still wins)."""
        for kind, states in lists.items():
            for i, raw in enumerate(states if isinstance(states, list) else []):
                self.report.saw("states")
                try:
                    state = check(AdoState, raw)
                except FieldError as exc:
                    self.report.reject("states", file, f"{kind} state #{i}", exc.field, exc.message)
                    continue
                if state.category == ADO_REMOVED:
                    self.removed_states.add(state.name.lower())
                elif state.category in ADO_STATE_CATEGORIES:
                    self.status.learn(state.name, ADO_STATE_CATEGORIES[state.category])
                else:
                    self.report.reject("states", file, f"{kind} state {state.name!r}", "category",
                                       f"unknown state category {state.category!r}")
                    continue
                self.report.accept("states")

    # -- one work item -------------------------------------------------------------------------
    def _values(self, fields: dict) -> tuple[dict, set[str], str]:
        """The tracked values and milestone memberships one set of fields holds, and its team."""
        project = _team(fields)
        values: dict = {}
        state = fields.get(FIELDS["state"])
        if not isinstance(state, str) or not state:
            raise FieldError(FIELDS["state"], "missing")
        try:
            values["status"] = self.status(state)
        except FieldError as exc:
            raise exc.within(FIELDS["state"]) from None
        values["assignee"] = identity(fields.get(FIELDS["assignee"]))
        priority = fields.get(FIELDS["priority"])
        values["priority"] = None if priority in (None, "") else str(priority)
        values["story_points"] = None
        for name in self.points_fields:
            if fields.get(name) is not None:
                try:
                    points = parse_points(fields[name])
                except FieldError as exc:
                    raise exc.within(name) from None
                values["story_points"] = None if points is None else repr(points)
                break
        values["due_at"] = _iso(end_of_day(self._day(fields, "due")))
        members = set()
        for node_id, kind in self.iterations.milestones(fields.get(FIELDS["iteration"])):
            members.add(self._iteration(node_id, kind, project))
        if fields.get(FIELDS["iteration"]) is not None and fields[FIELDS["iteration"]] not in self.iterations.nodes:
            name = str(fields.get(FIELDS["path"]) or "").rsplit("\\", 1)[-1]
            if fields.get(FIELDS["path"]) and "\\" in str(fields[FIELDS["path"]]):  # an iteration the tree lacks
                members.add(self._iteration(fields[FIELDS["iteration"]], "sprint", project, name))
        target = self._day(fields, "target")
        if target is not None:
            mid = target_release(project, target)
            self.milestones.setdefault(mid, {"milestone_id": mid, "project": project, "name": f"Target {target:%Y-%m-%d}",
                                             "kind": "release", "due_at": end_of_day(target)})
            self.by_target = True
            members.add(mid)
        return values, members, project

    def _day(self, fields: dict, name: str) -> pd.Timestamp | None:
        try:
            ts = parse_time(fields.get(FIELDS[name]))
        except FieldError as exc:
            raise exc.within(FIELDS[name]) from None
        return None if ts is None else ts.normalize()

    def _iteration(self, node_id, kind: str, project: str, name: str | None = None) -> str:
        mid = f"ado-iteration-{node_id}"
        if mid not in self.milestones:
            node = self.iterations.nodes.get(node_id, {})
            self.milestones[mid] = {"milestone_id": mid, "project": project, "name": node.get("name") or name or mid,
                                    "kind": kind, "start_at": node.get("start"),
                                    "due_at": end_of_day(node.get("finish"))}
        return mid

    def item(self, raw, file: str, index: int) -> None:
        rep = self.report
        given = raw.get("id") if isinstance(raw, dict) else None
        record = f"work item {given}" if isinstance(given, int) else f"#{index}"
        rep.saw("tickets")
        try:
            item = check(AdoWorkItem, raw)
        except FieldError as exc:
            rep.reject("tickets", file, record, exc.field, exc.message)
            self._unread(raw, file, record)
            return
        fields = item.fields
        state = fields.get(FIELDS["state"])
        if isinstance(state, str) and state.lower() in self.removed_states:
            rep.ignore("tickets")  # removed: no work, and no history of work
            for _ in item.revisions or []:
                rep.saw("revisions")
                rep.ignore("revisions")
            return
        key = str(item.id)
        try:
            created = parse_time(fields.get(FIELDS["created"]))
            if created is None:
                raise FieldError((), "missing")
        except FieldError as exc:
            rep.reject("tickets", file, record, FIELDS["created"], exc.message)
            self._unread(raw, file, record)
            return
        try:
            values, members, project = self._values(fields)
            closed = parse_time(fields.get(FIELDS["closed"]))
        except FieldError as exc:
            rep.reject("tickets", file, record, exc.field, exc.message)
            self._unread(raw, file, record)
            return
        self._note_change(fields)
        snapshots = self._revisions(item, key, created, file)
        first = snapshots[0][1:] if snapshots else (values, members)
        init = {"ticket_id": key, "milestone_id": None, "at": created, "from_value": None}
        for name in SCALARS:
            if first[0][name] is not None:
                self.events.append(dict(init, field=name, to_value=first[0][name]))
        self.events += [dict(init, field="milestone", to_value=m) for m in sorted(first[1])]
        before = first
        done_at = None
        for at, now, joined in snapshots[1:]:
            base = {"ticket_id": key, "milestone_id": None, "at": at}
            for name in SCALARS:
                if now[name] != before[0][name]:
                    self.events.append(dict(base, field=name, from_value=before[0][name], to_value=now[name]))
                    if name == "status" and now[name] == "done":
                        done_at = at
            self.events += [dict(base, field="milestone", from_value=m, to_value=None) for m in sorted(before[1] - joined)]
            self.events += [dict(base, field="milestone", from_value=None, to_value=m) for m in sorted(joined - before[1])]
            before = (now, joined)
        status = values["status"]
        resolved = closed if status == "done" else None
        if status == "done" and resolved is None and done_at is not None:
            resolved = done_at
            self.resolved_from_history += 1
        current = sorted(members, key=lambda m: (self.milestones[m]["kind"] != "sprint", m))
        self.tickets.append({"ticket_id": key, "project": project, "type": fields.get(FIELDS["type"]),
                             "priority": values["priority"], "created_at": created, "resolved_at": resolved,
                             "story_points": None if values["story_points"] is None else float(values["story_points"]),
                             "assignee": values["assignee"], "status": status,
                             "milestone_id": current[0] if current else None})
        rep.accept("tickets")
        self._relations(key, item, file)

    def _revisions(self, item: AdoWorkItem, key: str, created, file: str) -> list[tuple]:
        """(time, values, memberships) of each readable revision, in revision order; the others
        rejected, naming the revision and field; one that changes nothing read is ignored."""
        rep = self.report
        out: list[tuple] = []
        for i, raw in enumerate(sorted(item.revisions or [], key=lambda r: r.get("rev") or 0
                                       if isinstance(r, dict) and isinstance(r.get("rev"), int) else 0)):
            rep.saw("revisions")
            record = f"work item {key} revision {raw.get('rev', i) if isinstance(raw, dict) else i}"
            try:
                revision = check(AdoRevision, raw)
                at = parse_time(revision.fields.get(FIELDS["changed"]))
                if at is None:
                    raise FieldError(FIELDS["changed"], "missing")
                if at < created:
                    raise FieldError(FIELDS["changed"], "a change dated before the work item was created")
                values, members, _ = self._values(revision.fields)
            except FieldError as exc:
                rep.reject("revisions", file, record, exc.field, exc.message)
                continue
            self._note_change(revision.fields)
            if out and values == out[-1][1] and members == out[-1][2]:
                rep.ignore("revisions")  # a change of a field Slipcast does not read (title, area, tags...)
            else:
                rep.accept("revisions")
            out.append((max(at, created), values, members))
        return out

    def _note_change(self, fields: dict) -> None:
        try:
            at = parse_time(fields.get(FIELDS["changed"]))
        except FieldError:
            return
        if at is not None and (self.last_change is None or at > self.last_change):
            self.last_change = at

    def _unread(self, raw, file: str, record: str) -> None:
        """Revisions of a rejected work item are rejected with it, so that counts reconcile."""
        revisions = raw.get("revisions") if isinstance(raw, dict) else None
        for _ in revisions if isinstance(revisions, list) else []:
            self.report.saw("revisions")
            self.report.reject("revisions", file, record, "-", "belongs to a rejected work item")

    def _relations(self, key: str, item: AdoWorkItem, file: str) -> None:
        rep = self.report
        for relation in item.relations or []:
            rep.saw("links")
            if relation.rel not in ADO_RELATIONS:
                rep.ignore("links")  # a commit, a hyperlink, an attached file...
                continue
            match = ITEM_URL.search(relation.url or "")
            if match is None:
                rep.reject("links", file, f"work item {key} {relation.rel}", "url", "names no work item")
                continue
            kind, other_first = ADO_RELATIONS[relation.rel]
            other = match.group(1)
            if other_first is None:
                pair = tuple(sorted((key, other), key=int))
            else:
                pair = (other, key) if other_first else (key, other)
            link = (pair[0], pair[1], kind)
            if link in self.links:
                rep.ignore("links")  # the same link, seen from its other end
                continue
            self.links[link] = {"from_ticket": pair[0], "to_ticket": pair[1], "kind": kind}
            rep.accept("links")

    def frames(self) -> dict[str, pd.DataFrame]:
        events = pd.DataFrame(self.events)
        for m in self.milestones.values():
            due = m.get("due_at")
            m["completed_at"] = due if due is not None and self.last_change is not None and due < self.last_change else None
        milestones = pd.DataFrame(list(self.milestones.values()))
        if len(events) and len(milestones):  # a release of Target Dates starts when an item first joined it
            first = events[events["field"] == "milestone"].dropna(subset=["to_value"]).groupby("to_value")["at"].min()
            known = milestones["start_at"] if "start_at" in milestones else pd.Series(None, index=milestones.index)
            milestones["start_at"] = (pd.to_datetime(known, utc=True).astype("datetime64[us, UTC]")
                                      .fillna(pd.to_datetime(milestones["milestone_id"].map(first), utc=True)
                                              .astype("datetime64[us, UTC]")))
        return {"milestones": milestones, "tickets": pd.DataFrame(self.tickets), "events": events,
                "links": pd.DataFrame(list(self.links.values()))}


def _team(fields: dict) -> str:
    return team_of(fields.get(FIELDS["area"]), fields.get(FIELDS["project"]))


def team_of(area, project=None) -> str:
    """A work item's team: its area path's first level below the project, else the project."""
    parts = [p for p in str(area or "").split("\\") if p]
    if len(parts) > 1:
        return parts[1]
    return parts[0] if parts else str(project or "azure-devops")


def _iso(ts) -> str | None:
    return None if ts is None else ts.isoformat()


def _kind(payload) -> str | None:
    """What a file holds: work items, the iteration tree, the states of each type, a team's iterations."""
    if isinstance(payload, dict) and "fields" in payload and "id" in payload:
        return "item"
    if isinstance(payload, dict) and payload.get("structureType") == "iteration":
        return "iterations"
    if isinstance(payload, dict) and isinstance(payload.get("value"), list):
        values = payload["value"]
        if all(isinstance(v, dict) and "fields" in v for v in values):
            return "items"
        if all(isinstance(v, dict) and "path" in v and "attributes" in v for v in values):
            return "team"
        return None
    if isinstance(payload, dict) and payload and all(
            isinstance(v, list) and all(isinstance(s, dict) and "category" in s for s in v) for v in payload.values()):
        return "states"
    return None


def import_azure_devops(src, out, settings: Settings, force: bool = False) -> ImportReport:
    """Import Azure DevOps work items with their revisions (a file or folder) into ``out``. The
    states and iterations are read before any work item."""
    report = ImportReport(source=str(src))
    builder = _Builder(settings, report)
    items: list[tuple[object, str, int]] = []
    teams: list[dict] = []
    for path in progress(list_files(Path(src), (".json",)), "reading files", unit="file"):
        payload = read_json(path, report, settings.imports.fallback_encoding)
        if payload is None:
            continue
        kind = _kind(payload)
        report.saw("files")
        if kind is None:
            report.reject("files", str(path), "-", "-", "not an Azure DevOps work item, work item list, iteration "
                                                        "tree or list of states")
            continue
        report.accept("files")
        if kind == "item":
            items.append((payload, str(path), 0))
        elif kind == "items":
            items += [(v, str(path), i) for i, v in enumerate(payload["value"])]
        elif kind == "states":
            builder.states(payload, str(path))
        elif kind == "team":
            teams += payload["value"]
        else:
            try:
                builder.iterations.read(check(AdoIteration, payload))
            except FieldError as exc:
                report.reject("files", str(path), "iteration tree", exc.field, exc.message)
    _team_dates(builder.iterations, teams)
    for raw, file, i in progress(items, "importing work items", unit="item"):
        builder.item(raw, file, i)
    trees = any(n["kind"] == "release" for n in builder.iterations.nodes.values())
    report.modelled["releases"] = (" and ".join(w for w, used in (("the iteration tree", trees),
                                                                  ("Target Dates", builder.by_target)) if used)
                                   or "nothing: no dated iteration holds another and no item has a Target Date")
    report.mappings = {"status": builder.status.used}
    report.warnings += builder.status.warnings()
    if builder.resolved_from_history:
        report.warnings.append(f"{builder.resolved_from_history} done work items without a Closed Date: resolved "
                               "when their revisions last moved them to done")
    return finish(report, builder.frames(), Path(out), force)


def _team_dates(iterations: _Iterations, teams: list[dict]) -> None:
    """A team's iteration settings date its iterations where the tree does not (read by name)."""
    by_name = {n["name"]: n for n in iterations.nodes.values()}
    for team in teams:
        node = by_name.get(str(team.get("path", "")).rsplit("\\", 1)[-1])
        dates = team.get("attributes")
        dates = dates if isinstance(dates, dict) else {}
        if node is None or node["start"] or node["finish"]:
            continue
        try:
            node["start"], node["finish"] = (parse_time(dates.get(k)) for k in ("startDate", "finishDate"))
        except FieldError:
            continue
        if node["start"] or node["finish"]:
            node["kind"] = node["kind"] or "sprint"
