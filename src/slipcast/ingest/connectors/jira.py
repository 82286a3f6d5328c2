"""Incremental sync from Jira Cloud or Jira Data Center into the canonical store.

Each sync asks the site for the issues updated since the last one (less an overlap: JQL
compares minutes), with their full changelogs (Cloud embeds only the newest histories: the rest
is paged from ``/issue/{key}/changelog``), the projects' versions and the site's statuses. What
it fetched is kept as JSON in a folder beside the store (``<store>.sync``: one file per issue,
each replaced atomically), and the store is rebuilt from that folder by the Jira JSON importer,
so a sync gives exactly the tables an import of the same records would. The watermark moves
only after a complete fetch: a sync killed at any point leaves the previous store and resumes
(docs/architecture.md, "Connectors").
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.connectors.http import Client, ConnectorError
from slipcast.ingest.connectors.store import sync_folder, write_whole
from slipcast.ingest.importers.jira_json import import_jira_json
from slipcast.ingest.importers.report import ImportReport

FIELDS = ["key", "project", "issuetype", "priority", "status", "created", "updated", "resolutiondate", "duedate",
          "assignee", "fixVersions", "issuelinks", "parent", "subtasks"]
OVERLAP = timedelta(minutes=5)  # JQL compares times to the minute, and clocks differ
SWEEP_EVERY = timedelta(hours=24)  # how often an incremental sync also lists every key (deletions)
PAGE = 100
FLAVOURS = ("cloud", "datacenter")


@dataclass
class SyncReport:
    """What a sync moved and what the import made of it."""

    url: str
    flavour: str
    since: str | None
    issues: int = 0
    changelog_pages: int = 0
    requests: int = 0
    bytes: int = 0
    imported: ImportReport | None = None
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"synced {self.url} ({self.flavour}) "
                 + (f"since {self.since}" if self.since else "in full")
                 + f": {self.issues} issues, {self.changelog_pages} changelog pages, "
                 f"{self.requests} requests, {self.bytes / 1e6:.1f} MB"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.imported is not None:
            lines.append(self.imported.format())
        return "\n".join(lines)


def credentials(flavour: str) -> tuple[dict[str, str], str]:
    """The Authorization header from the environment, and the variables it came from: Cloud
    uses ``JIRA_EMAIL`` and ``JIRA_API_TOKEN`` (Basic), Data Center ``JIRA_PAT`` (Bearer)."""
    if flavour == "datacenter":
        token = os.environ.get("JIRA_PAT")
        if not token:
            raise ConnectorError("set JIRA_PAT (a Data Center personal access token) in the environment")
        return {"Authorization": f"Bearer {token}"}, "JIRA_PAT"
    email, token = os.environ.get("JIRA_EMAIL"), os.environ.get("JIRA_API_TOKEN")
    if not (email and token):
        raise ConnectorError("set JIRA_EMAIL and JIRA_API_TOKEN (a Jira Cloud API token) in the environment")
    basic = base64.b64encode(f"{email}:{token}".encode()).decode()
    return {"Authorization": f"Basic {basic}"}, "JIRA_EMAIL/JIRA_API_TOKEN"


def _jql(base: str | None, since: datetime | None) -> str:
    clauses = [f"({base})"] if base else []
    if since is not None:
        clauses.append(f'updated >= "{(since - OVERLAP):%Y-%m-%d %H:%M}"')
    return " AND ".join(clauses) + " ORDER BY key ASC"


def _search(client: Client, flavour: str, jql: str, fields: list[str] | None = None, changelog: bool = True):
    """Every issue the JQL selects, page by page (Cloud: ``nextPageToken``; Data Center:
    ``startAt``, ordered by key so that records cannot slide between pages)."""
    if flavour == "cloud":
        token = None
        while True:
            body = {"jql": jql, "fields": fields or FIELDS + ["*navigable"], "maxResults": PAGE}
            if changelog:
                body["expand"] = "changelog"
            if token:
                body["nextPageToken"] = token
            page = client.post("/rest/api/3/search/jql", body).json()
            yield from page.get("issues", [])
            token = page.get("nextPageToken")
            if not token or page.get("isLast"):
                return
    start = 0
    while True:
        params = {"jql": jql, "startAt": start, "maxResults": PAGE, "fields": ",".join(fields or ["*navigable"])}
        if changelog:
            params["expand"] = "changelog"
        page = client.get("/rest/api/2/search", params).json()
        issues = page.get("issues", [])
        yield from issues
        start += len(issues)
        if not issues or start >= page.get("total", 0):
            return


def _paged(client: Client, path: str):
    """Every value of an agile API listing (``startAt``, ``isLast``, ``values``)."""
    start = 0
    while True:
        page = client.get(path, {"startAt": start, "maxResults": 50}).json()
        values = page.get("values", [])
        yield from values
        start += len(values)
        if page.get("isLast", True) or not values:
            return


def _full_changelog(client: Client, issue: dict, report: SyncReport) -> dict:
    """The issue with every history: the embedded changelog, completed from the changelog API."""
    changelog = issue.get("changelog") or {}
    histories = changelog.get("histories") or []
    total = changelog.get("total", len(histories))
    if total <= len(histories):
        return issue
    values: list[dict] = []
    start = 0
    while True:
        page = client.get(f"/rest/api/3/issue/{issue['key']}/changelog", {"startAt": start, "maxResults": PAGE}).json()
        report.changelog_pages += 1
        values += page.get("values", [])
        start += len(page.get("values", []))
        if page.get("isLast", True) or not page.get("values"):
            break
    return {**issue, "changelog": {"startAt": 0, "maxResults": len(values), "total": len(values), "histories": values}}


def sync_jira(url: str, store: Path, settings: Settings, jql: str | None = None, flavour: str = "cloud",
              full: bool = False, sweep: bool = False) -> SyncReport:
    """Fetch what changed on the Jira site at ``url`` since the last sync into the store. An
    incremental sync also lists every key the query selects (keys only) when ``sweep`` is asked
    or the last sweep is older than ``SWEEP_EVERY``: issues deleted on the site, or no longer
    selected, leave the store."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown Jira flavour {flavour!r}: one of {FLAVOURS}")
    headers, credential = credentials(flavour)
    raw = sync_folder(Path(store))
    state_file = raw / "sync-state"  # not .json: the import reads every .json file here
    state = json.loads(state_file.read_text()) if state_file.exists() and not full else {}
    since = datetime.fromisoformat(state["watermark"]) if "watermark" in state and state.get("jql") == jql else None
    report = SyncReport(url, flavour, since.isoformat() if since else None)
    started = datetime.now(UTC)
    api = "3" if flavour == "cloud" else "2"
    client = Client(url, {**headers, "Accept": "application/json"}, credential)
    try:
        projects: set[str] = set()
        fetched: set[str] = set()
        for issue in progress(_search(client, flavour, _jql(jql, since)), "fetching issues", unit="issue"):
            if flavour == "cloud":
                issue = _full_changelog(client, issue, report)
            write_whole(raw / "issues" / f"{issue['key']}.json", issue)
            project = ((issue.get("fields") or {}).get("project") or {}).get("key")
            if project:
                projects.add(project)
            fetched.add(issue["key"])
            report.issues += 1
        swept_at = datetime.fromisoformat(state["swept_at"]) if "swept_at" in state else None
        keys = None
        if since is None:
            keys = fetched  # a full fetch sees every key
        elif sweep or swept_at is None or started - swept_at > SWEEP_EVERY:
            keys = {i["key"] for i in _search(client, flavour, _jql(jql, None), fields=["key", "updated"],
                                              changelog=False)}
        if keys is not None:
            gone = [p for p in (raw / "issues").glob("*.json") if p.stem not in keys]
            for path in gone:
                path.unlink()
            if gone or since is not None:
                report.notes.append(f"key sweep: {len(keys)} issues selected on the site; {len(gone)} gone from "
                                    "the site or the query, removed from the store")
            swept_at = started
        known = set(state.get("projects", [])) | projects
        for project in sorted(known):
            write_whole(raw / f"versions-{project}.json", client.get(f"/rest/api/{api}/project/{project}/versions").json())
        write_whole(raw / "statuses.json", client.get(f"/rest/api/{api}/status").json())
        for board in _paged(client, "/rest/agile/1.0/board"):
            sprints = list(_paged(client, f"/rest/agile/1.0/board/{board['id']}/sprint"))
            write_whole(raw / f"sprints-board-{board['id']}.json", {"isLast": True, "values": sprints})
    finally:
        report.requests, report.bytes = client.requests, client.bytes
        client.close()
    if not (raw / "issues").is_dir():
        raise ConnectorError(f"{url}: the query selects no issues ({_jql(jql, None)})")
    report.imported = import_jira_json(raw, Path(store), settings, force=False)
    write_whole(state_file, {"watermark": started.isoformat(), "jql": jql, "projects": sorted(known), "url": url,
                             "swept_at": (swept_at or started).isoformat()})
    return report
