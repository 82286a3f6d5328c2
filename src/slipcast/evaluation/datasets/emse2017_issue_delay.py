"""emse2017-issue-delay: will an issue be resolved after its due date?

Choetkiertikul et al., "Predicting the delay of issues with due dates in software projects",
Empirical Software Engineering 2017. Per project, three files freeze the features at three
prediction times: ``creation``, ``due`` (when the due date was set) and ``discussion``.
``delaydays > 0``: the issue was resolved after its due date.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slipcast.ingest.importers.report import ImportReport

PROJECTS = ("apache", "duraspace", "javanet", "jboss", "jira")
TIMES = ("creation", "due", "discussion")
CATEGORICAL = ["type", "priority"]
IDS = ("issuekey", "delaydays", "openeddate", "delayed")
# the column the dataset's README warns about: it separates the classes where nothing known at
# creation should (see docs/results.md)
SUSPECT = ("RemainingDay",)


def load_issues(root: Path, project: str, time: str, report: ImportReport | None = None) -> pd.DataFrame:
    """One project's issues at one prediction time, oldest first, with ``delayed`` (0/1).
    Rows without an opening date or a delay are rejected in ``report`` with the reason."""
    report = report or ImportReport(source=str(root))
    path = Path(root) / f"{project}_{time}.csv"
    frame = pd.read_csv(path, encoding_errors="replace")
    report.saw("issues", len(frame))
    frame["openeddate"] = pd.to_datetime(frame["openeddate"], errors="coerce", utc=True)
    frame["delaydays"] = pd.to_numeric(frame["delaydays"], errors="coerce")
    bad = frame[["openeddate", "delaydays"]].isna()
    for row in frame.index[bad.any(axis=1)]:
        report.reject("issues", str(path), f"line {row + 2}", bad.columns[bad.loc[row]][0], "missing or unparseable")
    frame = frame[~bad.any(axis=1)].copy()
    report.accept("issues", len(frame))
    frame["delayed"] = (frame["delaydays"] > 0).astype(int)
    return frame.sort_values("openeddate", kind="stable").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame, suspects: bool) -> list[str]:
    """Model inputs; the suspect columns only when ``suspects``."""
    return [c for c in frame.columns if c not in IDS and (suspects or c not in SUSPECT)]
