"""Jira REST issues (``expand=changelog``) to canonical tables.

Accepts one issue per file, search-result pages (``{"issues": [...]}``) or lists of issues,
as a file or a folder. Fix versions become release milestones, sprints become sprint
milestones, changelog items become events, issue links and subtasks become links. The state
each issue had when it was created is rebuilt by replaying its changelog backwards and
emitted as events at ``created_at``, so the events alone reconstruct any past moment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportReport, finish
from slipcast.ingest.importers.shapes import JiraIssue, check
from slipcast.ingest.importers.sources import list_files, read_json
from slipcast.ingest.importers.vocab import (
    JIRA_STATUS_CATEGORIES,
    UNPLACED_STATUS,
    LinkKinds,
    Vocabulary,
    end_of_day,
    parse_points,
    parse_time,
)

VERSION_PREFIX = "jira-version-"  # a fix version's milestone id: this and the version's id
SPRINT_RE = re.compile(r"\[(.*)\]\s*$")
# changelog fields that say an issue was put under a parent: Cloud's, and a company-managed
# project's epic link
PARENT_FIELDS = ("issueparentassociation", "epic link")
SCALAR_FIELDS = {  # Jira changelog field -> (canonical field, use ids rather than display strings)
    "status": ("status", False),
    "assignee": ("assignee", True),
    "priority": ("priority", False),
    "story points": ("story_points", False),
    "resolution": ("resolution", False),
    "issuetype": ("type", False),
    "duedate": ("due_at", False),
}


def parse_sprint(text: str) -> dict:
    """Fields of a GreenHopper sprint string ``...Sprint@1a[id=3,name=A, B,state=..]``."""
    match = SPRINT_RE.search(text)
    if not match:
        raise FieldError((), f"unreadable sprint {text[:80]!r}")
    body = match.group(1)
    keys = list(re.finditer(r"(?:^|,)(\w+)=", body))
    out = {}
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(body)
        value = body[m.end():end]
        out[m.group(1)] = None if value == "<null>" else value
    if not out.get("id"):
        raise FieldError((), f"sprint without id {text[:80]!r}")
    return out


def _user(value) -> str | None:
    if not value:
        return None
    return value.get("name") or value.get("accountId") or value.get("displayName")


def _issues_of(payload) -> list | None:
    if isinstance(payload, dict) and isinstance(payload.get("issues"), list):
        return payload["issues"]
    if isinstance(payload, dict) and ("key" in payload or "fields" in payload):
        return [payload]
    if isinstance(payload, list):
        return payload
    return None


class _Builder:
    """Accumulates canonical rows for one import."""

    def __init__(self, settings: Settings, report: ImportReport):
        imp = settings.imports
        self.status = Vocabulary("status", imp.status_categories, default=UNPLACED_STATUS)
        self.link_kind = LinkKinds(imp.link_kinds)
        self.points_fields = imp.jira_story_points_fields
        self.sprint_fields = imp.jira_sprint_fields
        self.report = report
        self.milestones: dict[str, dict] = {}
        self.tickets: list[dict] = []
        self.events: list[dict] = []
        self.links: dict[tuple, dict] = {}
        self.link_times: dict[tuple[str, str], pd.Timestamp] = {}
        self.truncated = 0  # issues whose changelog holds fewer histories than its total
        self.resolved_from_changelog = 0

    # -- milestones -------------------------------------------------------------------------
    def version(self, v: dict, project: str) -> str:
        mid = f"{VERSION_PREFIX}{v['id']}"
        due = end_of_day(parse_time(v.get("releaseDate")))
        row = self.milestones.setdefault(
            mid, {"milestone_id": mid, "project": project, "name": v.get("name") or mid, "kind": "release"}
        )
        if due is not None:
            row["due_at"] = due
            row["completed_at"] = due if v.get("released") else None
        row["start_at"] = parse_time(v.get("startDate")) or row.get("start_at")
        return mid

    def version_ref(self, vid: str, name: str | None, project: str) -> str:
        """A version known only from the changelog (removed since): no dates known."""
        mid = f"{VERSION_PREFIX}{vid}"
        self.milestones.setdefault(
            mid, {"milestone_id": mid, "project": project, "name": name or mid, "kind": "release"}
        )
        return mid

    def sprint(self, s: dict, project: str) -> str:
        mid = f"jira-sprint-{s['id']}"
        self.milestones[mid] = {
            "milestone_id": mid,
            "project": self.milestones.get(mid, {}).get("project", project),
            "name": s.get("name") or mid,
            "kind": "sprint",
            "start_at": parse_time(s.get("startDate")),
            "due_at": parse_time(s.get("endDate")),
            "completed_at": parse_time(s.get("completeDate")),
        }
        return mid

    # -- what Jira says of itself ---------------------------------------------------------------
    def learn(self, payload) -> None:
        """Status categories from an issue's own status (``statusCategory``), or from a list of
        statuses as ``/rest/api/2/status`` returns it."""
        records = payload if isinstance(payload, list) else [payload]
        for record in records:
            if not isinstance(record, dict):
                continue
            fields = record.get("fields")
            status = (fields.get("status") if isinstance(fields, dict) else None) if "fields" in record else record
            if not isinstance(status, dict) or not isinstance(status.get("name"), str):
                continue
            category = status["statusCategory"].get("key") if isinstance(status.get("statusCategory"), dict) else None
            if category in JIRA_STATUS_CATEGORIES:
                self.status.learn(status["name"], JIRA_STATUS_CATEGORIES[category])

    def dates(self, versions: list[dict], sprints: list[dict]) -> None:
        """Dates of the versions and sprints the issues named, from the project's own lists
        (``/rest/api/2/project/{key}/versions``, ``/rest/agile/1.0/board/{id}/sprint``): a version
        or sprint that no issue holds any more is otherwise known by name only."""
        for v in versions:
            mid = f"{VERSION_PREFIX}{v.get('id')}"
            if mid in self.milestones:
                self.version(v, self.milestones[mid]["project"])
        for sprint in sprints:
            mid = f"jira-sprint-{sprint.get('id')}"
            if mid in self.milestones:
                self.sprint(dict(sprint, id=str(sprint["id"])), self.milestones[mid]["project"])

    # -- issues -----------------------------------------------------------------------------
    def issue(self, issue: dict, file: str, index: int) -> None:
        """Read one issue record (each key once: ``import_jira_json`` keeps one copy per key)."""
        rep = self.report
        key = issue.get("key") if isinstance(issue, dict) else None
        record = key if isinstance(key, str) and key else f"#{index}"
        rep.saw("tickets")
        try:
            if not isinstance(issue, dict):
                raise FieldError((), "not a Jira issue (an object with key and fields)")
            if not key:
                raise FieldError("key", "missing")
            check(JiraIssue, issue)
            fields = issue["fields"]
            row = self._ticket_row(key, fields)
        except FieldError as exc:
            rep.reject("tickets", file, record, exc.field, exc.message)
            self._count_unread_children(issue, record)
            return
        self.tickets.append(row)
        rep.accept("tickets")
        self._changelog(key, issue, fields, row, file)
        self._links(key, fields, file)

    def _ticket_row(self, key: str, fields: dict) -> dict:
        project = (fields.get("project") or {}).get("key") or key.rsplit("-", 1)[0]
        created = self._time(fields, "created", required=True)
        status_name = (fields.get("status") or {}).get("name")
        if status_name is None:
            raise FieldError("status", "missing")
        try:
            status = self.status(status_name)
        except FieldError as exc:
            raise exc.within("status") from None
        milestone_ids = [self.version(v, project) for v in fields.get("fixVersions") or []]
        sprint_ids = [self.sprint(s, project) for s in self._sprints(fields)]
        points = None
        for name in self.points_fields:  # the first field holding a value
            if fields.get(name) is not None:
                try:
                    points = parse_points(fields[name])
                except FieldError as exc:
                    raise exc.within(name) from None
                break
        dated = sorted(
            (self.milestones[m].get("due_at") or pd.Timestamp.max.tz_localize("UTC"), m)
            for m in milestone_ids
        )
        current = dated[0][1] if dated else (sprint_ids[-1] if sprint_ids else None)
        return {
            "ticket_id": key,
            "project": project,
            "type": (fields.get("issuetype") or {}).get("name"),
            "priority": (fields.get("priority") or {}).get("name"),
            "created_at": created,
            "resolved_at": self._time(fields, "resolutiondate"),
            "story_points": points,
            "assignee": _user(fields.get("assignee")),
            "status": status,
            "milestone_id": current,
            "_members": set(milestone_ids) | set(sprint_ids),
            "_due": parse_time(fields.get("duedate")),
        }

    def _time(self, fields: dict, name: str, required: bool = False):
        try:
            value = parse_time(fields.get(name))
        except FieldError as exc:
            raise exc.within(name) from None
        if value is None and required:
            raise FieldError(name, "missing")
        return value

    def _sprints(self, fields: dict) -> list[dict]:
        for name in self.sprint_fields:
            values = fields.get(name)
            if values and isinstance(values, list) and all(isinstance(v, str) for v in values):
                if any("Sprint@" in v or "id=" in v for v in values):
                    return [parse_sprint(v) for v in values]
            if values and isinstance(values, list) and all(isinstance(v, dict) for v in values):
                return [dict(v, id=str(v.get("id"))) for v in values if v.get("id") is not None]
        return []

    def _count_unread_children(self, issue, record: str) -> None:
        """Changelog items of a rejected issue are rejected with it, so counts still reconcile."""
        histories = ((issue.get("changelog") if isinstance(issue, dict) else None) or {})
        histories = histories.get("histories") if isinstance(histories, dict) else None
        for h in histories if isinstance(histories, list) else []:
            items = h.get("items") if isinstance(h, dict) else None
            for item in items if isinstance(items, list) else []:
                self.report.saw("events")
                self.report.reject("events", "-", f"{record} history {h.get('id')}",
                                   str(item.get("field")) if isinstance(item, dict) else "-",
                                   "belongs to a rejected issue")

    # -- changelog --------------------------------------------------------------------------
    def _changelog(self, key: str, issue: dict, fields: dict, row: dict, file: str) -> None:
        rep = self.report
        changelog = issue.get("changelog") or {}
        histories = list(changelog.get("histories") or [])
        if isinstance(changelog.get("total"), int) and changelog["total"] > len(histories):
            self.truncated += 1
        items: list[tuple[pd.Timestamp, dict]] = []
        for h in histories:
            for item in h.get("items") or []:
                rep.saw("events")
                try:
                    at = parse_time(h.get("created"))
                    if at is None:
                        raise FieldError((), "missing")
                except FieldError as exc:
                    rep.reject("events", file, f"{key} history {h.get('id')}", "created", exc.message)
                    continue
                items.append((at, item))
        if any(items[i][0] > items[i + 1][0] for i in range(len(items) - 1)):
            rep.warnings.append(f"{file}: {key} changelog out of time order; sorted by time")
            items.sort(key=lambda pair: pair[0])
        created = row["created_at"]
        ticket_events: list[dict] = []
        for at, item in items:
            name = str(item.get("field", "")).lower()
            where = f"{key} at {at.isoformat()}"
            if at < created:
                rep.reject("events", file, where, str(item.get("field")), "change dated before the issue was created")
                continue
            try:
                produced = self._item_events(key, at, name, item, row)
            except FieldError as exc:
                rep.reject("events", file, where, str(item.get("field")), exc.message)
                continue
            if produced is None:
                rep.ignore("events")
                continue
            ticket_events.extend(produced)
            rep.accept("events")
        self.events.extend(self._initial_state(key, created, row, ticket_events))
        self.events.extend(ticket_events)
        if row["status"] == "done" and row["resolved_at"] is None:
            done = [e["at"] for e in ticket_events if e["field"] == "status" and e["to_value"] == "done"]
            if done:  # resolved when it last became done
                row["resolved_at"] = done[-1]
                self.resolved_from_changelog += 1

    def _item_events(self, key, at, name, item, row) -> list[dict] | None:
        base = {"ticket_id": key, "milestone_id": None, "at": at}
        if name == "fix version":
            project = row["project"]
            old = self.version_ref(item["from"], item.get("fromString"), project) if item.get("from") else None
            new = self.version_ref(item["to"], item.get("toString"), project) if item.get("to") else None
            return [dict(base, field="milestone", from_value=old, to_value=new)]
        if name == "sprint":
            before = {s.strip() for s in str(item.get("from") or "").split(",") if s.strip()}
            after = {s.strip() for s in str(item.get("to") or "").split(",") if s.strip()}
            out = []
            for sid in sorted(after - before):
                out.append(dict(base, field="milestone", from_value=None, to_value=self._sprint_ref(sid, row)))
            for sid in sorted(before - after):
                out.append(dict(base, field="milestone", from_value=self._sprint_ref(sid, row), to_value=None))
            return out
        if name == "link" or name in PARENT_FIELDS:
            # linked to another issue (its key in to, or from), or put under a parent (its key in toString)
            other = item.get("toString") if name in PARENT_FIELDS else item.get("to") or item.get("from")
            if other:
                pair = (key, other)
                self.link_times[pair] = min(self.link_times.get(pair, at), at)
            return None
        if name not in SCALAR_FIELDS:
            return None
        field_, use_ids = SCALAR_FIELDS[name]
        old = item.get("from") if use_ids else item.get("fromString")
        new = item.get("to") if use_ids else item.get("toString")
        if field_ == "status":
            old = self.status(old) if old is not None else None
            new = self.status(new) if new is not None else None
        elif field_ == "due_at":
            old, new = (_iso(end_of_day(parse_time(_date_part(v)))) for v in (old, new))
        elif field_ == "story_points":
            old, new = (_number(v) for v in (old, new))
        return [dict(base, field=field_, from_value=old, to_value=new)]

    def _sprint_ref(self, sid: str, row: dict) -> str:
        mid = f"jira-sprint-{sid}"
        self.milestones.setdefault(
            mid, {"milestone_id": mid, "project": row["project"], "name": mid, "kind": "sprint"}
        )
        return mid

    def _initial_state(self, key, created, row, changes: list[dict]) -> list[dict]:
        """Events at creation carrying the state the changelog implies the issue began with."""
        members = set(row.pop("_members"))
        for e in reversed([e for e in changes if e["field"] == "milestone"]):
            if e["to_value"]:
                members.discard(e["to_value"])
            if e["from_value"]:
                members.add(e["from_value"])
        current = {
            "status": row["status"],
            "assignee": row["assignee"],
            "priority": row["priority"],
            "story_points": _number(row["story_points"]),
            "due_at": _iso(end_of_day(row.pop("_due"))),
        }
        first_resolution = next((e for e in changes if e["field"] == "resolution"), None)
        if first_resolution is not None:  # resolved before the first change shown (a truncated changelog)
            current["resolution"] = None
        initial = []
        for field_, value in current.items():
            first = next((e for e in changes if e["field"] == field_), None)
            start = first["from_value"] if first is not None else value
            if field_ == "status" and start is None:
                start = "todo"
            if start is not None:
                initial.append({"ticket_id": key, "milestone_id": None, "at": created,
                                "field": field_, "from_value": None, "to_value": start})
        for mid in sorted(members):
            initial.append({"ticket_id": key, "milestone_id": None, "at": created,
                            "field": "milestone", "from_value": None, "to_value": mid})
        return initial

    # -- links ------------------------------------------------------------------------------
    def _links(self, key: str, fields: dict, file: str) -> None:
        rep = self.report
        for link in fields.get("issuelinks") or []:
            rep.saw("links")
            kind = self._link_kind(link.get("type") or {})
            if link.get("outwardIssue"):
                pair = (key, link["outwardIssue"].get("key"))
            elif link.get("inwardIssue"):
                pair = (link["inwardIssue"].get("key"), key)
            else:
                rep.reject("links", file, f"{key} link {link.get('id')}", "outwardIssue", "link names no issue")
                continue
            self._add_link(pair, kind)
        parent = (fields.get("parent") or {}).get("key")
        subtasks = [s.get("key") for s in fields.get("subtasks") or []]
        for pair in ([(parent, key)] if parent else []) + [(key, s) for s in subtasks]:
            rep.saw("links")
            self._add_link(pair, "parent")

    def _link_kind(self, link_type: dict) -> str:
        return self.link_kind.place(*(link_type.get(k) for k in ("name", "outward", "inward")))

    def _add_link(self, pair: tuple[str, str], kind: str) -> None:
        """Links are seen from both ends: the second sighting is the same record."""
        rep = self.report
        k = (pair[0], pair[1], kind)
        if k in self.links:
            rep.ignore("links")
            return
        self.links[k] = {"from_ticket": pair[0], "to_ticket": pair[1], "kind": kind}
        rep.accept("links")

    # -- output -----------------------------------------------------------------------------
    def frames(self) -> dict[str, pd.DataFrame]:
        for link in self.links.values():
            either = (self.link_times.get((link["from_ticket"], link["to_ticket"])),
                      self.link_times.get((link["to_ticket"], link["from_ticket"])))
            known = [t for t in either if t is not None]
            link["created_at"] = min(known) if known else None
        events = pd.DataFrame(self.events)
        milestones = pd.DataFrame(list(self.milestones.values()))
        if len(events) and len(milestones):
            first_seen = (events[events["field"] == "milestone"].dropna(subset=["to_value"])
                          .groupby("to_value")["at"].min())
            # a version without a start date starts when an issue first joined it; built as UTC
            # times whatever pandas made of a column that may hold no time at all
            known = milestones["start_at"] if "start_at" in milestones else pd.Series(None, index=milestones.index)
            joined = milestones["milestone_id"].map(first_seen)
            milestones["start_at"] = (pd.to_datetime(known, utc=True).astype("datetime64[us, UTC]")
                                      .fillna(pd.to_datetime(joined, utc=True).astype("datetime64[us, UTC]")))
        return {
            "milestones": milestones,
            "tickets": pd.DataFrame(self.tickets),
            "events": events,
            "links": pd.DataFrame(list(self.links.values())),
        }


def _iso(ts) -> str | None:
    return None if ts is None else ts.isoformat()


def _date_part(value):
    return None if value in (None, "") else str(value)[:10]


def _number(value) -> str | None:
    points = parse_points(value)
    return None if points is None else repr(points)


def import_jira_json(src, out, settings: Settings, force: bool = False) -> ImportReport:
    """Import Jira REST JSON (issues with changelog) from a file or folder into ``out``.

    Every file is read before any issue is: statuses are placed by what every issue says of its
    own, and where one issue comes more than once (without and with ``expand=changelog``, on two
    search pages) the richest copy is kept, the others counted as ignored.
    """
    report = ImportReport(source=str(src))
    builder = _Builder(settings, report)
    kept: dict[str, tuple[tuple, dict, str, int]] = {}  # key -> (richness, issue, file, index)
    keyless: list[tuple[object, str, int]] = []  # rejected when read, naming what is missing
    versions: list[dict] = []
    sprints: list[dict] = []
    repeated = 0
    for path in progress(list_files(Path(src), (".json",)), "reading files", unit="file"):
        payload = read_json(path, report, settings.imports.fallback_encoding)
        if payload is None:
            continue
        listed = _listing(payload)
        if listed is not None:
            kind, records = listed
            if kind == "statuses":
                builder.learn(records)
            (versions if kind == "versions" else sprints if kind == "sprints" else []).extend(records)
            report.saw("files")
            report.accept("files")
            continue
        issues = _issues_of(payload)
        if issues is None:
            report.saw("files")
            report.reject("files", str(path), "-", "-", "not a Jira issue, issue list or search result")
            continue
        for i, issue in enumerate(issues):
            builder.learn(issue)
            key = issue.get("key") if isinstance(issue, dict) else None
            if not isinstance(key, str) or not key:
                keyless.append((issue, str(path), i))
            elif key not in kept:
                kept[key] = (_richness(issue), issue, str(path), i)
            else:
                repeated += 1
                report.saw("tickets")
                report.ignore("tickets")
                if _richness(issue) > kept[key][0]:
                    kept[key] = (_richness(issue), issue, str(path), i)
    for _, issue, file, i in progress(kept.values(), "importing issues", unit="issue"):
        builder.issue(issue, file, i)
    for record, file, i in keyless:
        builder.issue(record, file, i)  # type: ignore[arg-type]  # rejected there, naming the field
    builder.dates(versions, sprints)
    report.warnings += builder.link_kind.warnings() + builder.status.warnings()
    if builder.truncated:
        report.warnings.append(
            f"{builder.truncated} issues hold fewer changelog histories than their total (Jira embeds only the "
            "newest): their earlier changes are lost and the state before the first kept change stands for their "
            "state at creation; export full changelogs (/rest/api/2/issue/{key}/changelog) to keep them")
    if builder.resolved_from_changelog:
        report.warnings.append(f"{builder.resolved_from_changelog} done issues without a resolution date: "
                               "resolved when their changelog last moved them to done")
    report.mappings = {"status": builder.status.used, "link": builder.link_kind.used}
    if repeated:
        report.warnings.append(f"{repeated} issue records repeat an issue read elsewhere: the copy with the longest "
                               "changelog (then the latest update) was kept, the others ignored")
    return finish(report, builder.frames(), Path(out), force)


def _richness(issue: dict) -> tuple[int, str]:
    """How much an issue record holds: its changelog items, then how recently it was updated."""
    changelog = issue.get("changelog")
    histories = changelog.get("histories") if isinstance(changelog, dict) else None
    items = 0
    for h in histories if isinstance(histories, list) else []:
        if isinstance(h, dict) and isinstance(h.get("items"), list):
            items += len(h["items"])
    fields = issue.get("fields")
    return items, str(fields.get("updated") or "") if isinstance(fields, dict) else ""


def _listing(payload) -> tuple[str, list[dict]] | None:
    """What the API lists beside the issues (each optional): the site's statuses
    (``/rest/api/2/status``), a project's versions (``/rest/api/2/project/{key}/versions``) or a
    board's sprints (``/rest/agile/1.0/board/{id}/sprint``, paged in ``values``)."""
    if isinstance(payload, dict) and isinstance(payload.get("values"), list):
        records = payload["values"]
        if all(isinstance(s, dict) and "id" in s and "state" in s for s in records):
            return "sprints", records
        return None
    if not (isinstance(payload, list) and payload and all(isinstance(r, dict) and "fields" not in r for r in payload)):
        return None
    if all("statusCategory" in r for r in payload):
        return "statuses", payload
    if all("id" in r and "projectId" in r and "name" in r for r in payload):
        return "versions", payload
    return None
