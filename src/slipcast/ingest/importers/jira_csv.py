"""The CSV that Jira's issue navigator exports ("Export > CSV (all fields)").

Repeated headers (Sprint, Fix Version/s, Labels, issue-link columns) are gathered into lists.
Dates are the UI's localized form (``19/Aug/11 3:34 AM`` by default) in the exporting user's
time zone: pass ``tz`` (default UTC, reported) and, if needed, ``date_format``. A CSV carries
no changelog, so each issue's history is what its columns imply: created with its current
milestones, assignee and priority; done at its resolution date.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from slipcast.core.errors import FieldError
from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportReport, finish
from slipcast.ingest.importers.sources import csv_rows, list_files, read_text
from slipcast.ingest.importers.vocab import LinkKinds, Vocabulary, parse_points, parse_time

DATE_FORMATS = ("%d/%b/%y %I:%M %p", "%d/%b/%Y %I:%M %p", "%d/%b/%y %H:%M", "%Y-%m-%d %H:%M",
                "%d.%m.%Y %H:%M", "%m/%d/%Y %H:%M", "%d/%b/%y", "%Y-%m-%d")
POINT_COLUMNS = ("Custom field (Story Points)", "Story Points", "Custom field (Story point estimate)")
LINK_PREFIXES = ("Outward issue link (", "Inward issue link (")


def import_jira_csv(src, out, settings: Settings, tz: str | None = None, date_format: str | None = None,
                    force: bool = False) -> ImportReport:
    """Import one or more Jira CSV exports into canonical tables in ``out``."""
    report = ImportReport(source=str(src))
    status_of = Vocabulary("status", settings.imports.status_categories)
    link_kind = LinkKinds(settings.imports.link_kinds)
    formats = ((date_format,) if date_format else ()) + DATE_FORMATS
    if tz is None:
        tz = "UTC"
        report.warnings.append("jira-csv times carry no zone; read as UTC (pass --tz to change)")
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
        if not header or "Issue key" not in header:
            report.saw("files")
            report.reject("files", str(path), "-", "Issue key", "not a Jira CSV export (no 'Issue key' column)")
            continue
        for number, values in enumerate(rows, start=2):
            report.saw("tickets")
            record = f"row {number}"
            if len(values) != len(header):
                report.reject("tickets", str(path), record, "-",
                              f"{len(values)} fields where the header has {len(header)}")
                continue
            cols: dict[str, list[str]] = defaultdict(list)
            for name, value in zip(header, values):
                if value.strip():
                    cols[name].append(value.strip())
            first = {k: v[0] for k, v in cols.items()}
            key = first.get("Issue key")
            try:
                if not key:
                    raise FieldError("Issue key", "missing")
                record = f"row {number} ({key})"
                if key in seen:
                    raise FieldError("Issue key", "duplicate issue")
                try:
                    created = parse_time(first.get("Created"), tz=tz, formats=formats)
                    resolved = parse_time(first.get("Resolved"), tz=tz, formats=formats)
                except FieldError as exc:
                    raise exc.within("Created/Resolved") from None
                if created is None:
                    raise FieldError("Created", "missing")
                try:
                    status = status_of(first.get("Status"))
                except FieldError as exc:
                    raise exc.within("Status") from None
                raw_points = next((first[c] for c in POINT_COLUMNS if c in first), None)
                try:
                    points = parse_points(raw_points)
                except FieldError as exc:
                    raise exc.within("Story Points") from None
                ticket_links = []
                for name, vals in cols.items():
                    if name.startswith(LINK_PREFIXES):
                        kind = link_kind.place(name[name.index("(") + 1:-1])
                        outward = name.startswith("Outward")
                        ticket_links += [(key, v, kind) if outward else (v, key, kind) for v in vals]
            except FieldError as exc:
                report.reject("tickets", str(path), record, exc.field, exc.message)
                continue
            seen.add(key)
            project = first.get("Project key") or key.rsplit("-", 1)[0]
            member_of = []
            for name in cols.get("Fix Version/s", []) + cols.get("Fix versions", []):
                mid = f"jira-version-name:{project}:{name}"
                milestones.setdefault(mid, {"milestone_id": mid, "project": project, "name": name, "kind": "release"})
                member_of.append(mid)
            for name in cols.get("Sprint", []):
                mid = f"jira-sprint-name:{name}"
                milestones.setdefault(mid, {"milestone_id": mid, "project": project, "name": name, "kind": "sprint"})
                member_of.append(mid)
            tickets.append({
                "ticket_id": key, "project": project, "type": first.get("Issue Type"),
                "priority": first.get("Priority"), "created_at": created, "resolved_at": resolved,
                "story_points": points, "assignee": first.get("Assignee"), "status": status,
                "milestone_id": member_of[0] if member_of else None,
            })
            report.accept("tickets")
            base = {"ticket_id": key, "milestone_id": None, "at": created, "from_value": None}
            start_status = "todo" if status == "done" else status
            events.append(dict(base, field="status", to_value=start_status))
            for field_, initial in (("assignee", first.get("Assignee")), ("priority", first.get("Priority")),
                                    ("story_points", repr(points) if points is not None else None)):
                if initial is not None:
                    events.append(dict(base, field=field_, to_value=initial))
            events += [dict(base, field="milestone", to_value=m) for m in member_of]
            if status == "done" and resolved is not None:
                events.append(dict(base, at=max(resolved, created), field="status",
                                   from_value=start_status, to_value="done"))
            for a, b, kind in ticket_links:
                report.saw("links")
                if (a, b, kind) in links:
                    report.ignore("links")
                    continue
                links[(a, b, kind)] = {"from_ticket": a, "to_ticket": b, "kind": kind}
                report.accept("links")
    report.mappings = {"status": status_of.used, "link": link_kind.used}
    report.warnings += link_kind.warnings()
    return finish(report, {"milestones": pd.DataFrame(list(milestones.values())),
                           "tickets": pd.DataFrame(tickets), "events": pd.DataFrame(events),
                           "links": pd.DataFrame(list(links.values()))}, Path(out), force)
