"""Canonical tables rendered as a GitHub repository's REST export: milestones, issues, issue events.

Every milestone becomes a GitHub milestone (GitHub has no sprints: teams use milestones for both);
an issue is open or closed; ``milestoned``, ``demilestoned``, ``closed``, ``reopened``,
``assigned`` and ``unassigned`` events carry its history.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from slipcast.ingest.exports.history import ticket_histories
from slipcast.ingest.exports.jira_json import ACCENTED
from slipcast.ingest.tables import Tables

REPO = "slipcast-sim/tracker"


def _time(ts) -> str | None:
    return None if ts is None or pd.isna(ts) else ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_github(tables: Tables, folder: Path, quirks: frozenset[str]) -> None:
    """Write ``tables`` into ``folder`` as ``milestones.json``, ``issues.json`` and ``events.json``."""
    frame, tickets, _, _ = tables.frames()
    tickets = tickets.set_index("ticket_id", drop=False)
    ms = frame.sort_values("milestone_id").reset_index(drop=True)
    used = "no_fix_versions" not in quirks
    numbers = {m: i + 1 for i, m in enumerate(ms["milestone_id"])} if used else {}

    def ref(mid):
        m = ms.loc[numbers[mid] - 1]
        return {"number": numbers[mid], "title": m["name"], "state": "closed" if pd.notna(m.completed_at) else "open",
                "due_on": _time(m.due_at.normalize() + pd.Timedelta(hours=8)) if pd.notna(m.due_at) else None,
                "created_at": _time(m.start_at), "closed_at": _time(m.completed_at)}

    milestones = [ref(m) for m in numbers]
    issues: list[dict] = []
    events: list[dict] = []
    accented = "non_utf8" in quirks
    for n, (key, h) in enumerate(ticket_histories(tables).items(), start=1):
        t = tickets.loc[key]
        values, members = h.final()
        current = next((m for m in sorted(members) if m in numbers), None)
        issues.append({
            "number": n, "title": f"{key} {ACCENTED}" if accented else key,
            "state": "closed" if t.status == "done" else "open",
            "created_at": _time(h.created), "closed_at": _time(t.resolved_at) if t.status == "done" else None,
            "updated_at": _time(max([h.created] + [c.at for c in h.changes])),
            "repository_url": f"https://api.github.com/repos/{REPO}",
            "labels": [{"name": "bug"}] if t.type == "Bug" else [],
            "assignee": {"login": values["assignee"]} if values["assignee"] else None,
            "milestone": ref(current) if current else None,
        })
        for c in h.changes:
            base = {"created_at": _time(c.at), "issue": {"number": n}}
            if c.field == "milestone":
                for mid, kind in ((c.old, "demilestoned"), (c.new, "milestoned")):
                    if mid in numbers:
                        events.append(dict(base, event=kind, milestone={"title": ms.loc[numbers[mid] - 1, "name"]}))
            elif c.field == "status" and (c.old == "done") != (c.new == "done"):
                events.append(dict(base, event="closed" if c.new == "done" else "reopened"))
            elif c.field == "assignee":
                if c.old:
                    events.append(dict(base, event="unassigned", assignee={"login": c.old}))
                if c.new:
                    events.append(dict(base, event="assigned", assignee={"login": c.new}))
    for i, e in enumerate(events, start=1):
        e["id"] = i
    if "reverse_changelog" in quirks:
        events.reverse()
    if "duplicated_issues" in quirks:  # a page boundary that slid: the same issues listed twice
        issues += issues[:3]
    folder.mkdir(parents=True, exist_ok=True)
    encoding = "cp1252" if accented else "utf-8"
    for name, payload in (("milestones", milestones), ("issues", issues), ("events", events)):
        (folder / f"{name}.json").write_text(json.dumps(payload, ensure_ascii=False), encoding=encoding)
