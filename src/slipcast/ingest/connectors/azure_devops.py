"""Incremental sync from an Azure DevOps (Boards) project into the canonical store.

A full sync lists the project's work item ids with WIQL (ids only, at most 20,000 an answer: paged
by id range, ``[System.Id] > last``), fetches their fields and relations 200 at a time
(``workitemsbatch``) and their history from the reporting revisions feed, paged by its
continuation token until ``isLastBatch``. An incremental sync reads that feed from the token the
last complete sync ended at: the revisions since, and so the ids that changed, whose fields and
relations it fetches again. Beside the items: the iteration tree (``classificationnodes``), the
team's iteration settings (``--team``) and the states of each work-item type with their
category. What it fetched is kept as JSON beside the store (``<store>.sync``: one file per work
item, its revisions in it, each file replaced whole), the store rebuilt from that folder by the
Azure DevOps importer, and the token saved last: a sync killed at any point leaves the previous
store and resumes. A key sweep (``--sweep``, or daily) lists every id again: items deleted or
moved out of the project leave the store (docs/architecture.md, "Connectors").
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
from slipcast.ingest.connectors.store import reject, rejection_lines, shown, sync_folder, write_whole
from slipcast.ingest.importers.azure_devops import import_azure_devops
from slipcast.ingest.importers.report import ImportReport

API = {"api-version": "7.1"}
CREDENTIAL = "AZURE_DEVOPS_PAT"
WIQL_PAGE = 20000  # the most ids a WIQL answer holds
BATCH = 200  # the most ids workitemsbatch takes
SWEEP_EVERY = timedelta(hours=24)
ITERATION_DEPTH = 20
# the fields the revisions feed is asked for, with the estimate fields of the settings: what the importer
# reads (src/slipcast/ingest/importers/azure_devops.py)
REVISION_FIELDS = ["System.Id", "System.Rev", "System.TeamProject", "System.AreaPath", "System.IterationPath",
                   "System.IterationId", "System.WorkItemType", "System.State", "System.CreatedDate",
                   "System.ChangedDate", "System.AssignedTo", "Microsoft.VSTS.Common.Priority",
                   "Microsoft.VSTS.Scheduling.DueDate", "Microsoft.VSTS.Scheduling.TargetDate",
                   "Microsoft.VSTS.Common.ClosedDate"]
STEM = re.compile(r"[0-9]{1,12}")


@dataclass
class AzureDevOpsSync:
    """What an Azure DevOps sync moved and what the import made of it."""

    project: str
    since: str | None  # the revisions feed's token this sync read from (None: in full)
    items: int = 0
    revisions: int = 0
    requests: int = 0
    bytes: int = 0
    imported: ImportReport | None = None
    notes: list[str] = field(default_factory=list)
    rejections: list[dict] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"synced Azure DevOps project {self.project} " + ("incrementally" if self.since else "in full")
                 + f": {self.items} work items, {self.revisions} revisions, {self.requests} requests, "
                 f"{self.bytes / 1e6:.1f} MB"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += rejection_lines(self.rejections)
        if self.imported is not None:
            lines.append(self.imported.format())
        return "\n".join(lines)


def credentials() -> dict[str, str]:
    """Basic auth with an empty user name and the personal access token from the environment."""
    token = os.environ.get(CREDENTIAL)
    if not token:
        raise ConnectorError(f"set {CREDENTIAL} (an Azure DevOps personal access token with Work Items: Read) "
                             "in the environment")
    return basic("", token)


def _page(answer: object, what: str, key: str) -> tuple[dict, list]:
    """An answer that is an object holding a list ``answer[key]``, and that list; anything else
    ends the sync, naming ``what``."""
    if not isinstance(answer, dict) or not isinstance(answer.get(key), list):
        raise ConnectorError(f"{what}: the answer is not an object with a list of {key}")
    return answer, answer[key]


def _object(answer: object, what: str, key: str) -> list:
    """The list ``answer[key]`` of an answer ``_page`` accepts."""
    return _page(answer, what, key)[1]


def _item_id(record: object, report: AzureDevOpsSync, what: str) -> int | None:
    """A work item's id, a positive integer; None, the record counted as rejected, for anything else."""
    value = record.get("id") if isinstance(record, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    reject(report.rejections, f"{what} {shown(value if isinstance(record, dict) else record)}",
           "not a work item id (a positive integer)")
    return None


def _ids(client: Client, base: str, report: AzureDevOpsSync) -> list[int]:
    """Every work item id of the project, by WIQL pages of ids above the last one seen."""
    ids: list[int] = []
    while True:
        last = ids[-1] if ids else 0
        query = ("SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project "
                 f"AND [System.Id] > {last} ORDER BY [System.Id] ASC")
        page = _object(parsed(client.post(f"{base}/_apis/wit/wiql", {"query": query}, {**API, "$top": WIQL_PAGE})),
                       "WIQL", "workItems")
        got = sorted(i for r in page if (i := _item_id(r, report, "WIQL work item")) is not None and i > last)
        if not got:
            return ids
        ids += got


def _revisions(client: Client, base: str, token: str | None, fields: list[str],
               report: AzureDevOpsSync) -> tuple[dict, str]:
    """The revisions since ``token`` (all, without one) by work item id, and the token to read from next."""
    by_id: dict[int, list] = {}
    seen: set[str] = set()
    while True:
        params = {**API, "fields": ",".join(fields)} | ({"continuationToken": token} if token else {})
        answer, values = _page(parsed(client.get(f"{base}/_apis/wit/reporting/workitemrevisions", params)),
                               "revisions feed", "values")
        for record in values:
            item = _item_id(record, report, "revision of work item")
            if item is not None:
                by_id.setdefault(item, []).append(record)
                report.revisions += 1
        following = answer.get("continuationToken")
        if not isinstance(following, str) or not following:
            raise ConnectorError("revisions feed: an answer without a continuationToken")
        if answer.get("isLastBatch") is True:
            return by_id, following
        if following in seen or following == token:
            raise ConnectorError(f"revisions feed: the continuationToken {shown(following)} came before: the feed "
                                 "does not advance")
        seen.add(following)
        token = following


def _items(client: Client, base: str, ids: list[int], report: AzureDevOpsSync) -> Iterator[dict]:
    """The work items ``ids`` name, with their fields and relations, 200 a request."""
    for start in range(0, len(ids), BATCH):
        body = {"ids": ids[start:start + BATCH], "$expand": "Relations", "errorPolicy": "Omit"}
        for record in _object(parsed(client.post(f"{base}/_apis/wit/workitemsbatch", body, API)),
                              "workitemsbatch", "value"):
            if record is not None and _item_id(record, report, "work item") is not None:  # Omit: a deleted id is null
                yield record


def _merged(old: list, new: list) -> list:
    """A work item's revisions kept and fetched, one per revision number, in order."""
    by_rev = {r.get("rev"): r for r in old + new if isinstance(r, dict)}
    return [by_rev[k] for k in sorted(by_rev, key=lambda k: k if isinstance(k, int) else -1)]


def _read(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def sync_azure_devops(org_url: str, project: str, store: Path, settings: Settings, team: str | None = None,
                      full: bool = False, sweep: bool = False) -> AzureDevOpsSync:
    """Fetch what changed in ``project`` of the organization at ``org_url`` since the last sync into the store."""
    headers = {**credentials(), "Accept": "application/json"}
    raw = sync_folder(Path(store))
    state = {} if full else _read(raw / "sync-state", {})
    same = state.get("org") == org_url and state.get("project") == project
    token = state.get("token") if same else None
    report = AzureDevOpsSync(project, token)
    started = datetime.now(UTC)
    client = Client(org_url, headers, CREDENTIAL, settings.sync)
    base = f"/{segment(project)}"
    swept_at = datetime.fromisoformat(state["swept_at"]) if same and "swept_at" in state else None
    try:
        fields = REVISION_FIELDS + settings.imports.azure_devops_points_fields
        revisions, following = _revisions(client, base, token, fields, report)
        listed = None
        if token is None or sweep or swept_at is None or started - swept_at > SWEEP_EVERY:
            listed = _ids(client, base, report)
        wanted = sorted(set(revisions) | (set(listed) if token is None and listed is not None else set()))
        kinds = set()
        for item in progress(_items(client, base, wanted, report), "fetching work items", unit="item"):
            kind = (item.get("fields") or {}).get("System.WorkItemType")
            if isinstance(kind, str) and kind:
                kinds.add(kind)
            path = raw / "workitems" / f"{item['id']}.json"
            kept = _read(path, {}).get("revisions", []) if token else []
            write_whole(raw, f"workitems/{item['id']}.json",
                        {**item, "revisions": _merged(kept, revisions.get(item["id"], []))})
            report.items += 1
        if listed is not None:
            keep = {str(i) for i in listed}
            gone = [p for p in (raw / "workitems").glob("*.json") if p.stem not in keep or not STEM.fullmatch(p.stem)]
            for path in gone:
                path.unlink()
            if token is not None:
                report.notes.append(f"key sweep: {len(listed)} work items in the project; {len(gone)} gone from it, "
                                    "removed from the store")
            swept_at = started
        write_whole(raw, "iterations.json", parsed(client.get(f"{base}/_apis/wit/classificationnodes/Iterations",
                                                              {**API, "$depth": ITERATION_DEPTH})))
        if team:
            answer = parsed(client.get(f"{base}/{segment(team)}/_apis/work/teamsettings/iterations", API))
            write_whole(raw, "team-iterations.json", {"value": _object(answer, "team iterations", "value")})
        states = _read(raw / "states.json", {}) if token else {}
        for kind in sorted(kinds - set(states)):
            answer = parsed(client.get(f"{base}/_apis/wit/workitemtypes/{segment(kind)}/states", API))
            states[kind] = _object(answer, f"states of {shown(kind)}", "value")
        write_whole(raw, "states.json", states)
    finally:
        report.requests, report.bytes = client.requests, client.bytes
        client.close()
    if not any((raw / "workitems").glob("*.json")):
        raise ConnectorError(f"{org_url}: project {project!r} holds no work items the credential can see")
    report.imported = import_azure_devops(raw, Path(store), settings)
    write_whole(raw, "sync-state", {"org": org_url, "project": project, "team": team, "token": following,
                                    "synced_at": started.isoformat(), "swept_at": (swept_at or started).isoformat()})
    return report

