"""Canonical tables rendered as Jira REST JSON, as a user exports it or a Jira site serves it.

Issues come as ``/rest/api/2/search`` pages with ``expand=changelog`` (or one issue per file):
``fields`` with status and its ``statusCategory``, fix versions, sprints (the GreenHopper string
of Data Center, or Cloud's agile JSON), story points in a custom field, issue links seen from
both ends, a parent (an epic) as Jira Cloud shows it: ``fields.parent`` of the child, and an
``IssueParentAssociation`` item in the child's changelog dated when it was put under the parent
(a ticket of two parents, which Jira cannot hold, shows the others as "Issue split" links);
``changelog.histories[].items[]`` with Jira's field names, ids and display strings.
Beside them, what the API lists of a project: its versions, its boards' sprints, the site's
statuses. Each quirk of ``quirks.QUIRKS`` changes the rendering the way a real export differs.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from slipcast.ingest.exports.history import Change, TicketHistory, ticket_histories
from slipcast.ingest.exports.quirks import TRUNCATED_HISTORIES
from slipcast.ingest.tables import Tables

PAGE = 50
STATUSES = {  # category -> (name, id, Jira's statusCategory key)
    "todo": ("To Do", "10000", "new"), "in_progress": ("In Progress", "3", "indeterminate"),
    "blocked": ("Blocked", "10001", "indeterminate"), "done": ("Done", "10002", "done"),
}
CUSTOM_STATUSES = {
    "todo": ("Awaiting Triage", "10100", "new"), "in_progress": ("Patch Available", "10101", "indeterminate"),
    "blocked": ("Waiting for Vendor", "10102", "indeterminate"), "done": ("Shipped", "10103", "done"),
}
LINK_TYPES = {  # canonical kind -> Jira link type
    "depends_on": {"id": "10010", "name": "Dependency", "inward": "is depended on by", "outward": "depends on"},
    "blocks": {"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks"},
    "relates": {"id": "10003", "name": "Relates", "inward": "relates to", "outward": "relates to"},
    "duplicates": {"id": "10002", "name": "Duplicate", "inward": "is duplicated by", "outward": "duplicates"},
    "parent": {"id": "10020", "name": "Issue split", "inward": "split from", "outward": "split to"},
}
CUSTOM_LINK = {"id": "10400", "name": "Prerequisite", "inward": "is required by", "outward": "requires"}
PRIORITY_IDS = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
ACCENTED = "Ünïcode façade — “quoted” café"  # every character has a cp1252 byte


@dataclass(frozen=True)
class JiraIds:
    """How canonical names appear in the rendered Jira: what an import of it gives back."""

    milestones: dict[str, str]  # canonical milestone id -> the id an import gives it
    cloud: bool

    def user(self, name: str | None) -> str | None:
        return None if name is None else (account_id(name) if self.cloud else name)


def account_id(name: str) -> str:
    """A Cloud accountId for a user name (stable: the same name, the same id)."""
    return f"5b10a2844c20165700ede{zlib.crc32(name.encode()):08x}"


def issue_id(key: str) -> str:
    """The numeric id Jira gives an issue (stable: the same key, the same id)."""
    return str(100000 + zlib.crc32(key.encode()) % 900000)


def _time(ts: pd.Timestamp, offset: str) -> str:
    local = ts.tz_convert("Etc/GMT-2" if offset == "+0200" else "UTC")
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}{offset}"


def _date(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%d")


class _Renderer:
    def __init__(self, tables: Tables, quirks: frozenset[str]):
        self.q = quirks
        milestones, tickets, _, links = tables.frames()
        self.milestones = {r.milestone_id: r for r in milestones.itertuples(index=False)}
        projects = sorted(tickets["project"].unique())
        self.project_ids = {p: str(10000 + i) for i, p in enumerate(projects)}
        self.version_ids: dict[str, str] = {}
        self.sprint_ids: dict[str, str] = {}
        for i, (mid, m) in enumerate(sorted(self.milestones.items())):
            (self.version_ids if m.kind == "release" else self.sprint_ids)[mid] = str(20000 + i if m.kind == "release"
                                                                                     else 1 + i)
        self.statuses = CUSTOM_STATUSES if "custom_statuses" in quirks else STATUSES
        self.offset = "+0200" if "local_offsets" in quirks else "+0000"
        self.cloud = "cloud_shapes" in quirks
        self.points_field = "customfield_10016" if self.cloud else "customfield_10023"
        self.sprint_field = "customfield_10020" if self.cloud else "customfield_10007"
        self.tickets = tickets.set_index("ticket_id", drop=False)
        self.links: dict[str, list[dict]] = {}
        self.link_changes: dict[str, list[tuple[pd.Timestamp, dict]]] = {}
        self.parents: dict[str, str] = {}  # child -> the parent its fields.parent names
        for i, link in enumerate(links.itertuples(index=False)):
            if link.kind == "parent" and link.to_ticket not in self.parents:
                self._parent(link)
            else:
                self._link(i, link)

    def ids(self) -> JiraIds:
        out = {mid: f"jira-version-{vid}" for mid, vid in self.version_ids.items()}
        out.update({mid: f"jira-sprint-{sid}" for mid, sid in self.sprint_ids.items()})
        return JiraIds(out, self.cloud)

    def exported(self, mid: str | None) -> bool:
        if mid is None or mid not in self.milestones:
            return False
        kind = self.milestones[mid].kind
        return not ((kind == "release" and "no_fix_versions" in self.q) or (kind != "release" and "no_sprints" in self.q))

    # -- values --------------------------------------------------------------------------------
    def user(self, name: str | None) -> dict | None:
        if name is None:
            return None
        shown = f"{name} ({ACCENTED})" if "non_utf8" in self.q else name
        return {"accountId": account_id(name), "displayName": shown} if self.cloud else {"name": name, "displayName": shown}

    def status(self, category: str) -> dict:
        name, sid, key = self.statuses[category]
        return {"id": sid, "name": name, "statusCategory": {"id": {"new": 2, "indeterminate": 4, "done": 3}[key],
                                                              "key": key, "name": key.title()}}

    def version(self, mid: str) -> dict:
        m = self.milestones[mid]
        out = {"id": self.version_ids[mid], "name": m.name, "archived": False,
               "released": bool(pd.notna(m.completed_at)), "projectId": int(self.project_ids[m.project])}
        if pd.notna(m.due_at):
            out["releaseDate"] = _date(m.due_at)
        if pd.notna(m.start_at) and "no_start_dates" not in self.q:
            out["startDate"] = _date(m.start_at)
        return out

    def sprint(self, mid: str) -> dict:
        m = self.milestones[mid]
        state = "closed" if pd.notna(m.completed_at) else "active"
        out = {"id": int(self.sprint_ids[mid]), "name": m.name, "state": state, "boardId": 1,
               "startDate": self._when(m.start_at), "endDate": self._when(m.due_at),
               "completeDate": self._when(m.completed_at)}
        return {k: v for k, v in out.items() if v is not None}

    def _when(self, ts) -> str | None:
        return None if ts is None or pd.isna(ts) else _time(ts, self.offset)

    def sprint_text(self, mid: str) -> str:
        """The sprint as Data Center's GreenHopper string shows it in an issue's sprint field."""
        s = self.sprint(mid)
        shown = {"id": s["id"], "rapidViewId": s["boardId"], "state": s["state"].upper(), "name": s["name"],
                 **{k: s.get(k, "<null>") for k in ("startDate", "endDate", "completeDate")}, "sequence": s["id"]}
        body = ",".join(f"{k}={v}" for k, v in shown.items())
        return f"com.atlassian.greenhopper.service.sprint.Sprint@{zlib.crc32(mid.encode()):x}[{body},goal=]"

    # -- links ---------------------------------------------------------------------------------
    def _parent(self, link) -> None:
        child, parent = link.to_ticket, link.from_ticket
        self.parents[child] = parent
        if pd.isna(link.created_at) or child not in self.tickets.index:
            return
        at = max(link.created_at, self.tickets.loc[child, "created_at"])
        self.link_changes.setdefault(child, []).append(
            (at, {"field": "IssueParentAssociation", "fieldtype": "jira", "from": None, "fromString": None,
                  "to": issue_id(parent), "toString": parent}))

    def parent(self, key: str) -> dict:
        """A parent as ``fields.parent`` shows it: its key, id and a few of its own fields."""
        shown: dict = {"id": issue_id(key), "key": key}
        if key in self.tickets.index:
            t = self.tickets.loc[key]
            shown["fields"] = {"summary": f"Work item {key}", "status": self.status(t.status)}
            if isinstance(t.type, str):
                shown["fields"]["issuetype"] = {"name": t.type, "subtask": False}
        return shown

    def _link(self, i: int, link) -> None:
        kind = CUSTOM_LINK if "custom_link_types" in self.q and link.kind == "depends_on" else LINK_TYPES[link.kind]
        a, b = link.from_ticket, link.to_ticket
        self.links.setdefault(a, []).append({"id": str(30000 + i), "type": kind, "outwardIssue": {"key": b}})
        self.links.setdefault(b, []).append({"id": str(30000 + i), "type": kind, "inwardIssue": {"key": a}})
        if pd.isna(link.created_at):
            return
        for here, other, words in ((a, b, kind["outward"]), (b, a, kind["inward"])):
            if here in self.tickets.index:
                at = max(link.created_at, self.tickets.loc[here, "created_at"])
                self.link_changes.setdefault(here, []).append(
                    (at, {"field": "Link", "fieldtype": "jira", "from": None, "fromString": None,
                          "to": other, "toString": f"This issue {words} {other}"}))

    # -- issues --------------------------------------------------------------------------------
    def issue(self, h: TicketHistory, with_changelog: bool = True) -> dict:
        t = self.tickets.loc[h.key]
        values, members = h.final()
        if "truncated_changelog" in self.q:
            h = h.newest(TRUNCATED_HISTORIES)
        fields: dict = {
            "summary": f"{h.key} {ACCENTED}" if "non_utf8" in self.q else f"Work item {h.key}",
            "project": {"id": self.project_ids[t.project], "key": t.project, "name": t.project},
            "issuetype": {"name": values["type"] or t.type} if (values["type"] or t.type) else None,
            "status": self.status(t.status),
            "created": _time(h.created, self.offset),
            "updated": _time(max([h.created] + [c.at for c in h.changes]), self.offset),
            "resolutiondate": None if "no_resolution_dates" in self.q or pd.isna(t.resolved_at)
            else _time(t.resolved_at, self.offset),
            "assignee": self.user(values["assignee"]),
            "fixVersions": [self.version(m) for m in sorted(members) if m in self.version_ids and self.exported(m)],
            "issuelinks": self.links.get(h.key, []),
        }
        if values["priority"] is not None and "no_priorities" not in self.q:
            fields["priority"] = {"id": PRIORITY_IDS.get(values["priority"], "3"), "name": values["priority"]}
        if values["story_points"] is not None and "no_story_points" not in self.q:
            fields[self.points_field] = float(values["story_points"])
        if values["due_at"] is not None:
            fields["duedate"] = values["due_at"][:10]
        if h.key in self.parents:
            fields["parent"] = self.parent(self.parents[h.key])
        sprints = [m for m in sorted(members, key=lambda m: int(self.sprint_ids.get(m, 0)))
                   if m in self.sprint_ids and self.exported(m)]
        if sprints:
            fields[self.sprint_field] = ([self.sprint(m) for m in sprints] if self.cloud
                                         else [self.sprint_text(m) for m in sprints])
        issue = {"expand": "operations,changelog", "id": issue_id(h.key), "key": h.key, "fields": fields}
        if with_changelog:
            histories = self.histories(h)
            total = len(histories) + (h.total_changes or 0) - (len(h.change_times()) if h.total_changes else 0)
            if "reverse_changelog" in self.q:
                histories.reverse()
            issue["changelog"] = {"startAt": 0, "maxResults": len(histories), "total": total, "histories": histories}
        return issue

    def histories(self, h: TicketHistory) -> list[dict]:
        by_time: dict[pd.Timestamp, list[dict]] = {}
        sprints = {m for m in h.members if m in self.sprint_ids and self.exported(m)}
        for c in h.changes:
            by_time.setdefault(c.at, []).extend(self.items(c, sprints))
        first = min(h.change_times(), default=None)
        for at, item in self.link_changes.get(h.key, []):
            if h.total_changes is None or first is None or at >= first:
                by_time.setdefault(at, []).append(item)
        return [{"id": str(zlib.crc32(f"{h.key}{at}".encode())), "author": self.user("jira.admin"),
                 "created": _time(at, self.offset), "items": items}
                for at, items in sorted(by_time.items()) if items]

    def items(self, c: Change, sprints: set[str]) -> Iterable[dict]:
        if c.field == "milestone":
            yield from self._membership(c, sprints)
            return
        skip = {"story_points": "no_story_points", "priority": "no_priorities"}.get(c.field)
        if skip in self.q:
            return
        if c.field == "status":
            old, new = (self.status(v) if v else None for v in (c.old, c.new))
            yield {"field": "status", "fieldtype": "jira", "from": old and old["id"], "fromString": old and old["name"],
                   "to": new and new["id"], "toString": new and new["name"]}
        elif c.field == "assignee":
            old, new = (self.user(v) for v in (c.old, c.new))
            ident = "accountId" if self.cloud else "name"
            yield {"field": "assignee", "fieldtype": "jira", "from": old and old[ident],
                   "fromString": old and old["displayName"], "to": new and new[ident],
                   "toString": new and new["displayName"]}
        elif c.field == "story_points":
            yield {"field": "Story Points", "fieldtype": "custom", "from": None, "fromString": c.old,
                   "to": None, "toString": c.new}
        elif c.field == "due_at":
            yield {"field": "duedate", "fieldtype": "jira", "from": c.old and c.old[:10],
                   "fromString": c.old and f"{c.old[:10]} 00:00:00.0", "to": c.new and c.new[:10],
                   "toString": c.new and f"{c.new[:10]} 00:00:00.0"}
        else:
            name = {"type": "issuetype"}.get(c.field, c.field)
            yield {"field": name, "fieldtype": "jira", "from": None, "fromString": c.old, "to": None, "toString": c.new}

    def _membership(self, c: Change, sprints: set[str]) -> Iterable[dict]:
        before = set(sprints)
        for mid, joined in ((c.old, False), (c.new, True)):
            if mid is None or not self.exported(mid):
                continue
            if mid in self.version_ids:
                vid, name = self.version_ids[mid], self.milestones[mid].name
                yield {"field": "Fix Version", "fieldtype": "jira", "from": None if joined else vid,
                       "fromString": None if joined else name, "to": vid if joined else None,
                       "toString": name if joined else None}
            elif joined:
                sprints.add(mid)
            else:
                sprints.discard(mid)
        if sprints != before:
            def ids(ms):
                return ", ".join(self.sprint_ids[m] for m in sorted(ms, key=lambda m: int(self.sprint_ids[m])))

            def names(ms):
                return ", ".join(self.milestones[m].name for m in sorted(ms, key=lambda m: int(self.sprint_ids[m])))
            yield {"field": "Sprint", "fieldtype": "custom", "from": ids(before), "fromString": names(before),
                   "to": ids(sprints), "toString": names(sprints)}


def render_jira_json(tables: Tables, folder: Path, quirks: frozenset[str]) -> JiraIds:
    """Write ``tables`` into ``folder`` as a Jira REST export with ``quirks``; the ids it used."""
    r = _Renderer(tables, quirks)
    folder.mkdir(parents=True, exist_ok=True)
    encoding = "cp1252" if "non_utf8" in quirks else "utf-8"

    def write(name: str, payload) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), encoding=encoding)

    issues = [r.issue(h) for h in ticket_histories(tables).values()]
    if "one_file_per_issue" in quirks:
        for issue in issues:
            write(f"issues/{issue['key']}.json", issue)
    else:
        pages = [issues[i:i + PAGE] for i in range(0, len(issues), PAGE)]
        for n, page in enumerate(pages):
            shown = page + (pages[n + 1][:2] if "duplicated_issues" in quirks and n + 1 < len(pages) else [])
            write(f"search-{n:03d}.json", {"expand": "schema,names", "startAt": n * PAGE, "maxResults": PAGE,
                                           "total": len(issues), "issues": shown})
    if "duplicated_issues" in quirks:  # the same issues fetched once more without expand=changelog
        write("search-plain.json", {"startAt": 0, "maxResults": PAGE, "total": len(issues),
                                    "issues": [{k: v for k, v in i.items() if k != "changelog"} for i in issues[:PAGE]]})
    if "issues_only" not in quirks:
        for project in r.project_ids:
            write(f"versions-{project}.json",
                  [r.version(m) for m, vid in r.version_ids.items()
                   if r.milestones[m].project == project and r.exported(m)])
        sprints = [r.sprint(m) for m in r.sprint_ids if r.exported(m)]
        write("sprints-board-1.json", {"maxResults": len(sprints), "startAt": 0, "isLast": True, "values": sprints})
        write("statuses.json", [r.status(c) for c in r.statuses])
    return r.ids()
