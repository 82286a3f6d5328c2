"""tse2017-sprints: sprint delivery with features frozen at 0/30/50/80 % of each sprint.

Choetkiertikul et al., "Predicting delivery capability in iterative software development",
IEEE TSE 2017. Per project and prediction point: ``<p>_iteration_<t>.csv`` (one row per
sprint) and ``<p>_issue_<t>.csv`` (one row per issue, keyed by boardid and sprintid).
Some sprint names hold unquoted commas: a row with too many fields keeps its first two and
last sixteen and joins the rest back into ``name``. Every row is accepted or rejected with a
reason, never dropped silently.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.ingest.importers.report import ImportReport
from slipcast.ingest.importers.sources import read_text

PROJECTS = {"apache": "Apache", "jboss": "JBoss", "jira": "JIRA", "mongodb": "MongoDB"}
POINTS = (0, 30, 50, 80)
NAME = 2  # position of the free-text column in the iteration files
ISSUE_COUNTS = ["no_comment", "no_affectversion", "no_fixversion", "no_issuelink", "no_blocking",
                "no_blockedby", "no_fixversion_change", "no_priority_change", "no_des_change"]
TYPES = ("Bug", "Story", "Task", "Sub-task", "Improvement")
PRIORITIES = ("Blocker", "Critical", "Major", "Minor", "Trivial")


def read_iterations(path: Path, report: ImportReport, fallback_encoding: str = "cp1252") -> pd.DataFrame:
    """The sprints of one iteration file, numeric columns typed; bad rows rejected in ``report``."""
    text = read_text(path, report, fallback_encoding)
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    tail = len(header) - NAME - 1
    good = []
    for line, fields in enumerate(body, start=2):
        report.saw("sprints")
        if len(fields) > len(header):  # commas inside the unquoted name
            fields = fields[:NAME] + [",".join(fields[NAME:len(fields) - tail])] + fields[len(fields) - tail:]
        if len(fields) != len(header):
            report.reject("sprints", str(path), f"line {line}", "-", f"{len(fields)} fields, {len(header)} expected")
            continue
        record = dict(zip(header, fields))
        bad = [k for k in header if k != "name" and not _is_number(record[k])]
        if bad:
            report.reject("sprints", str(path), f"line {line}", bad[0], f"not a number: {record[bad[0]]!r}")
            continue
        good.append(record)
        report.accept("sprints")
    frame = pd.DataFrame(good, columns=header)
    numeric = [c for c in header if c != "name"]
    frame[numeric] = frame[numeric].apply(pd.to_numeric)
    return frame


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def issue_aggregates(path: Path) -> pd.DataFrame:
    """Per (boardid, sprintid): issue count, shares by type and priority, mean activity counts,
    share of hard-to-read descriptions."""
    issues = pd.read_csv(path, encoding_errors="replace")
    g = issues.groupby(["boardid", "sprintid"])
    out = pd.DataFrame({"issues": g.size()})
    for t in TYPES:
        out[f"share_{t.lower()}"] = g["type"].apply(lambda s, t=t: (s == t).mean())
    for p in PRIORITIES:
        out[f"share_{p.lower()}"] = g["priority"].apply(lambda s, p=p: (s == p).mean())
    out = out.join(g[ISSUE_COUNTS].mean().add_prefix("mean_"))
    out["share_hard_text"] = g["gunning_fog"].apply(lambda s: (s == "hard").mean())
    return out.reset_index()


def board_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Per sprint, from the same board's earlier sprints only (by sprint id): how many there
    were, their mean delivery gap, their under-delivery rate (``past_slip_rate``, as Slipcast defines it for
    milestones), and whether the last one
    under-delivered."""
    f = frame.sort_values(["boardid", "sprintid"])
    g = f.groupby("boardid")
    under = (f["vel_diff"] < 0).astype(float)
    earlier = g.cumcount()
    out = pd.DataFrame(index=f.index)
    out["board_sprints_before"] = earlier.astype(float)
    out["board_mean_vel_diff"] = (g["vel_diff"].cumsum() - f["vel_diff"]) / earlier.where(earlier > 0)
    out["past_slip_rate"] = (under.groupby(f["boardid"]).cumsum() - under) / earlier.where(earlier > 0)
    out["board_last_under"] = under.groupby(f["boardid"]).shift(1)
    return out.reindex(frame.index)


def load_sprints(root: Path, project: str, point: int, report: ImportReport | None = None) -> pd.DataFrame:
    """One project's sprints at one prediction point: iteration columns, aggregated issue
    features, board history; sorted by sprint id (the paper's order)."""
    report = report or ImportReport(source=str(root))
    folder = Path(root) / PROJECTS[project]
    sprints = read_iterations(folder / f"{project}_iteration_{point}.csv", report)
    issues = issue_aggregates(folder / f"{project}_issue_{point}.csv")
    frame = sprints.merge(issues, on=["boardid", "sprintid"], how="left")
    frame["issues"] = frame["issues"].fillna(0.0)
    frame = frame.join(board_history(frame))
    frame.insert(0, "project", project)
    return frame.sort_values("sprintid", kind="stable").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Every column known at the prediction point (ids, name and the outcome excluded)."""
    return [c for c in frame.columns if c not in ("project", "boardid", "sprintid", "name", "vel_diff")
            and np.issubdtype(frame[c].dtype, np.number)]
