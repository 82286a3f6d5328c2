"""Incremental sync from a Linear workspace (its GraphQL API) into the canonical store.

Each sync asks for the issues updated since the last one (``filter: {updatedAt: {gt: ...}}``,
less an overlap for clocks that differ), optionally of one team, paged by cursor (``first``,
``after``, ``pageInfo.endCursor``), each with its first page of ``history``; an issue whose
history has more is completed page by page (``issue(id:) { history(after:) }``). Then the
workspace's cycles and projects (their dates may change without their issues). What it fetched
is kept as JSON beside the store (``<store>.sync``: one file per issue, each replaced whole) and
the store is rebuilt from that folder by the Linear importer, so a sync gives exactly the tables
an import of the same records would. The watermark moves only after a complete fetch and
import; a key sweep (every full sync, daily, or on ``--sweep``) removes the issues Linear no
longer lists. A GraphQL error is an error naming its code and message; rate limits (HTTP 400
``RATELIMITED`` or 429, and the budget headers on every answer) are honoured by ``http.Client``
(docs/architecture.md, "Connectors").
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.connectors.http import Client, ConnectorError, parsed
from slipcast.ingest.connectors.jira import ISSUE_KEY, SWEEP_EVERY
from slipcast.ingest.connectors.store import file_stem, reject, rejection_lines, shown, sync_folder, write_whole
from slipcast.ingest.importers.linear import import_linear
from slipcast.ingest.importers.report import ImportReport

API = "https://api.linear.app"
PATH = "/graphql"
OVERLAP = timedelta(minutes=1)  # clocks differ
PAGE = 50  # issues a page (each with up to HISTORY_PAGE history entries: Linear bounds a query's complexity)
HISTORY_PAGE = 50
LIST_PAGE = 100  # keys, cycles and projects a page

CYCLE = "id number name startsAt endsAt completedAt team { key }"
PROJECT = "id name startDate targetDate completedAt teams(first: 5) { nodes { key } }"
HISTORY = ("id createdAt fromState { name type } toState { name type } "
           f"fromCycle {{ {CYCLE} }} toCycle {{ {CYCLE} }} fromProject {{ {PROJECT} }} toProject {{ {PROJECT} }} "
           "fromEstimate toEstimate fromAssignee { id name } toAssignee { id name } fromPriority toPriority "
           "fromDueDate toDueDate toParent { identifier }")
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
ISSUE = ("id identifier title createdAt updatedAt completedAt canceledAt dueDate estimate priority "
         "team { id key name } state { id name type } assignee { id name } "
         f"cycle {{ {CYCLE} }} project {{ {PROJECT} }} "
         "projectMilestone { id name targetDate project { id name } } parent { identifier } "
         "labels(first: 10) { nodes { name } } "
         "relations(first: 50) { nodes { type createdAt relatedIssue { identifier } } } "
         f"history(first: {HISTORY_PAGE}) {{ {PAGE_INFO} nodes {{ {HISTORY} }} }}")
QUERIES = {  # operation -> (query, the connection's path in data)
    "Issues": ("query Issues($first: Int!, $after: String, $filter: IssueFilter) { issues(first: $first, "
               f"after: $after, filter: $filter, orderBy: createdAt) {{ {PAGE_INFO} nodes {{ {ISSUE} }} }} }}",
               ("issues",)),
    "IssueKeys": ("query IssueKeys($first: Int!, $after: String, $filter: IssueFilter) { issues(first: $first, "
                  f"after: $after, filter: $filter) {{ {PAGE_INFO} nodes {{ identifier }} }} }}", ("issues",)),
    "IssueHistory": ("query IssueHistory($id: String!, $first: Int!, $after: String) { issue(id: $id) { "
                     f"history(first: $first, after: $after) {{ {PAGE_INFO} nodes {{ {HISTORY} }} }} }} }}",
                     ("issue", "history")),
    "Cycles": ("query Cycles($first: Int!, $after: String, $filter: CycleFilter) { cycles(first: $first, "
               f"after: $after, filter: $filter) {{ {PAGE_INFO} nodes {{ {CYCLE} }} }} }}", ("cycles",)),
    "Projects": ("query Projects($first: Int!, $after: String) { projects(first: $first, after: $after) { "
                 f"{PAGE_INFO} nodes {{ {PROJECT} }} }} }}", ("projects",)),
}


@dataclass
class LinearSync:
    """What a Linear sync moved and what the import made of it."""

    url: str
    team: str | None
    since: str | None
    issues: int = 0
    history_pages: int = 0
    requests: int = 0
    bytes: int = 0
    waited: float = 0.0
    imported: ImportReport | None = None
    notes: list[str] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)  # records not kept: {"record", "reason"}

    def format(self) -> str:
        lines = [f"synced Linear {self.url}" + (f" (team {self.team})" if self.team else "") + " "
                 + (f"since {self.since}" if self.since else "in full")
                 + f": {self.issues} issues, {self.history_pages} extra history pages, {self.requests} requests, "
                 f"{self.bytes / 1e6:.1f} MB" + (f", {self.waited:.1f} s held for rate limits" if self.waited else "")]
        lines += [f"  note: {n}" for n in self.notes]
        lines += rejection_lines(self.rejections)
        if self.imported is not None:
            lines.append(self.imported.format())
        return "\n".join(lines)


def credentials() -> dict[str, str]:
    """The Authorization header from ``LINEAR_API_KEY``: a personal API key is sent as it is, an
    OAuth access token (``lin_oauth_...``) after ``Bearer``."""
    key = os.environ.get("LINEAR_API_KEY", "").strip()
    if not key:
        raise ConnectorError("set LINEAR_API_KEY (a Linear personal API key, or an OAuth token) in the environment")
    return {"Authorization": f"Bearer {key}" if key.startswith("lin_oauth_") else key}


def _data(client: Client, operation: str, variables: dict) -> dict:
    """The ``data`` of one GraphQL answer; an answer with ``errors`` is an error naming them."""
    query, _ = QUERIES[operation]
    response = client.post(PATH, {"query": query, "variables": variables, "operationName": operation})
    payload = parsed(response)
    if not isinstance(payload, dict):
        raise ConnectorError(f"{operation}: the answer is not an object ({type(payload).__name__})")
    errors = payload.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code = first.get("extensions", {}).get("code") if isinstance(first.get("extensions"), dict) else None
        said = client.said(response)
        raise ConnectorError(f"{operation}: GraphQL error" + (f" {shown(code)}" if code else "")
                             + (f": {said}" if said else "") + (f" ({len(errors)} errors)" if len(errors) > 1 else ""))
    data = payload.get("data")
    if not isinstance(data, dict):
        raise ConnectorError(f"{operation}: the answer holds no data object")
    return data


def _connection(value: object, what: str) -> tuple[list, bool, object]:
    """A connection's nodes, whether it has a next page, and its end cursor; a value of another
    shape is an error naming ``what``."""
    if not isinstance(value, dict) or not isinstance(value.get("nodes"), list):
        raise ConnectorError(f"{what}: the answer holds no nodes list")
    info = value.get("pageInfo")
    info = info if isinstance(info, dict) else {}
    return value["nodes"], bool(info.get("hasNextPage")), info.get("endCursor")


def _advance(cursor: object, seen: set[str], what: str) -> str:
    """The cursor of the next page: a string never seen before in this listing, else an error."""
    if not isinstance(cursor, str) or not cursor or cursor in seen:
        raise ConnectorError(f"{what}: the next page's cursor {shown(cursor)} is missing or was seen before: the "
                             "listing does not advance")
    seen.add(cursor)
    return cursor


def _nodes(client: Client, operation: str, variables: dict, size: int) -> Iterator[object]:
    """Every node of a connection, page by page (``first``, ``after`` the last ``endCursor``); a
    page of the wrong shape, or a cursor seen before, ends the sync with an error naming it."""
    _, path = QUERIES[operation]
    after: str | None = None
    seen: set[str] = set()
    while True:
        value: object = _data(client, operation, {**variables, "first": size, "after": after})
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        nodes, more, cursor = _connection(value, f"{operation} ({'.'.join(path)})")
        yield from nodes
        if not more:
            return
        after = _advance(cursor, seen, operation)


def _full_history(client: Client, issue: dict, key: str, report: LinearSync) -> dict:
    """The issue with every history entry: its first page, completed page by page when it has more."""
    what = f"history of {key}"
    try:
        nodes, more, cursor = _connection(issue.get("history"), what)
    except ConnectorError:
        return issue  # no history asked or given: the import says what is missing
    if not more:
        return issue
    nodes, seen = list(nodes), set[str]()
    while more:
        after = _advance(cursor, seen, what)
        data = _data(client, "IssueHistory", {"id": issue.get("id") or key, "first": HISTORY_PAGE, "after": after})
        report.history_pages += 1
        found = data.get("issue")
        page, more, cursor = _connection(found.get("history") if isinstance(found, dict) else None, what)
        nodes += page
    return {**issue, "history": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": nodes}}


def _checked(issue: object, report: LinearSync) -> tuple[dict, str] | None:
    """An issue and its identifier; None, the record counted as rejected, when it is not an
    object or its identifier is not Linear's (``TEAM-123``)."""
    if not isinstance(issue, dict):
        reject(report.rejections, f"issue record {shown(issue)}", "not an object")
        return None
    key = issue.get("identifier")
    if not isinstance(key, str) or not ISSUE_KEY.fullmatch(key):
        reject(report.rejections, f"issue {shown(key)}", "not a Linear issue identifier (TEAM-123)")
        return None
    return issue, key


def _filter(team: str | None, since: datetime | None) -> dict:
    chosen: dict = {"team": {"key": {"eq": team}}} if team else {}
    if since is not None:
        chosen["updatedAt"] = {"gt": (since - OVERLAP).isoformat().replace("+00:00", "Z")}
    return chosen


def sync_linear(store: Path, settings: Settings, team: str | None = None, api_url: str = API, full: bool = False,
                sweep: bool = False) -> LinearSync:
    """Fetch what changed in the Linear workspace (one team's issues, with ``team``) since the last
    sync into the store. An incremental sync also lists every identifier (identifiers only) when
    ``sweep`` is asked or the last sweep is older than a day: issues deleted in Linear, or moved
    out of the team, leave the store."""
    headers = {**credentials(), "Content-Type": "application/json"}
    raw = sync_folder(Path(store))
    state_file = raw / "sync-state"  # not .json: the import reads every .json file here
    state = json.loads(state_file.read_text()) if state_file.exists() and not full else {}
    same = state.get("team") == team and state.get("url") == api_url
    since = datetime.fromisoformat(state["watermark"]) if same and "watermark" in state else None
    report = LinearSync(api_url, team, since.isoformat() if since else None)
    started = datetime.now(UTC)
    client = Client(api_url.rstrip("/").removesuffix(PATH), headers, "LINEAR_API_KEY", settings.sync)
    swept_at = datetime.fromisoformat(state["swept_at"]) if same and "swept_at" in state else None
    try:
        fetched: set[str] = set()
        issues = _nodes(client, "Issues", {"filter": _filter(team, since)}, PAGE)
        for issue in progress(issues, "fetching issues", unit="issue"):
            checked = _checked(issue, report)
            if checked is None:
                continue
            record, key = checked
            write_whole(raw, f"issues/{file_stem(key)}.json", _full_history(client, record, key, report))
            fetched.add(key)
            report.issues += 1
        keys = None
        if since is None:
            keys = fetched  # a full fetch sees every issue
        elif sweep or swept_at is None or started - swept_at > SWEEP_EVERY:
            listed = _nodes(client, "IssueKeys", {"filter": _filter(team, None)}, LIST_PAGE)
            keys = {checked[1] for i in listed if (checked := _checked(i, report))}
        if keys is not None:
            stems = {file_stem(k) for k in keys}
            gone = [p for p in (raw / "issues").glob("*.json") if p.stem not in stems]
            for path in gone:
                path.unlink()
            if gone or since is not None:
                report.notes.append(f"key sweep: {len(keys)} issues listed in Linear; {len(gone)} gone from Linear "
                                    "or the team, removed from the store")
            swept_at = started
        cycles = _nodes(client, "Cycles", {"filter": {"team": {"key": {"eq": team}}} if team else {}}, LIST_PAGE)
        write_whole(raw, "cycles.json", {"cycles": list(cycles)})
        write_whole(raw, "projects.json", {"projects": list(_nodes(client, "Projects", {}, LIST_PAGE))})
    finally:
        report.requests, report.bytes, report.waited = client.requests, client.bytes, client.waited
        client.close()
    if not (raw / "issues").is_dir() or not any((raw / "issues").glob("*.json")):
        raise ConnectorError(f"{api_url}: no issues to import" + (f" in team {team}" if team else ""))
    report.imported = import_linear(raw, Path(store), settings, force=False)
    write_whole(raw, state_file.name, {"watermark": started.isoformat(), "team": team, "url": api_url,
                                       "swept_at": (swept_at or started).isoformat()})
    return report
