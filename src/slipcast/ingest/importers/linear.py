"""Linear's GraphQL records (issues with their ``history``, cycles, projects) to canonical tables.

Reads what ``slipcast sync linear`` stores (and ``slipcast generate --format linear`` renders): a
folder of issue files (``issues/<identifier>.json``, or lists and ``{"issues": {"nodes": [...]}}``
pages), with ``cycles.json`` and ``projects.json`` beside them. A workflow state is placed by the
settings profile, else by its ``type`` (triage, backlog, unstarted: to do; started: in progress;
completed and canceled: done, a canceled state's name kept as the resolution). Cycles are
sprints; projects and project milestones are releases (a project without a target date is one
without a due date); the estimate is the story points; ``blocks``, ``duplicate`` and ``related``
relations are links, and so is the parent. The history's state, cycle, project, estimate,
assignee, priority and due date changes are events, and the state each issue had when it was
created is rebuilt by replaying them backwards (docs/architecture.md, "Connectors").
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportReport, finish
from slipcast.ingest.importers.shapes import (
    LinearCycle,
    LinearHistoryEntry,
    LinearIssue,
    LinearProject,
    LinearProjectMilestone,
    check,
)
from slipcast.ingest.importers.sources import list_files, read_json
from slipcast.ingest.importers.vocab import (
    CANCELED_TYPE,
    LINEAR_PRIORITIES,
    LINEAR_STATE_TYPES,
    Vocabulary,
    end_of_day,
    parse_points,
    parse_time,
)

RELATION_KINDS = {"blocks": "blocks", "duplicate": "duplicates", "related": "relates"}  # "similar" is no link
SCALARS = ("status", "resolution", "assignee", "priority", "story_points", "due_at")


def _iso(ts) -> str | None:
    return None if ts is None else ts.isoformat()


def _points(value) -> str | None:
    points = parse_points(value)
    return None if points is None else repr(points)


def _due(value) -> str | None:
    return _iso(end_of_day(parse_time(value[:10] if isinstance(value, str) else value)))


def _user(user) -> str | None:
    return None if user is None else user.name or user.id


def _priority(value: int | None) -> str | None:
    if value is None or value == 0:
        return None
    if value not in LINEAR_PRIORITIES:
        raise FieldError((), f"priority {value!r} is not Linear's (0-4)")
    return LINEAR_PRIORITIES[value]


def _resolution(state) -> str | None:
    return state.name if state is not None and state.type == CANCELED_TYPE else None


class _Builder:
    """Accumulates canonical rows for one import."""

    def __init__(self, settings: Settings, report: ImportReport):
        self.status = Vocabulary("status", settings.imports.status_categories)
        self.report = report
        self.milestones: dict[str, dict] = {}
        self.tickets: list[dict] = []
        self.events: list[dict] = []
        self.links: dict[tuple, dict] = {}
        self.undated: set[str] = set()
        self.in_project_milestones = 0

    # -- what Linear says of itself -------------------------------------------------------------
    def learn(self, state) -> None:
        """A workflow state's place, from its type (the profile still wins)."""
        if isinstance(state, dict) and isinstance(state.get("name"), str) and state.get("type") in LINEAR_STATE_TYPES:
            self.status.learn(state["name"], LINEAR_STATE_TYPES[state["type"]])

    def learn_issue(self, issue) -> None:
        if not isinstance(issue, dict):
            return
        self.learn(issue.get("state"))
        history = issue.get("history")
        for entry in (history.get("nodes") if isinstance(history, dict) else None) or []:
            if isinstance(entry, dict):
                self.learn(entry.get("fromState"))
                self.learn(entry.get("toState"))

    # -- milestones -----------------------------------------------------------------------------
    def cycle(self, c: LinearCycle, team: str, current: bool = True) -> str:
        mid = f"linear-cycle-{c.id}"
        if current or mid not in self.milestones:
            self.milestones[mid] = {
                "milestone_id": mid, "project": c.team.key if c.team else team,
                "name": c.name or (f"Cycle {c.number}" if c.number is not None else mid), "kind": "sprint",
                "start_at": parse_time(c.startsAt), "due_at": parse_time(c.endsAt),
                "completed_at": parse_time(c.completedAt)}
        return mid

    def project(self, p: LinearProject, team: str, current: bool = True) -> str:
        mid = f"linear-project-{p.id}"
        if current or mid not in self.milestones:
            teams = p.teams.nodes if p.teams else []
            self.milestones[mid] = {
                "milestone_id": mid, "project": teams[0].key if teams else team, "name": p.name or mid,
                "kind": "release", "start_at": parse_time(p.startDate),
                "due_at": end_of_day(parse_time(p.targetDate)), "completed_at": parse_time(p.completedAt)}
            if p.targetDate is None:
                self.undated.add(mid)
            else:
                self.undated.discard(mid)
        return mid

    def project_milestone(self, m: LinearProjectMilestone, team: str) -> str:
        mid = f"linear-milestone-{m.id}"
        project = m.project.name if m.project is not None and m.project.name else None
        self.milestones[mid] = {"milestone_id": mid, "project": team,
                                "name": f"{project}: {m.name}" if project and m.name else m.name or mid,
                                "kind": "release", "due_at": end_of_day(parse_time(m.targetDate))}
        return mid

    def dates(self, cycles: list, projects: list, file: str) -> None:
        """Dates of the cycles and projects the issues named, from the workspace's own lists: an
        issue fetched before its cycle completed still names the cycle as it was then."""
        for kind, records in (("cycle", cycles), ("project", projects)):
            for i, record in enumerate(records):
                mid = f"linear-{kind}-{record.get('id')}" if isinstance(record, dict) else None
                if mid not in self.milestones:
                    continue
                try:
                    if kind == "cycle":
                        self.cycle(check(LinearCycle, record), self.milestones[mid]["project"])
                    else:
                        self.project(check(LinearProject, record), self.milestones[mid]["project"])
                except FieldError as exc:
                    self.report.warnings.append(f"{file}: {kind} #{i} ({mid}): {exc.field}: {exc.message}; the "
                                                "dates its issues carry are kept")

    # -- issues ---------------------------------------------------------------------------------
    def issue(self, raw, file: str, index: int) -> None:
        rep = self.report
        key = raw.get("identifier") if isinstance(raw, dict) else None
        record = key if isinstance(key, str) and key else f"#{index}"
        rep.saw("tickets")
        try:
            if not isinstance(raw, dict):
                raise FieldError((), "not a Linear issue (an object with identifier and state)")
            issue = check(LinearIssue, raw)
            row = self._ticket_row(issue)
        except FieldError as exc:
            rep.reject("tickets", file, record, exc.field, exc.message)
            history = raw.get("history") if isinstance(raw, dict) else None
            nodes = history.get("nodes") if isinstance(history, dict) else None
            for n, _ in enumerate(nodes if isinstance(nodes, list) else []):
                rep.saw("events")
                rep.reject("events", file, f"{record} history #{n}", "-", "belongs to a rejected issue")
            return
        self.tickets.append(row)
        rep.accept("tickets")
        parent_at = self._history(issue, row, file)
        self._links(issue, file, parent_at)

    def _ticket_row(self, issue: LinearIssue) -> dict:
        key = issue.identifier
        team = issue.team.key if issue.team else key.rsplit("-", 1)[0]
        created = self._time(issue.createdAt, "createdAt")
        if created is None:
            raise FieldError("createdAt", "missing")
        try:
            status = self.status(issue.state.name)
        except FieldError as exc:
            raise FieldError(("state", "name"), f"{exc.message}; its type {issue.state.type!r} is none of "
                                                f"{sorted(LINEAR_STATE_TYPES)}") from None
        try:
            points = parse_points(issue.estimate)
        except FieldError as exc:
            raise exc.within("estimate") from None
        try:
            priority = _priority(issue.priority)
        except FieldError as exc:
            raise exc.within("priority") from None
        try:
            members = []
            if issue.projectMilestone is not None:
                members.append(self.project_milestone(issue.projectMilestone, team))
                self.in_project_milestones += 1
            if issue.project is not None:
                members.append(self.project(issue.project, team))
            if issue.cycle is not None:
                members.append(self.cycle(issue.cycle, team))
        except FieldError as exc:
            raise exc.within("cycle/project") from None
        releases = sorted((self.milestones[m].get("due_at") or pd.Timestamp.max.tz_localize("UTC"), m)
                          for m in members if self.milestones[m]["kind"] == "release")
        cycles = [m for m in members if self.milestones[m]["kind"] == "sprint"]
        resolved = self._time(issue.completedAt, "completedAt") or self._time(issue.canceledAt, "canceledAt")
        labels = issue.labels.nodes if issue.labels else []
        return {
            "ticket_id": key, "project": team, "type": labels[0].name if labels else None, "priority": priority,
            "created_at": created, "resolved_at": resolved if status == "done" else None, "story_points": points,
            "assignee": _user(issue.assignee), "status": status,
            "milestone_id": releases[0][1] if releases else (cycles[0] if cycles else None),
            "_members": set(members), "_resolution": _resolution(issue.state),
            "_due": self._due(issue.dueDate, "dueDate"),
        }

    @staticmethod
    def _time(value, name: str):
        try:
            return parse_time(value)
        except FieldError as exc:
            raise exc.within(name) from None

    @staticmethod
    def _due(value, name: str):
        try:
            return _due(value)
        except FieldError as exc:
            raise exc.within(name) from None

    # -- history --------------------------------------------------------------------------------
    def _history(self, issue: LinearIssue, row: dict, file: str) -> pd.Timestamp | None:
        """The issue's changes as events, after the state it was created with; when its history
        put it under its current parent (None: never said)."""
        rep, key, created = self.report, issue.identifier, row["created_at"]
        dated = []
        for n, raw in enumerate(issue.history.nodes if issue.history else []):
            rep.saw("events")
            where = f"{key} history {raw.get('id', f'#{n}')}"
            try:
                entry = check(LinearHistoryEntry, raw)
                at = self._time(entry.createdAt, "createdAt")
                if at is None:
                    raise FieldError("createdAt", "missing")
            except FieldError as exc:
                rep.reject("events", file, where, exc.field, exc.message)
                continue
            dated.append((at, where, entry))
        if any(dated[i][0] > dated[i + 1][0] for i in range(len(dated) - 1)):
            rep.warnings.append(f"{file}: {key} history out of time order; sorted by time")
            dated.sort(key=lambda d: d[0])
        changes: list[dict] = []
        parent_at = None
        for at, where, entry in dated:
            if at < created:
                rep.reject("events", file, where, "createdAt", "change dated before the issue was created")
                continue
            if entry.toParent is not None and issue.parent is not None \
                    and entry.toParent.identifier == issue.parent.identifier and parent_at is None:
                parent_at = at
            try:
                produced = self._entry(key, at, entry, row["project"])
            except FieldError as exc:
                rep.reject("events", file, where, exc.field, exc.message)
                continue
            if not produced:
                rep.ignore("events")  # a change outside the canonical model (a title, a label, a parent)
                continue
            changes += produced
            rep.accept("events")
        self.events += self._initial(key, created, row, changes) + changes
        return parent_at

    def _entry(self, key: str, at, e: LinearHistoryEntry, team: str) -> list[dict]:
        base = {"ticket_id": key, "milestone_id": None, "at": at}
        out = []

        def put(field: str, old, new) -> None:
            if old != new:
                out.append(dict(base, field=field, from_value=old, to_value=new))

        if e.fromState is not None or e.toState is not None:
            try:
                put("status", *(self.status(s.name) if s is not None else None for s in (e.fromState, e.toState)))
            except FieldError as exc:
                raise exc.within("toState") from None
            put("resolution", _resolution(e.fromState), _resolution(e.toState))
        if e.fromCycle is not None or e.toCycle is not None:
            try:
                put("milestone", *(self.cycle(c, team, current=False) if c is not None else None
                                   for c in (e.fromCycle, e.toCycle)))
            except FieldError as exc:
                raise exc.within("toCycle") from None
        if e.fromProject is not None or e.toProject is not None:
            try:
                put("milestone", *(self.project(p, team, current=False) if p is not None else None
                                   for p in (e.fromProject, e.toProject)))
            except FieldError as exc:
                raise exc.within("toProject") from None
        if e.fromEstimate is not None or e.toEstimate is not None:
            try:
                put("story_points", _points(e.fromEstimate), _points(e.toEstimate))
            except FieldError as exc:
                raise exc.within("toEstimate") from None
        if e.fromAssignee is not None or e.toAssignee is not None:
            put("assignee", _user(e.fromAssignee), _user(e.toAssignee))
        if e.fromPriority is not None or e.toPriority is not None:
            try:
                put("priority", _priority(e.fromPriority), _priority(e.toPriority))
            except FieldError as exc:
                raise exc.within("toPriority") from None
        if e.fromDueDate is not None or e.toDueDate is not None:
            put("due_at", self._due(e.fromDueDate, "fromDueDate"), self._due(e.toDueDate, "toDueDate"))
        return out

    def _initial(self, key, created, row, changes: list[dict]) -> list[dict]:
        """Events at creation carrying the state the history implies the issue began with."""
        members = set(row.pop("_members"))
        for e in reversed([e for e in changes if e["field"] == "milestone"]):
            members.discard(e["to_value"])
            if e["from_value"]:
                members.add(e["from_value"])
        current = {"status": row["status"], "resolution": row.pop("_resolution"), "assignee": row["assignee"],
                   "priority": row["priority"], "story_points": _points(row["story_points"]),
                   "due_at": row.pop("_due")}
        initial = []
        for field in SCALARS:
            first = next((e for e in changes if e["field"] == field), None)
            start = first["from_value"] if first is not None else current[field]
            if field == "status" and start is None:
                start = "todo"
            if start is not None:
                initial.append({"ticket_id": key, "milestone_id": None, "at": created, "field": field,
                                "from_value": None, "to_value": start})
        initial += [{"ticket_id": key, "milestone_id": None, "at": created, "field": "milestone",
                     "from_value": None, "to_value": m} for m in sorted(members)]
        return initial

    # -- links ----------------------------------------------------------------------------------
    def _links(self, issue: LinearIssue, file: str, parent_at) -> None:
        rep, key = self.report, issue.identifier
        for n, relation in enumerate(issue.relations.nodes if issue.relations else []):
            rep.saw("links")
            kind = RELATION_KINDS.get(relation.type)
            if kind is None:
                rep.ignore("links")  # "similar": Linear's suggestion, no link a team made
                continue
            try:
                at = parse_time(relation.createdAt)
            except FieldError as exc:
                rep.reject("links", file, f"{key} relation #{n}", "createdAt", exc.message)
                continue
            self._add((key, relation.relatedIssue.identifier, kind), at)
        if issue.parent is not None:
            rep.saw("links")
            self._add((issue.parent.identifier, key, "parent"), parent_at)

    def _add(self, link: tuple[str, str, str], at) -> None:
        if link in self.links:
            self.report.ignore("links")
            return
        self.links[link] = {"from_ticket": link[0], "to_ticket": link[1], "kind": link[2], "created_at": at}
        self.report.accept("links")

    # -- output ---------------------------------------------------------------------------------
    def frames(self) -> dict[str, pd.DataFrame]:
        events = pd.DataFrame(self.events)
        milestones = pd.DataFrame(list(self.milestones.values()),
                                  columns=["milestone_id", "project", "name", "kind", "start_at", "due_at",
                                           "completed_at"])
        if len(events) and len(milestones):  # a milestone without a start starts when an issue first joined it
            joined = (events[events["field"] == "milestone"].dropna(subset=["to_value"])
                      .groupby("to_value")["at"].min())
            start = pd.to_datetime(milestones["start_at"], utc=True).astype("datetime64[us, UTC]")
            first = pd.to_datetime(milestones["milestone_id"].map(joined), utc=True).astype("datetime64[us, UTC]")
            milestones["start_at"] = start.fillna(first)
        return {"milestones": milestones, "tickets": pd.DataFrame(self.tickets), "events": events,
                "links": pd.DataFrame(list(self.links.values()))}


def _issues_of(payload) -> list | None:
    """The issues a file holds: one issue, a list of them, or a page (``{"issues": {"nodes": [...]}}``,
    as the API answers it, under ``data`` or not)."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    if isinstance(payload, dict) and "identifier" in payload:
        return [payload]
    if isinstance(payload, dict) and isinstance(payload.get("issues"), dict) \
            and isinstance(payload["issues"].get("nodes"), list):
        return payload["issues"]["nodes"]
    if isinstance(payload, list):
        return payload
    return None


def import_linear(src, out, settings: Settings, force: bool = False) -> ImportReport:
    """Import Linear's records (issues with history, cycles, projects) from a file or folder into ``out``.

    Every file is read before any issue is, so states are placed by what every issue says of its
    own; an issue that comes twice is kept in its most recently updated copy, the others ignored.
    """
    report = ImportReport(source=str(src))
    builder = _Builder(settings, report)
    kept: dict[str, tuple[str, dict, str, int]] = {}  # identifier -> (updatedAt, issue, file, index)
    keyless: list[tuple[object, str, int]] = []
    lists: dict[str, list] = {"cycles": [], "projects": []}
    files: dict[str, str] = {}
    repeated = 0
    for path in progress(list_files(Path(src), (".json",)), "reading files", unit="file"):
        payload = read_json(path, report, settings.imports.fallback_encoding)
        if payload is None:
            continue
        listed = next((k for k in lists if isinstance(payload, dict) and isinstance(payload.get(k), list)), None)
        if listed:
            lists[listed] += payload[listed]
            files[listed] = str(path)
            report.saw("files")
            report.accept("files")
            continue
        issues = _issues_of(payload)
        if issues is None:
            report.saw("files")
            report.reject("files", str(path), "-", "-", "not a Linear issue, issue list, cycles or projects")
            continue
        for i, issue in enumerate(issues):
            builder.learn_issue(issue)
            key = issue.get("identifier") if isinstance(issue, dict) else None
            if not isinstance(key, str) or not key:
                keyless.append((issue, str(path), i))
                continue
            updated = str(issue.get("updatedAt") or "")
            if key in kept:
                repeated += 1
                report.saw("tickets")
                report.ignore("tickets")
                if updated <= kept[key][0]:
                    continue
            kept[key] = (updated, issue, str(path), i)
    for _, issue, file, i in progress(kept.values(), "importing issues", unit="issue"):
        builder.issue(issue, file, i)
    for record, file, i in keyless:
        builder.issue(record, file, i)
    builder.dates(lists["cycles"], lists["projects"], files.get("cycles", files.get("projects", "-")))
    report.warnings += builder.status.warnings()
    if builder.undated:
        report.warnings.append(f"{len(builder.undated)} projects have no target date: kept as releases without a "
                               "due date (no forecast of them until one is set)")
    if builder.in_project_milestones:
        report.warnings.append(f"{builder.in_project_milestones} issues sit in a project milestone: Linear's history "
                               "does not record that, so they are taken to have been in it since their creation")
    if repeated:
        report.warnings.append(f"{repeated} issue records repeat an issue read elsewhere: the most recently updated "
                               "copy was kept, the others ignored")
    report.mappings = {"status": builder.status.used}
    return finish(report, builder.frames(), Path(out), force)
