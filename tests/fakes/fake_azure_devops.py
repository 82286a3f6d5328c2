"""A fake Azure DevOps organization on loopback speaking the REST shapes (api-version 7.1) the sync reads.

Under ``{url}/{ORG}/{project}``: WIQL (``POST _apis/wit/wiql``: ids only, ``[System.Id] > n`` in the
query, at most ``$top`` and never more than ``cap`` ids an answer), ``POST _apis/wit/workitemsbatch``
(at most 200 ids, ``$expand=Relations``), the reporting revisions feed (``GET
_apis/wit/reporting/workitemrevisions``: ``page`` revisions an answer, only the ``fields`` asked
for, a ``continuationToken`` and ``isLastBatch``), the iteration tree (``classificationnodes``),
a team's iterations (``{team}/_apis/work/teamsettings/iterations``) and each work-item type's
states. Basic auth with an empty user name. Faults on demand: 429 with ``Retry-After`` on the next
requests to a path; a revisions feed that never ends (``loop``). Edits and deletions (``edit``,
``delete``) go into the feed as real ones do. It counts what it serves.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pandas as pd

from tests.fakes.loopback import JsonHandler, LoopbackSite

ORG = "acme"
PAGE = 200  # revisions a feed answer holds


def _walk(node: dict):
    yield node
    for child in node.get("children") or []:
        yield from _walk(child)


class FakeAzureDevOps(LoopbackSite):
    def __init__(self, items: dict[int, dict], states: dict, iterations: dict, auth: str, project: str = "Slipcast"):
        self.project = project
        self.items = {i: {k: v for k, v in item.items() if k != "revisions"} for i, item in items.items()}
        log = [r for item in items.values() for r in item.get("revisions", [])]
        self.log = sorted(log, key=lambda r: (r["fields"]["System.ChangedDate"], r["id"], r["rev"]))
        self.states, self.iterations, self.auth = states, iterations, auth
        self.cap = 20000  # the most ids a WIQL answer holds
        self.faults: Counter = Counter()  # path suffix -> how many 429s still to answer
        self.retry_after = "0"
        self.loop = False  # the revisions feed answers the same continuationToken forever, never isLastBatch
        self.hits: Counter = Counter()
        self.times: dict[str, list[float]] = {}
        super().__init__(self._handler())

    @property
    def org_url(self) -> str:
        return f"{self.url}/{ORG}"

    @classmethod
    def from_export(cls, export: Path, auth: str) -> FakeAzureDevOps:
        """An organization holding what ``slipcast.ingest.exports`` rendered as azure-devops."""
        items = {int(p.stem): json.loads(p.read_text()) for p in (export / "workitems").glob("*.json")}
        return cls(items, json.loads((export / "states.json").read_text()),
                   json.loads((export / "iterations.json").read_text()), auth)

    # -- changes on the site -------------------------------------------------------------------
    def edit(self, item_id: int, changes: dict) -> None:
        """A new revision of ``item_id`` with ``changes`` to its fields, now."""
        item = self.items[item_id]
        now = pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        rev = item["rev"] + 1
        fields = {**item["fields"], **changes, "System.Rev": rev, "System.ChangedDate": now}
        item.update(rev=rev, fields=fields)
        revision = {k: (f"{v['displayName']} <{v['uniqueName']}>" if isinstance(v, dict) else v)
                    for k, v in fields.items()}
        self.log.append({"id": item_id, "rev": rev, "fields": revision})

    def delete(self, item_id: int) -> None:
        del self.items[item_id]

    def _handler(self):
        fake = self

        class Handler(JsonHandler):
            def _route(self, method: str):
                url = urlparse(self.path)
                path = unquote(url.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.hits[path] += 1
                fake.times.setdefault(path, []).append(time.time())
                if self.headers.get("Authorization") != fake.auth:
                    return self._answer(401, {"message": "TF400813: The user is not authorized"})
                for suffix in list(fake.faults):
                    if path.endswith(suffix) and fake.faults[suffix] > 0:
                        fake.faults[suffix] -= 1
                        return self._answer(429, {"message": "Request was blocked due to exceeding usage"},
                                            {"Retry-After": fake.retry_after, "X-RateLimit-Resource": "ATCI",
                                             "X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"})
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"]))) if method == "POST" else {}
                root = f"/{ORG}/{fake.project}/_apis/"
                if method == "POST" and path == root + "wit/wiql":
                    match = re.search(r"\[System\.Id\] > (\d+)", body["query"])
                    after = int(match.group(1)) if match else 0
                    ids = sorted(i for i in fake.items if i > after)[:min(int(query.get("$top", fake.cap)), fake.cap)]
                    return self._answer(200, {"queryType": "flat", "asOf": pd.Timestamp.now(tz="UTC").isoformat(),
                                              "workItems": [{"id": i, "url": f"{fake.org_url}/_apis/wit/workItems/{i}"}
                                                            for i in ids]})
                if method == "POST" and path == root + "wit/workitemsbatch":
                    if len(body["ids"]) > 200:
                        return self._answer(400, {"message": "VS402337: at most 200 ids"})
                    return self._answer(200, {"count": len(body["ids"]),
                                              "value": [fake.items.get(i) for i in body["ids"]]})
                if path == root + "wit/reporting/workitemrevisions":
                    start = int(query.get("continuationToken", 0))
                    fields = query.get("fields", "").split(",") if query.get("fields") else None
                    page = fake.log[start:start + PAGE]
                    values = [{"id": r["id"], "rev": r["rev"],
                               "fields": {k: v for k, v in r["fields"].items() if fields is None or k in fields}}
                              for r in page]
                    end = 1 if fake.loop else start + len(page)
                    return self._answer(200, {"values": values, "continuationToken": str(end),
                                              "isLastBatch": not fake.loop and end >= len(fake.log),
                                              "nextLink": f"{fake.org_url}/{fake.project}/_apis/wit/reporting/"
                                                          f"workitemrevisions?continuationToken={end}"})
                if path == root + "wit/classificationnodes/Iterations":
                    return self._answer(200, fake.iterations)
                match = re.fullmatch(root + r"wit/workitemtypes/([^/]+)/states", path)
                if match:
                    states = fake.states.get(match.group(1), [])
                    return self._answer(200, {"count": len(states), "value": states})
                match = re.fullmatch(rf"/{ORG}/{fake.project}/([^/]+)/_apis/work/teamsettings/iterations", path)
                if match:
                    team = next((n for n in fake.iterations.get("children", []) if n["name"] == match.group(1)), None)
                    nodes = [n for n in _walk(team or {}) if n.get("attributes")]
                    return self._answer(200, {"count": len(nodes), "value": [
                        {"id": n["identifier"], "name": n["name"], "url": "",
                         "path": n["path"].lstrip("\\").replace("\\Iteration", "", 1),
                         "attributes": {**n["attributes"], "timeFrame": "past"}} for n in nodes]})
                return self._answer(404, {"message": f"no route {path}"})

            def do_GET(self):
                self._route("GET")

            def do_POST(self):
                self._route("POST")

        return Handler
