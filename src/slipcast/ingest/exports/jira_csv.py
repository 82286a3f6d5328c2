"""Canonical tables rendered as the CSV of Jira's issue navigator ("Export > CSV (all fields)").

One row per issue, repeated headers for lists (Fix Version/s, Sprint, issue links), dates in the
UI's ``19/Aug/11 3:34 AM`` form, no changelog: what a CSV export holds and nothing more.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from slipcast.ingest.exports.history import ticket_histories
from slipcast.ingest.exports.jira_json import ACCENTED, STATUSES
from slipcast.ingest.tables import Tables

LINK_NAMES = {"depends_on": "Dependency", "blocks": "Blocks", "relates": "Relates", "duplicates": "Duplicate",
              "parent": "Issue split"}


def _ui_time(ts) -> str:
    return "" if ts is None or pd.isna(ts) else ts.strftime("%d/%b/%y %I:%M %p")


def render_jira_csv(tables: Tables, folder: Path, quirks: frozenset[str]) -> None:
    """Write ``tables`` into ``folder`` as ``issues.csv``, a Jira CSV export with ``quirks``."""
    frame, tickets, _, link_frame = tables.frames()
    tickets = tickets.set_index("ticket_id", drop=False)
    milestones = frame.set_index("milestone_id")
    links: dict[str, list[tuple[str, str]]] = {}
    for link in link_frame.itertuples(index=False):
        name = "Prerequisite" if "custom_link_types" in quirks else LINK_NAMES[link.kind]
        links.setdefault(link.from_ticket, []).append((name, link.to_ticket))
    rows = []
    for h in ticket_histories(tables).values():
        t = tickets.loc[h.key]
        values, members = h.final()
        kinds = {m: milestones.loc[m, "kind"] for m in members if m in milestones.index}
        rows.append({
            "Summary": f"{h.key} {ACCENTED}" if "non_utf8" in quirks else f"Work item {h.key}",
            "Issue key": h.key, "Issue Type": t.type or "", "Status": STATUSES[t.status][0],
            "Project key": t.project,
            "Priority": "" if "no_priorities" in quirks else (values["priority"] or ""),
            "Assignee": values["assignee"] or "", "Created": _ui_time(h.created),
            "Resolved": "" if "no_resolution_dates" in quirks else _ui_time(t.resolved_at),
            "Fix Version/s": [] if "no_fix_versions" in quirks else
            [milestones.loc[m, "name"] for m, k in kinds.items() if k == "release"],
            "Sprint": [] if "no_sprints" in quirks else [milestones.loc[m, "name"] for m, k in kinds.items()
                                                         if k != "release"],
            "Custom field (Story Points)": "" if "no_story_points" in quirks or values["story_points"] is None
            else values["story_points"],
            "links": links.get(h.key, []),
        })
    repeated = {"Fix Version/s": max([len(r["Fix Version/s"]) for r in rows] + [1]),
                "Sprint": max([len(r["Sprint"]) for r in rows] + [1])}
    link_names = sorted({name for r in rows for name, _ in r["links"]})
    link_width = {n: max([sum(1 for m, _ in r["links"] if m == n) for r in rows] + [1]) for n in link_names}
    header: list[str] = []
    for name in rows[0] if rows else []:
        if name == "links":
            for n in link_names:
                header += [f"Outward issue link ({n})"] * link_width[n]
        else:
            header += [name] * repeated.get(name, 1)
    folder.mkdir(parents=True, exist_ok=True)
    encoding = "cp1252" if "non_utf8" in quirks else "utf-8"
    with (folder / "issues.csv").open("w", newline="", encoding=encoding) as f:
        out = csv.writer(f)
        out.writerow(header)
        for r in rows:
            line: list[str] = []
            for name, value in r.items():
                if name == "links":
                    for n in link_names:
                        keys = [k for m, k in value if m == n]
                        line += keys + [""] * (link_width[n] - len(keys))
                elif name in repeated:
                    line += list(value) + [""] * (repeated[name] - len(value))
                else:
                    line.append(str(value))
            out.writerow(line)
