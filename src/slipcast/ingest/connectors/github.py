"""Incremental sync from a GitHub repository (or GitHub Enterprise) into the canonical store.

Each sync lists the repository's milestones (a conditional request: 304 when nothing changed),
the issues updated since the last sync (``state=all&since=``; pull requests left out unless
asked for) and, for each of those, its issue events; pages follow the ``Link`` header, within
the API's origin and never to a page seen before. An issue whose number is not an integer is
rejected (counted) and never asked about. The records are merged into the files the GitHub importer reads (``milestones.json``,
``issues.json``, ``events.json``) in a folder beside the store, each replaced whole, and the
store is rebuilt from them (docs/architecture.md, "Connectors").
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.ingest.connectors.http import Client, ConnectorError, parsed, segment
from slipcast.ingest.connectors.store import reject, rejection_lines, shown, sync_folder, write_whole
from slipcast.ingest.importers.github import import_github
from slipcast.ingest.importers.report import ImportReport

API = "https://api.github.com"
OVERLAP = timedelta(minutes=1)


@dataclass
class GitHubSync:
    """What a GitHub sync moved and what the import made of it."""

    repo: str
    since: str | None
    issues: int = 0
    milestones_unchanged: bool = False
    requests: int = 0
    bytes: int = 0
    imported: ImportReport | None = None
    notes: list[str] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)  # records not kept: {"record", "reason"}

    def format(self) -> str:
        lines = [f"synced {self.repo} " + (f"since {self.since}" if self.since else "in full")
                 + f": {self.issues} issues" + (" (milestones unchanged: 304)" if self.milestones_unchanged else "")
                 + f", {self.requests} requests, {self.bytes / 1e6:.1f} MB"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += rejection_lines(self.rejections)
        if self.imported is not None:
            lines.append(self.imported.format())
        return "\n".join(lines)


def _pages(client: Client, path: str, params: dict | None = None):
    """Every item of a listing, following the ``Link: <...>; rel="next"`` header."""
    return _following(client, client.get(path, {**(params or {}), "per_page": 100}))


def _following(client: Client, response):
    """The items of a listing's page ``response`` and of every page after it; a page that is not
    a list, or a ``next`` page seen before (a cycle), ends the sync."""
    seen = {str(response.request.url)}
    while True:
        items = parsed(response)
        if not isinstance(items, list):
            raise ConnectorError(f"{response.request.url.path}: the answer is not a list ({type(items).__name__})")
        yield from items
        following = response.links.get("next", {}).get("url")
        if not following:
            return
        if str(httpx.URL(following)) in seen:
            raise ConnectorError(f"{response.request.url.path}: the next page {shown(following)} was seen before: a "
                                 "Link cycle")
        seen.add(str(httpx.URL(following)))
        response = client.get(following)


def _number(issue: object, report: GitHubSync) -> int | None:
    """An issue's number, a positive integer; None, the record counted as rejected, for anything else."""
    if not isinstance(issue, dict):
        reject(report.rejections, f"issue record {shown(issue)}", "not an object")
        return None
    number = issue.get("number")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return number
    reject(report.rejections, f"issue {shown(number)}", "not a GitHub issue number (a positive integer)")
    return None


def _read(path: Path, default):
    return json.loads(path.read_text()) if path.exists() else default


def _by_number(records: list, number) -> dict[int, list]:
    """Records of the sync folder by their issue's number (``number(record)``), those without one left out."""
    grouped: dict[int, list] = {}
    for record in records:
        n = number(record) if isinstance(record, dict) else None
        if isinstance(n, int) and not isinstance(n, bool):
            grouped.setdefault(n, []).append(record)
    return grouped


def sync_github(repo: str, store: Path, settings: Settings, api_url: str = API, pulls: bool = False,
                full: bool = False) -> GitHubSync:
    """Fetch what changed in ``repo`` (owner/name) since the last sync into the store."""
    if repo.count("/") != 1:
        raise ValueError(f"--repo must be OWNER/NAME, not {repo!r}")
    token = os.environ.get("GITHUB_TOKEN")
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    raw = sync_folder(Path(store))
    state = {} if full else _read(raw / "sync-state", {})
    since = datetime.fromisoformat(state["watermark"]) if state.get("repo") == repo and "watermark" in state else None
    report = GitHubSync(repo, since.isoformat() if since else None)
    if not token:
        report.notes.append("no GITHUB_TOKEN: unauthenticated requests (60 an hour on github.com)")
    started = datetime.now(UTC)
    client = Client(api_url, headers, "GITHUB_TOKEN", settings.sync)
    milestones = _read(raw / "milestones.json", [])
    kept = _by_number(_read(raw / "issues.json", []), lambda i: i.get("number"))
    issues = {n: copies[-1] for n, copies in kept.items()}
    events = _by_number(_read(raw / "events.json", []), lambda e: (e.get("issue") or {}).get("number"))
    try:
        base = "/repos/" + "/".join(segment(part) for part in repo.split("/"))
        etag = state.get("milestones_etag") if milestones and since else None
        first = client.get(f"{base}/milestones", {"state": "all", "per_page": 100},
                           headers={"If-None-Match": etag} if etag else None)
        if first.status_code == 304:
            report.milestones_unchanged = True
        else:
            milestones = list(_following(client, first))
            etag = first.headers.get("ETag")
        params = {"state": "all"} | ({"since": (since - OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ")} if since else {})
        for issue in progress(_pages(client, f"{base}/issues", params), "fetching issues", unit="issue"):
            number = _number(issue, report)
            if number is None or ("pull_request" in issue and not pulls):
                continue
            issues[number] = issue
            events[number] = [dict(e, issue={"number": number}) if isinstance(e, dict) else e  # the per-issue
                              for e in _pages(client, f"{base}/issues/{number}/events")]  # listing omits its issue
            report.issues += 1
    finally:
        report.requests, report.bytes = client.requests, client.bytes
        client.close()
    write_whole(raw, "milestones.json", milestones)
    write_whole(raw, "issues.json", [issues[n] for n in sorted(issues)])
    write_whole(raw, "events.json", [e for n in sorted(events) for e in events[n]])
    if not issues:
        raise ConnectorError(f"{repo}: no issues to import")
    report.imported = import_github(raw, Path(store), settings, project=repo)
    write_whole(raw, "sync-state", {"watermark": started.isoformat(), "repo": repo, "milestones_etag": etag})
    return report
