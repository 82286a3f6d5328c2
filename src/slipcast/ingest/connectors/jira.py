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

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.connectors.http import Client, ConnectorError, basic, parsed, segment
from slipcast.ingest.connectors.store import (
    file_stem,
    inside,
    reject,
    rejection_lines,
    shown,
    sync_folder,
    write_whole,
)
from slipcast.ingest.importers.jira_json import import_jira_json
from slipcast.ingest.importers.report import ImportReport

FIELDS = ["key", "project", "issuetype", "priority", "status", "created", "updated", "resolutiondate", "duedate",
          "assignee", "fixVersions", "issuelinks", "parent", "subtasks"]
OVERLAP = timedelta(minutes=5)  # JQL compares times to the minute, and clocks differ
SWEEP_EVERY = timedelta(hours=24)  # how often an incremental sync also lists every key (deletions)
PAGE = 100
FLAVOURS = ("cloud", "datacenter")
# Jira's keys, a little more leniently than Jira (lower case allowed): a project key is a letter
# then letters, digits or underscores; an issue key is its project key, '-' and a number
# (docs/architecture.md, "What a tracker can make Slipcast do").
PROJECT_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}-[0-9]{1,18}")
BOARD_ID = re.compile(r"[0-9]{1,18}")


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
    rejections: list[dict] = field(default_factory=list)  # records not kept: {"record", "reason"}

    def format(self) -> str:
        lines = [f"synced {self.url} ({self.flavour}) "
                 + (f"since {self.since}" if self.since else "in full")
                 + f": {self.issues} issues, {self.changelog_pages} changelog pages, "
                 f"{self.requests} requests, {self.bytes / 1e6:.1f} MB"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += rejection_lines(self.rejections)
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
    return basic(email, token), "JIRA_EMAIL/JIRA_API_TOKEN"


def _jql(base: str | None, since: datetime | None) -> str:
    clauses = [f"({base})"] if base else []
    if since is not None:
        clauses.append(f'updated >= "{(since - OVERLAP):%Y-%m-%d %H:%M}"')
    return " AND ".join(clauses) + " ORDER BY key ASC"


def _page(page: object, name: str, what: str) -> tuple[dict, list]:
    """One page of a listing and its records, ``page[name]``: a list in an object, else an error."""
    if not isinstance(page, dict):
        raise ConnectorError(f"{what}: a {what} page is not an object ({type(page).__name__})")
    values = page.get(name, [])
    if not isinstance(values, list):
        raise ConnectorError(f"{what}: the page's {name} is not a list ({type(values).__name__})")
    return page, values


def _check_start(page: dict, start: int, what: str) -> None:
    """A page answers the ``startAt`` it was asked for: one that does not is a listing that does not advance."""
    if "startAt" in page and page["startAt"] != start:
        raise ConnectorError(f"{what}: asked for startAt {start}, answered startAt {shown(page['startAt'])}: the "
                             "listing does not advance")


def _check_total(received: int, total: object, slack: int, what: str) -> None:
    """A listing brings no more records than the total its first page gave, and one page more
    (records added while it is read)."""
    if isinstance(total, int) and received > total + slack:
        raise ConnectorError(f"{what}: {received} records, more than its total of {total} allows: the listing "
                             "does not end")


def _search(client: Client, flavour: str, jql: str, fields: list[str] | None = None,
            changelog: bool = True) -> Iterator[object]:
    """Every issue the JQL selects, page by page (Cloud: ``nextPageToken``, never one seen
    before; Data Center: ``startAt``, ordered by key so that records cannot slide between pages,
    each page at the ``startAt`` asked and all of them within the first page's ``total``)."""
    if flavour == "cloud":
        token: object = None
        seen: set[str] = set()
        while True:
            body = {"jql": jql, "fields": fields or FIELDS + ["*navigable"], "maxResults": PAGE}
            if changelog:
                body["expand"] = "changelog"
            if token:
                body["nextPageToken"] = token
            page, issues = _page(parsed(client.post("/rest/api/3/search/jql", body)), "issues", "search")
            yield from issues
            token = page.get("nextPageToken")
            if not token or page.get("isLast"):
                return
            if not isinstance(token, str) or token in seen:
                raise ConnectorError(f"search: repeated nextPageToken {shown(token)}: the listing does not advance")
            seen.add(token)
    start, total = 0, None
    while True:
        params = {"jql": jql, "startAt": start, "maxResults": PAGE, "fields": ",".join(fields or ["*navigable"])}
        if changelog:
            params["expand"] = "changelog"
        page, issues = _page(parsed(client.get("/rest/api/2/search", params)), "issues", "search")
        _check_start(page, start, "search")
        total = page.get("total", 0) if total is None else total
        start += len(issues)
        _check_total(start, total, PAGE, "search")
        yield from issues
        now = page.get("total", 0)  # issues created meanwhile are read too, within one page more
        if not issues or not isinstance(now, int) or start >= now:
            return


def _paged(client: Client, path: str, what: str) -> Iterator[object]:
    """Every value of an agile API listing (``startAt``, ``isLast``, ``values``); a page at
    another ``startAt`` than asked, or bringing nothing not listed before, ends the sync."""
    start = 0
    seen: set[str] = set()
    while True:
        page, values = _page(parsed(client.get(path, {"startAt": start, "maxResults": 50})), "values", what)
        _check_start(page, start, what)
        listed = {json.dumps(v, sort_keys=True) for v in values}
        if values and listed <= seen:
            raise ConnectorError(f"{what}: a page at startAt {start} brought nothing new: the listing does not end")
        seen |= listed
        yield from values
        start += len(values)
        if page.get("isLast", True) or not values:
            return


def _full_changelog(client: Client, issue: dict, key: str, report: SyncReport) -> dict:
    """The issue with every history: the embedded changelog, completed from the changelog API
    (pages at the ``startAt`` asked, no more histories than the total)."""
    changelog = issue.get("changelog")
    histories = changelog.get("histories") if isinstance(changelog, dict) else None
    total = changelog.get("total") if isinstance(changelog, dict) else None
    if not isinstance(histories, list) or not isinstance(total, int) or total <= len(histories):
        return issue
    values: list = []
    what = f"changelog of {key}"
    while True:
        page, more = _page(parsed(client.get(f"/rest/api/3/issue/{segment(key)}/changelog",
                                             {"startAt": len(values), "maxResults": PAGE})), "values", what)
        report.changelog_pages += 1
        _check_start(page, len(values), what)
        values += more
        _check_total(len(values), total, PAGE, what)
        if page.get("isLast", True) or not more:
            break
    return {**issue, "changelog": {"startAt": 0, "maxResults": len(values), "total": len(values), "histories": values}}


def _checked(issue: object, report: SyncReport) -> tuple[dict, str, str | None] | None:
    """An issue, its key and its project key; None, the record counted as rejected, when it is not an
    object, has no key, or its key or project key is not Jira's (``ISSUE_KEY``, ``PROJECT_KEY``)."""
    if not isinstance(issue, dict):
        reject(report.rejections, f"search record {shown(issue)}", "not an object")
        return None
    key = issue.get("key")
    if key is None:
        reject(report.rejections, f"issue id {shown(issue.get('id'))}", "no key")
        return None
    if not isinstance(key, str) or not ISSUE_KEY.fullmatch(key):
        reject(report.rejections, shown(key), "not a Jira issue key (PROJECT-123)")
        return None
    fields = issue.get("fields")
    project = fields.get("project") if isinstance(fields, dict) else None
    project_key = project.get("key") if isinstance(project, dict) else None
    if project_key is not None and (not isinstance(project_key, str) or not PROJECT_KEY.fullmatch(project_key)):
        reject(report.rejections, shown(key), f"project key {shown(project_key)} is not a Jira project key")
        return None
    return issue, key, project_key


def _board_id(board: object, report: SyncReport) -> int | None:
    """A board's id, an integer; None, the board counted as rejected, for anything else."""
    value = board.get("id") if isinstance(board, dict) else board
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and BOARD_ID.fullmatch(value):
        return int(value)
    reject(report.rejections, f"board {shown(value)}", "not a board id (an integer)")
    return None


def _drop_stale(raw: Path, projects: list, report: SyncReport) -> set[str]:
    """Clean a sync folder an earlier version may have written: a record kept under another name
    than ``file_stem`` of its key is moved to that name, or removed (counted) when its key is not
    a key, and so are versions and sprints files no key or board id names; the state's projects
    that are keys are returned, the others counted."""
    for path in sorted(raw.glob("issues/*.json")):
        if ISSUE_KEY.fullmatch(path.stem):
            continue  # a key is its own file stem
        try:
            key = json.loads(path.read_bytes()).get("key")
        except (ValueError, AttributeError):
            key = None
        if isinstance(key, str) and ISSUE_KEY.fullmatch(key) and file_stem(key) == path.stem:
            continue
        if isinstance(key, str) and ISSUE_KEY.fullmatch(key):
            os.replace(path, inside(raw, f"issues/{file_stem(key)}.json"))
            continue
        path.unlink()
        reject(report.rejections, f"file issues/{shown(path.name)}", "left by an earlier sync: its key is not a "
                                                                     "Jira issue key; removed")
    for path in sorted(raw.glob("versions-*.json")) + sorted(raw.glob("sprints-board-*.json")):
        name, rule = ((path.stem.removeprefix("versions-"), PROJECT_KEY) if path.name.startswith("versions-")
                      else (path.stem.removeprefix("sprints-board-"), BOARD_ID))
        if not rule.fullmatch(name):
            path.unlink()
            reject(report.rejections, f"file {shown(path.name)}", "left by an earlier sync: not named by a key; "
                                                                  "removed")
    kept = set()
    for project in projects:
        if isinstance(project, str) and PROJECT_KEY.fullmatch(project):
            kept.add(project)
        else:
            reject(report.rejections, f"project {shown(project)}", "in the sync state, not a Jira project key; "
                                                                   "dropped")
    return kept


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
    client = Client(url, {**headers, "Accept": "application/json"}, credential, settings.sync)
    try:
        known = _drop_stale(raw, state.get("projects", []), report)
        fetched: set[str] = set()
        for issue in progress(_search(client, flavour, _jql(jql, since)), "fetching issues", unit="issue"):
            checked = _checked(issue, report)
            if checked is None:
                continue
            record, key, project = checked
            if flavour == "cloud":
                record = _full_changelog(client, record, key, report)
            write_whole(raw, f"issues/{file_stem(key)}.json", record)
            if project:
                known.add(project)
            fetched.add(key)
            report.issues += 1
        swept_at = datetime.fromisoformat(state["swept_at"]) if "swept_at" in state else None
        keys = None
        if since is None:
            keys = fetched  # a full fetch sees every key
        elif sweep or swept_at is None or started - swept_at > SWEEP_EVERY:
            listed = _search(client, flavour, _jql(jql, None), fields=["key", "updated"], changelog=False)
            keys = {checked[1] for i in listed if (checked := _checked(i, report))}
        if keys is not None:
            stems = {file_stem(k) for k in keys}
            gone = [p for p in (raw / "issues").glob("*.json") if p.stem not in stems]
            for path in gone:
                path.unlink()
            if gone or since is not None:
                report.notes.append(f"key sweep: {len(keys)} issues selected on the site; {len(gone)} gone from "
                                    "the site or the query, removed from the store")
            swept_at = started
        for project in sorted(known):
            versions = parsed(client.get(f"/rest/api/{api}/project/{segment(project)}/versions"))
            write_whole(raw, f"versions-{file_stem(project)}.json", versions)
        write_whole(raw, "statuses.json", parsed(client.get(f"/rest/api/{api}/status")))
        for board in _paged(client, "/rest/agile/1.0/board", "board list"):
            board_id = _board_id(board, report)
            if board_id is None:
                continue
            sprints = list(_paged(client, f"/rest/agile/1.0/board/{board_id}/sprint", f"sprints of board {board_id}"))
            write_whole(raw, f"sprints-board-{board_id}.json", {"isLast": True, "values": sprints})
    finally:
        report.requests, report.bytes = client.requests, client.bytes
        client.close()
    if not (raw / "issues").is_dir():
        raise ConnectorError(f"{url}: the query selects no issues ({_jql(jql, None)})")
    report.imported = import_jira_json(raw, Path(store), settings, force=False)
    write_whole(raw, state_file.name, {"watermark": started.isoformat(), "jql": jql, "projects": sorted(known),
                                       "url": url, "swept_at": (swept_at or started).isoformat()})
    return report
