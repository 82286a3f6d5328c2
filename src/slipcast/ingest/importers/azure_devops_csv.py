"""The CSV that Azure Boards exports from a query ("Export to CSV").

One row per work item, its columns the query's: ``ID``, ``Work Item Type``, ``State``, ``Iteration
Path``, ``Area Path``, ``Story Points`` or ``Effort``, ``Assigned To`` (``Name <unique name>``),
``Priority``, ``Target Date``, ``Created Date``, ``Closed Date``, ``Parent``... (``ID`` and
``Created Date`` are needed; the others are read where the query has them). Dates are the
exporting user's locale and time zone: pass ``tz`` (default UTC, reported) and, if needed,
``date_format``. A CSV carries no history, and no iteration dates: each work item is imported as
it is now, as if it had always been so (the import says it, and ``slipcast doctor`` too); an
iteration path is a sprint without dates unless it is the project's root, the item's own area
path (a team's node) or a node other rows' paths lie under; a Target Date makes a
release, as in the JSON import (src/slipcast/ingest/importers/azure_devops.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.azure_devops import identity, target_release, team_of
from slipcast.ingest.importers.report import ImportReport, finish
from slipcast.ingest.importers.sources import csv_rows, list_files, read_text
from slipcast.ingest.importers.vocab import ADO_REMOVED, UNPLACED_STATUS, Vocabulary, end_of_day, parse_points, parse_time

DATE_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
                "%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y", "%Y-%m-%d")
POINT_COLUMNS = ("Story Points", "Effort", "Size")
NO_HISTORY = ("an Azure DevOps CSV export carries no history (no revisions) and no iteration dates: sync the "
              "project (slipcast sync azure-devops) for a history Slipcast can learn from")


def import_azure_devops_csv(src, out, settings: Settings, tz: str | None = None, date_format: str | None = None,
                            force: bool = False) -> ImportReport:
    """Import one or more Azure Boards query CSV exports into canonical tables in ``out``."""
    report = ImportReport(source=str(src))
    status_of = Vocabulary("status", settings.imports.status_categories, default=UNPLACED_STATUS)
    formats = ((date_format,) if date_format else ()) + DATE_FORMATS
    if tz is None:
        tz = "UTC"
        report.warnings.append("azure-devops-csv times carry no zone; read as UTC (pass --tz to change)")
    read: list[tuple[str, int, dict[str, str]]] = []
    for path in progress(list_files(Path(src), (".csv",)), "reading files", unit="file"):
        text = read_text(path, report, settings.imports.fallback_encoding)
        if text is None:
            continue
        report.saw("files")
        try:
            header, rows = csv_rows(text)
        except FieldError as exc:
            report.reject("files", str(path), exc.field, "-", exc.message)
            continue
        if not header or "ID" not in header or "Work Item Type" not in header:
            report.reject("files", str(path), "-", "ID", "not an Azure Boards CSV export (no 'ID' and 'Work Item "
                                                         "Type' columns)")
            continue
        report.accept("files")
        for number, values in enumerate(rows, start=2):
            report.saw("tickets")
            if len(values) != len(header):
                report.reject("tickets", str(path), f"row {number}", "-",
                              f"{len(values)} fields where the header has {len(header)}")
                continue
            read.append((str(path), number, {h: v.strip() for h, v in zip(header, values) if v.strip()}))
    paths = {row["Iteration Path"] for _, _, row in read if row.get("Iteration Path")}
    nodes = {p.rsplit("\\", 1)[0] for p in paths if "\\" in p}  # paths others lie under: the tree's nodes
    milestones: dict[str, dict] = {}
    tickets, events, links, seen = [], [], {}, set()
    removed = 0
    for file, number, row in read:
        record = f"row {number}" + (f" (ID {row['ID']})" if row.get("ID") else "")
        try:
            key = row.get("ID")
            if not key or not key.isdigit():
                raise FieldError("ID", "missing" if not key else f"{key!r} is not a work item id")
            if key in seen:
                raise FieldError("ID", "duplicate work item")
            if row.get("State", "").lower() == ADO_REMOVED.lower():
                removed += 1
                report.ignore("tickets")  # no work
                continue
            times = {}
            for column in ("Created Date", "Closed Date", "Target Date"):
                try:
                    times[column] = parse_time(row.get(column), tz=tz, formats=formats)
                except FieldError as exc:
                    raise exc.within(column) from None
            if times["Created Date"] is None:
                raise FieldError("Created Date", "missing (add Created Date to the query's columns)")
            if not row.get("State"):
                raise FieldError("State", "missing")
            try:
                status = status_of(row["State"])
            except FieldError as exc:
                raise exc.within("State") from None
            column = next((c for c in POINT_COLUMNS if c in row), "Story Points")
            try:
                points = parse_points(row.get(column))
            except FieldError as exc:
                raise exc.within(column) from None
            parent = row.get("Parent")
            if parent is not None and not parent.isdigit():
                raise FieldError("Parent", f"{parent!r} is not a work item id")
        except FieldError as exc:
            report.reject("tickets", file, record, exc.field, exc.message)
            continue
        seen.add(key)
        project = team_of(row.get("Area Path"), row.get("Team Project"))
        member_of = []
        iteration = row.get("Iteration Path")
        if iteration and "\\" in iteration and iteration not in nodes and iteration != row.get("Area Path"):
            mid = f"ado-iteration-path:{iteration}"
            milestones.setdefault(mid, {"milestone_id": mid, "project": project,
                                        "name": iteration.rsplit("\\", 1)[-1],
                                        "kind": "sprint"})
            member_of.append(mid)
        if times["Target Date"] is not None:
            day = times["Target Date"].normalize()
            mid = target_release(project, day)
            milestones.setdefault(mid, {"milestone_id": mid, "project": project, "name": f"Target {day:%Y-%m-%d}",
                                        "kind": "release", "due_at": end_of_day(day)})
            member_of.append(mid)
        created = times["Created Date"]
        assignee, priority = identity(row.get("Assigned To")), row.get("Priority")
        tickets.append({"ticket_id": key, "project": project, "type": row.get("Work Item Type"), "priority": priority,
                        "created_at": created, "resolved_at": times["Closed Date"] if status == "done" else None,
                        "story_points": points, "assignee": assignee, "status": status,
                        "milestone_id": member_of[0] if member_of else None})
        report.accept("tickets")
        base = {"ticket_id": key, "milestone_id": None, "at": created, "from_value": None}
        events.append(dict(base, field="status", to_value=status))
        for name, value in (("assignee", assignee), ("priority", priority),
                            ("story_points", None if points is None else repr(points))):
            if value is not None:
                events.append(dict(base, field=name, to_value=value))
        events += [dict(base, field="milestone", to_value=m) for m in member_of]
        if parent is not None:
            report.saw("links")
            links[(parent, key)] = {"from_ticket": parent, "to_ticket": key, "kind": "parent"}
            report.accept("links")
    report.warnings.insert(0, NO_HISTORY)
    if removed:
        report.warnings.append(f"{removed} work items in the Removed state: no work, left out")
    report.modelled["releases"] = "Target Dates" if any(m["kind"] == "release" for m in milestones.values()) else \
        "nothing: a CSV export holds no iteration dates and no item has a Target Date"
    report.mappings = {"status": status_of.used}
    report.warnings += status_of.warnings()
    return finish(report, {"milestones": pd.DataFrame(list(milestones.values())), "tickets": pd.DataFrame(tickets),
                           "events": pd.DataFrame(events), "links": pd.DataFrame(list(links.values()))},
                  Path(out), force)
