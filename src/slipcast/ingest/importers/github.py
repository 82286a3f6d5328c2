"""GitHub REST shapes: milestones, issues and issue events of one repository.

``src`` is a folder holding ``milestones.json``, ``issues.json`` and optionally
``events.json`` (``GET /repos/{o}/{r}/issues/events``), or one JSON file with those three
keys. Milestones become release milestones (``due_on``, ``closed_at``); ``milestoned``,
``demilestoned``, ``closed``, ``reopened``, ``assigned`` and ``unassigned`` events become
canonical events; an issue's milestone at creation is rebuilt by replaying them backwards.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportError_, ImportReport, finish
from slipcast.ingest.importers.shapes import (
    GitHubEvent,
    GitHubIssue,
    GitHubLabel,
    GitHubMilestone,
    GitHubMilestoneRef,
    check,
)
from slipcast.ingest.importers.sources import read_json
from slipcast.ingest.importers.vocab import end_of_day, parse_time

HANDLED = {"milestoned", "demilestoned", "closed", "reopened", "assigned", "unassigned"}


def milestone_id(project: str | None, number: object) -> str:
    """The milestone id of a repository's (``project``'s) milestone ``number``."""
    return f"gh-{project}-ms-{number}"


def _load(src: Path, report: ImportReport, encoding: str) -> dict:
    if src.is_file():
        payload = read_json(src, report, encoding)
        if not isinstance(payload, dict):
            raise ImportError_(f"{src}: expected an object with milestones, issues and events")
        return {k: (str(src), payload.get(k) or []) for k in ("milestones", "issues", "events")}
    if not src.is_dir():
        raise ImportError_(f"{src}: no such file or folder")
    parts: dict[str, tuple[str, list]] = {}
    for name in ("milestones", "issues", "events"):
        path = src / f"{name}.json"
        if not path.exists():
            if name == "events":
                parts[name] = (str(path), [])
                continue
            raise ImportError_(f"{path}: missing (a GitHub export needs {name}.json)")
        payload = read_json(path, report, encoding)
        if isinstance(payload, dict) and isinstance(payload.get("items"), list):
            payload = payload["items"]  # the search API's shape: {"total_count": n, "items": [...]}
        if payload is not None and not isinstance(payload, list):
            raise ImportError_(f"{path}: expected a list of {name} (or a search result with items)")
        parts[name] = (str(path), payload or [])
    return parts


def _repo(issue: dict) -> str | None:
    url = issue.get("repository_url") or ""
    return "/".join(url.rstrip("/").split("/")[-2:]) if url else None


def import_github(src, out, settings: Settings, project: str | None = None, force: bool = False) -> ImportReport:
    """Import a GitHub repository's milestones, issues and events into ``out``."""
    report = ImportReport(source=str(src))
    parts = _load(Path(src), report, settings.imports.fallback_encoding)
    ms_file, raw_ms = parts["milestones"]
    is_file, raw_issues = parts["issues"]
    ev_file, raw_events = parts["events"]
    project = project or next((_repo(i) for i in raw_issues if isinstance(i, dict) and _repo(i)), "github")
    milestones, by_title = {}, {}
    for i, m in enumerate(raw_ms):
        report.saw("milestones")
        try:
            shape = check(GitHubMilestone, m)
        except FieldError as exc:
            report.reject("milestones", ms_file, f"#{i}", exc.field, exc.message)
            continue
        number = shape.number
        mid = milestone_id(project, number)
        try:
            row = {"milestone_id": mid, "project": project, "name": shape.title or mid, "kind": "release",
                   "start_at": parse_time(shape.created_at),
                   "due_at": _due(shape.due_on), "completed_at": parse_time(shape.closed_at)}
        except FieldError as exc:
            report.reject("milestones", ms_file, f"milestone {number}", "dates", exc.message)
            continue
        if mid in milestones:
            report.reject("milestones", ms_file, f"milestone {number}", "number", "duplicate milestone")
            continue
        milestones[mid] = row
        by_title[row["name"]] = mid
        report.accept("milestones")

    def milestone_ref(ref: GitHubMilestoneRef | None) -> str | None:
        if ref is None:
            return None
        if ref.number is not None:
            return milestone_id(project, ref.number)
        return by_title.get(ref.title) if ref.title is not None else None

    events_by_issue: dict[int, list[tuple[pd.Timestamp, GitHubEvent]]] = {}
    for i, e in enumerate(raw_events):
        report.saw("events")
        record = f"event {e.get('id', i)}" if isinstance(e, dict) else f"#{i}"
        if isinstance(e, dict) and isinstance(e.get("event"), str) and e["event"] not in HANDLED:
            report.ignore("events")
            continue
        try:
            event = check(GitHubEvent, e)
            at = parse_time(event.created_at)
            if at is None:
                raise FieldError("created_at", "missing")
        except FieldError as exc:
            report.reject("events", ev_file, record, exc.field, exc.message)
            continue
        events_by_issue.setdefault(event.issue.number, []).append((at, event))

    tickets, events = [], []
    kept = _latest_copies(raw_issues)
    for i, raw in progress(enumerate(raw_issues), "importing issues", total=len(raw_issues), unit="issue"):
        report.saw("tickets")
        given = raw.get("number") if isinstance(raw, dict) else None
        record = f"issue {given}" if isinstance(given, int) else f"#{i}"
        if isinstance(given, int) and kept.get(given, i) != i:
            report.ignore("tickets")  # another copy of this issue (a page that slid) is newer
            continue
        try:
            issue = check(GitHubIssue, raw)
            created, closed = (_time(issue, name) for name in ("created_at", "closed_at"))
            if created is None:
                raise FieldError("created_at", "missing")
            state = issue.state
            if state not in ("open", "closed"):
                raise FieldError("state", f"unknown state {state!r}")
        except FieldError as exc:
            report.reject("tickets", is_file, record, exc.field, exc.message)
            if isinstance(given, int):
                for _, e in events_by_issue.pop(given, []):
                    report.reject("events", ev_file, f"event {e.id}", "issue", "belongs to a rejected issue")
            continue
        number = issue.number
        key = f"{project}#{number}"
        current_ms = milestone_ref(issue.milestone)
        if current_ms and current_ms not in milestones and issue.milestone is not None:
            ref = raw["milestone"]
            try:
                dates = {"due_at": _due(ref.get("due_on")), "start_at": parse_time(ref.get("created_at")),
                         "completed_at": parse_time(ref.get("closed_at"))}
            except FieldError:
                dates = {}  # the milestone's own record, if any, carries its dates
            milestones[current_ms] = {"milestone_id": current_ms, "project": project,
                                      "name": issue.milestone.title or current_ms, "kind": "release", **dates}
        labels = [lab.name if isinstance(lab, GitHubLabel) else lab for lab in issue.labels]
        assignees = [a.login for a in issue.assignees or []] or ([issue.assignee.login] if issue.assignee else [])
        tickets.append({"ticket_id": key, "project": project,
                        "type": "pull_request" if issue.pull_request else
                        ("bug" if any("bug" in lab.lower() for lab in labels) else "issue"),
                        "priority": next((lab for lab in labels if lab.lower().startswith(("priority", "p0", "p1", "p2"))), None),
                        "created_at": created, "resolved_at": closed if state == "closed" else None,
                        "story_points": None, "assignee": assignees[0] if assignees else None,
                        "status": "done" if state == "closed" else "todo", "milestone_id": current_ms})
        report.accept("tickets")
        changes = []
        for at, e in sorted(events_by_issue.pop(number, []), key=lambda p: p[0]):
            kind = e.event
            base = {"ticket_id": key, "milestone_id": None, "at": max(at, created)}
            if kind in ("milestoned", "demilestoned"):
                ref = milestone_ref(e.milestone)
                if ref is None:
                    report.reject("events", ev_file, f"event {e.id}", "milestone", "names no known milestone")
                    continue
                changes.append(dict(base, field="milestone", from_value=None if kind == "milestoned" else ref,
                                    to_value=ref if kind == "milestoned" else None))
            elif kind in ("closed", "reopened"):
                changes.append(dict(base, field="status", from_value="todo" if kind == "closed" else "done",
                                    to_value="done" if kind == "closed" else "todo"))
            else:
                who = e.assignee.login if e.assignee else None
                changes.append(dict(base, field="assignee", from_value=None if kind == "assigned" else who,
                                    to_value=who if kind == "assigned" else None))
            report.accept("events")
        members = {m for m in (current_ms,) if m is not None}
        for c in reversed([c for c in changes if c["field"] == "milestone"]):
            members.discard(c["to_value"])
            if c["from_value"]:
                members.add(c["from_value"])
        status_changes = [c for c in changes if c["field"] == "status"]
        closed_untracked = state == "closed" and not status_changes and closed is not None
        first_status = (status_changes[0]["from_value"] if status_changes
                        else "todo" if closed_untracked or state == "open" else "done")
        init = {"ticket_id": key, "milestone_id": None, "at": created, "from_value": None}
        events.append(dict(init, field="status", to_value=first_status))
        events += [dict(init, field="milestone", to_value=m) for m in sorted(members)]
        if closed_untracked:
            events.append(dict(init, at=max(closed, created), field="status", from_value="todo", to_value="done"))
        events += changes
    repeated = len(raw_issues) - len(kept) - sum(1 for r in raw_issues if not isinstance(r, dict)
                                                 or not isinstance(r.get("number"), int))
    if repeated:
        report.warnings.append(f"{repeated} issue records repeat an issue listed elsewhere: the most recently "
                               "updated copy was kept, the others ignored")
    for number, unread in events_by_issue.items():  # events of issues the export does not hold
        for _, e in unread:
            report.reject("events", ev_file, f"event {e.id}", "issue.number", f"names issue {number}, not in {is_file}")
    return finish(report, {"milestones": pd.DataFrame(list(milestones.values())),
                           "tickets": pd.DataFrame(tickets), "events": pd.DataFrame(events),
                           "links": pd.DataFrame()}, Path(out), force)


def _latest_copies(raw_issues: list) -> dict[int, int]:
    """For each issue number, the position of its most recently updated copy (the last on a tie)."""
    kept: dict[int, int] = {}
    for i, raw in enumerate(raw_issues):
        number = raw.get("number") if isinstance(raw, dict) else None
        if not isinstance(number, int):
            continue
        if number not in kept or str(raw.get("updated_at") or "") >= str(raw_issues[kept[number]].get("updated_at") or ""):
            kept[number] = i
    return kept


def _time(record: GitHubIssue, name: str) -> pd.Timestamp | None:
    try:
        return parse_time(getattr(record, name))
    except FieldError as exc:
        raise exc.within(name) from None


def _due(value):
    """GitHub's due_on is a date shown at 07:00 or 08:00 UTC; due means by the end of that day."""
    ts = parse_time(value)
    return None if ts is None else end_of_day(ts.normalize())

