"""Which sync a tracker runs: the one table from a tracker's name to its connector, read by
``slipcast sync <tracker>`` and by the service that keeps its store current (``serving.sync``;
docs/architecture.md, "A service that keeps itself current"). A tracker is one entry here (and
one name in ``core.vocabulary.Tracker``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slipcast.core.settings import Settings, TrackerSettings
from slipcast.core.vocabulary import Tracker
from slipcast.ingest.connectors.azure_devops import AzureDevOpsSync, sync_azure_devops
from slipcast.ingest.connectors.github import API, GitHubSync, sync_github
from slipcast.ingest.connectors.jira import SyncReport, sync_jira
from slipcast.ingest.connectors.linear import API as LINEAR_API
from slipcast.ingest.connectors.linear import LinearSync, sync_linear

Report = SyncReport | GitHubSync | AzureDevOpsSync | LinearSync


@dataclass(frozen=True)
class Connector:
    """A tracker's sync: the settings fields it needs, the call that runs it (the tracker's
    settings, the store, Slipcast's settings, ``full``, ``sweep``), and the field of its report
    that counts the records it fetched."""

    needs: tuple[str, ...]
    sync: Callable[[TrackerSettings, Path, Settings, bool, bool], Report]
    records: str = "issues"


TRACKERS: dict[Tracker, Connector] = {
    Tracker.JIRA: Connector(("url",), lambda t, store, settings, full, sweep: sync_jira(
        t.url or "", store, settings, jql=t.jql, flavour=t.flavour, full=full, sweep=sweep)),
    Tracker.GITHUB: Connector(("repo",), lambda t, store, settings, full, sweep: sync_github(
        t.repo or "", store, settings, api_url=t.url or API, pulls=t.pulls, full=full)),
    Tracker.AZURE_DEVOPS: Connector(("org", "project"), lambda t, store, settings, full, sweep: sync_azure_devops(
        t.org or "", t.project or "", store, settings, team=t.team, full=full, sweep=sweep), records="items"),
    Tracker.LINEAR: Connector((), lambda t, store, settings, full, sweep: sync_linear(
        store, settings, team=t.team, api_url=t.url or LINEAR_API, full=full, sweep=sweep)),
}


def problem(tracker: TrackerSettings) -> str | None:
    """Why ``tracker`` cannot be synced as configured (a field it needs is missing), or None."""
    missing = [name for name in TRACKERS[tracker.tracker].needs if not getattr(tracker, name)]
    return f"the {tracker.tracker} sync needs {' and '.join(missing)}" if missing else None


def sync_tracker(tracker: TrackerSettings, store: Path, settings: Settings, full: bool = False,
                 sweep: bool = False) -> Report:
    """Fetch what changed in ``tracker`` since the last sync into the store (``full``: everything
    again; ``sweep``: list every key now, where the tracker's sync does); raises ``ValueError``
    where a field it needs is missing, ``ConnectorError`` where the tracker fails."""
    why = problem(tracker)
    if why:
        raise ValueError(why)
    return TRACKERS[tracker.tracker].sync(tracker, Path(store), settings, full, sweep)


def summary(tracker: TrackerSettings, report: Report) -> dict:
    """What a sync of ``tracker`` did, in numbers (what the service records of each run): records
    fetched, requests, bytes, records rejected, notes, and the rows of each table the store now
    holds."""
    imported = report.imported
    return {"records": getattr(report, TRACKERS[tracker.tracker].records), "requests": report.requests,
            "bytes": report.bytes,
            "rejected": len(report.rejections) + (len(imported.rejections) if imported else 0),
            "notes": list(report.notes), "tables": dict(imported.tables) if imported else {}}
