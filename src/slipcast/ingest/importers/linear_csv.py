"""The CSV Linear exports (Settings > Import / Export > Export CSV).

One row per issue: ``ID``, ``Team``, ``Status`` (the state's name), ``Estimate``, ``Priority``
("No priority", "Urgent", "High", "Medium", "Low"), ``Project ID``/``Project``, ``Project
Milestone ID``/``Project Milestone``, ``Cycle Number``/``Cycle Name``/``Cycle Start``/``Cycle End``,
``Created``, ``Started``, ``Completed``, ``Canceled``, ``Due Date``, ``Parent issue`` and, in the
wider export, ``Related to``, ``Blocked by`` and ``Duplicate of``. Times are ISO 8601 or the
JavaScript form Linear also writes (``Tue May 14 2024 08:53:33 GMT+0000 (Coordinated Universal
Time)``). A state's name is placed by the settings profile, else by the row's own dates
(completed or canceled: done; started: in progress; else to do).

The CSV carries no history: each issue is taken to have sat in its current cycle, project and
project milestone since its creation, with its current estimate, assignee and priority; its
status moves only where its ``Started``, ``Completed`` and ``Canceled`` columns date it. The
import says so in a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.jira_csv import csv_rows
from slipcast.ingest.importers.report import ImportReport, finish
from slipcast.ingest.importers.sources import list_files, read_text
from slipcast.ingest.importers.vocab import LINEAR_PRIORITIES, Vocabulary, end_of_day, parse_points, parse_time

JS_TIME = "%a %b %d %Y %H:%M:%S GMT%z"  # after the zone's name in brackets is cut off
PRIORITIES = {name.lower(): name for name in LINEAR_PRIORITIES.values()}  # "No priority" is none
LINK_COLUMNS = {"Blocked by": ("blocks", True), "Related to": ("relates", False), "Duplicate of": ("duplicates", False)}
NO_HISTORY = ("a Linear CSV export carries no history: each issue is taken to have sat in its current cycle, project "
              "and project milestone, with its current estimate, assignee and priority, since its creation, and its "
              "status moves only where its Started, Completed and Canceled columns date it; sync the workspace "
              "(`slipcast sync linear`) for its history")


def _time(value: str | None):
    if value is None:
        return None
    return parse_time(re.sub(r"\s*\([^)]*\)\s*$", "", value), formats=(JS_TIME,))


def _keys(value: str | None) -> list[str]:
    return [k.strip() for k in re.split(r"[,\s]+", value or "") if k.strip()]


def import_linear_csv(src, out, settings: Settings, force: bool = False) -> ImportReport:
    """Import one or more Linear CSV exports into canonical tables in ``out``."""
    report = ImportReport(source=str(src))
    status_of = Vocabulary("status", settings.imports.status_categories)
    milestones: dict[str, dict] = {}
    tickets: list[dict] = []
    events: list[dict] = []
    links: dict[tuple[str, str, str], dict] = {}
    seen: set[str] = set()
    for path in progress(list_files(Path(src), (".csv",)), "reading files", unit="file"):
        text = read_text(path, report, settings.imports.fallback_encoding)
        if text is None:
            continue
        try:
            header, rows = csv_rows(text)
        except FieldError as exc:
            report.saw("files")
            report.reject("files", str(path), exc.field, "-", exc.message)
            continue
        if not header or not {"ID", "Team", "Status", "Created"} <= set(header):
            report.saw("files")
            report.reject("files", str(path), "-", "ID", "not a Linear CSV export (no ID, Team, Status and Created "
                                                         "columns)")
            continue
        for number, values in enumerate(rows, start=2):
            report.saw("tickets")
            record = f"row {number}"
            if len(values) != len(header):
                report.reject("tickets", str(path), record, "-", f"{len(values)} fields where the header has "
                                                                 f"{len(header)}")
                continue
            row = {name: value.strip() or None for name, value in zip(header, values)}
            try:
                key = row.get("ID")
                if not key:
                    raise FieldError("ID", "missing")
                record = f"row {number} ({key})"
                if key in seen:
                    raise FieldError("ID", "duplicate issue")
                ticket, initial, later = _ticket(row, key, status_of, milestones)
            except FieldError as exc:
                report.reject("tickets", str(path), record, exc.field, exc.message)
                continue
            seen.add(key)
            tickets.append(ticket)
            report.accept("tickets")
            events += initial + later
            for a, b, kind in _links(row, key):
                report.saw("links")
                if (a, b, kind) in links:
                    report.ignore("links")
                    continue
                links[(a, b, kind)] = {"from_ticket": a, "to_ticket": b, "kind": kind}
                report.accept("links")
    report.warnings.insert(0, NO_HISTORY)
    report.warnings += status_of.warnings()
    report.mappings = {"status": status_of.used}
    return finish(report, {"milestones": pd.DataFrame(list(milestones.values())),
                           "tickets": pd.DataFrame(tickets), "events": pd.DataFrame(events),
                           "links": pd.DataFrame(list(links.values()))}, Path(out), force)


def _field(name: str, read: Callable, value):
    try:
        return read(value)
    except FieldError as exc:
        raise exc.within(name) from None


def _ticket(row: dict, key: str, status_of: Vocabulary, milestones: dict) -> tuple[dict, list, list]:
    """One row's ticket, the events at its creation and the status moves its dates say."""
    team = row.get("Team") or key.rsplit("-", 1)[0]
    created, started, completed, canceled = (_field(c, _time, row.get(c))
                                             for c in ("Created", "Started", "Completed", "Canceled"))
    if created is None:
        raise FieldError("Created", "missing")
    name = row.get("Status")
    if name is None:
        raise FieldError("Status", "missing")
    status_of.learn(name, "done" if completed or canceled else "in_progress" if started else "todo")
    status = _field("Status", status_of, name)
    points = _field("Estimate", parse_points, row.get("Estimate"))
    priority = row.get("Priority")
    if priority is not None and priority.lower() != "no priority" and priority.lower() not in PRIORITIES:
        raise FieldError("Priority", f"{priority!r} is not Linear's (No priority, Urgent, High, Medium, Low)")
    priority = PRIORITIES.get((priority or "").lower())
    due = _field("Due Date", lambda v: end_of_day(parse_time(v[:10] if v else None)), row.get("Due Date"))
    members = []
    if row.get("Project Milestone ID") or row.get("Project Milestone"):
        mid = f"linear-milestone-{row.get('Project Milestone ID') or row['Project Milestone']}"
        milestones.setdefault(mid, {"milestone_id": mid, "project": team, "kind": "release",
                                    "name": row.get("Project Milestone") or mid})
        members.append(mid)
    if row.get("Project ID") or row.get("Project"):
        mid = f"linear-project-{row.get('Project ID') or row['Project']}"
        milestones.setdefault(mid, {"milestone_id": mid, "project": team, "kind": "release",
                                    "name": row.get("Project") or mid})
        members.append(mid)
    if row.get("Cycle Number") or row.get("Cycle Name"):
        mid = f"linear-cycle-{team}-{row.get('Cycle Number') or row['Cycle Name']}"
        milestones.setdefault(mid, {
            "milestone_id": mid, "project": team, "kind": "sprint",
            "name": row.get("Cycle Name") or f"Cycle {row['Cycle Number']}",
            "start_at": _field("Cycle Start", _time, row.get("Cycle Start")),
            "due_at": _field("Cycle End", _time, row.get("Cycle End"))})
        members.append(mid)
    resolved = completed or canceled
    base = {"ticket_id": key, "milestone_id": None, "at": created, "from_value": None}
    moves = [(at, to) for at, to in ((started, "in_progress"), (resolved, "done")) if at is not None and at > created]
    moves = [(at, to) for at, to in moves if to != "in_progress" or status != "todo"]
    start = "todo" if moves else status  # dated moves start from to do
    initial = [dict(base, field="status", to_value=start)]
    if status == "done" and canceled is not None and not completed:
        initial.append(dict(base, at=max(canceled, created), field="resolution", to_value=name))
    for field, value in (("assignee", row.get("Assignee")), ("priority", priority),
                         ("story_points", repr(points) if points is not None else None),
                         ("due_at", due.isoformat() if due is not None else None)):
        if value is not None:
            initial.append(dict(base, field=field, to_value=value))
    initial += [dict(base, field="milestone", to_value=m) for m in members]
    later, now = [], start
    for at, to in sorted(moves):
        if to != now and (to != "done" or status == "done"):
            later.append(dict(base, at=at, field="status", from_value=now, to_value=to))
            now = to
    if now != status:  # the dates say less than the status (moved back since)
        later.append(dict(base, at=max([created] + [at for at, _ in moves]), field="status", from_value=now,
                          to_value=status))
    labels = [s.strip() for s in (row.get("Labels") or "").split(",") if s.strip()]
    ticket = {"ticket_id": key, "project": team, "type": labels[0] if labels else None, "priority": priority,
              "created_at": created, "resolved_at": resolved if status == "done" else None, "story_points": points,
              "assignee": row.get("Assignee"), "status": status, "milestone_id": members[0] if members else None}
    return ticket, initial, later


def _links(row: dict, key: str) -> list[tuple[str, str, str]]:
    found = [(parent, key, "parent") for parent in _keys(row.get("Parent issue"))[:1]]
    for column, (kind, reverse) in LINK_COLUMNS.items():
        found += [(other, key, kind) if reverse else (key, other, kind) for other in _keys(row.get(column))]
    return found
