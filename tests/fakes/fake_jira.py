"""A fake Jira site on loopback speaking the REST shapes Slipcast's sync reads.

Cloud: ``POST /rest/api/3/search/jql`` paged by ``nextPageToken`` with changelogs cut to their
newest histories (as Cloud embeds them) and ``/rest/api/3/issue/{key}/changelog`` for the rest.
Data Center: ``GET /rest/api/2/search`` paged by ``startAt``/``total``. Both: project versions,
statuses, agile boards and sprints, ``updated >= "yyyy-MM-dd HH:mm"`` in the JQL. Writes, as
publishing makes them: ``GET``/``PUT /rest/api/{2,3}/version/{id}`` (the description) and
``GET``/``PUT /rest/api/{2,3}/project/{key}/properties/{key}``, each write kept in ``writes``;
``forbid`` answers every write 403, as a site does to a credential without Administer Projects. Faults on
demand: 429 with ``Retry-After`` (or ``X-RateLimit-Reset``) on the next requests to a path. It counts what it serves,
and when.

Hostile modes (a site that is broken, or attacks): issues with any key (traversal keys are put in
``issues``), any board ids (``boards``), ``loop`` (one of ``LOOPS``: a paged listing that never
ends), ``reshape`` (each search page's body replaced by what it returns), ``trickle`` (the
statuses answered one byte every so many seconds), ``echo`` (every request answered 500 with
its own headers, credential included) and ``down`` (every request answered 500, until set back).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd

from tests.fakes.loopback import JsonHandler, LoopbackSite

EMBEDDED = 4  # histories a Cloud search result embeds per issue in this fake
LOOPS = {
    "token": "Cloud search: the same nextPageToken on every page",
    "start_at": "Data Center search: the first page again whatever startAt asks, with a total that never comes",
    "total": "Data Center search: a fresh page of new keys forever, the total always a page ahead",
    "changelog": "an issue changelog that is never isLast",
    "boards": "a board list that is never last",
}


class FakeJira(LoopbackSite):
    def __init__(self, issues: dict[str, dict], auth: str, versions: dict | None = None,
                 statuses: list | None = None, sprints: list | None = None):
        self.issues = issues
        self.versions = versions or {}
        self.statuses = statuses or []
        self.sprints = sprints or []
        self.auth = auth
        self.faults: Counter = Counter()  # path prefix -> how many 429s still to answer
        self.limit_headers = {"Retry-After": "0"}  # what each 429 says about when to come back
        self.reset_in: float | None = None  # else each 429 says X-RateLimit-Reset this many seconds ahead (ISO 8601)
        self.drops: Counter = Counter()  # path prefix -> how many connections to drop without an answer
        self.repeat = False  # each search page also repeats the last issue of the page before
        self.hits: Counter = Counter()
        self.times: dict[str, list[float]] = {}  # path -> when each request came (time.time())
        self.served: list[str] = []  # issue keys in search results, in order
        self.boards: list = [{"id": 1, "name": "Board"}]
        self.loop: str | None = None  # one of LOOPS
        self.reshape: Callable[[dict], object] | None = None
        self.trickle: float | None = None  # seconds between the bytes of /status answers
        self.echo = False
        self.properties: dict[tuple[str, str], dict] = {}  # (project key, property key) -> value
        self.writes: list[dict] = []  # each write answered: method, path, body
        self.forbid = False
        self.down = False
        super().__init__(self._handler())

    def version(self, version_id: str) -> dict | None:
        """A version of any project, by its id."""
        return next((v for vs in self.versions.values() for v in vs if str(v.get("id")) == version_id), None)

    @classmethod
    def from_export(cls, export: Path, auth: str) -> FakeJira:
        """A site holding what ``slipcast.ingest.exports`` rendered (one file per issue)."""
        sprints = export / "sprints-board-1.json"
        return cls({p.stem: json.loads(p.read_text()) for p in sorted((export / "issues").glob("*.json"))}, auth,
                   versions={p.stem.removeprefix("versions-"): json.loads(p.read_text())
                             for p in export.glob("versions-*.json")},
                   statuses=json.loads((export / "statuses.json").read_text()),
                   sprints=json.loads(sprints.read_text())["values"] if sprints.exists() else [])

    # -- what the site holds ---------------------------------------------------------------
    def _selected(self, jql: str) -> list[dict]:
        match = re.search(r'updated >= "([^"]+)"', jql)
        since = pd.Timestamp(match.group(1), tz="UTC") if match else None
        keys = sorted(self.issues, key=_order)
        return [self.issues[k] for k in keys
                if since is None or pd.Timestamp(self.issues[k]["fields"]["updated"]) >= since]

    def _handler(self):
        fake = self

        class Handler(JsonHandler):
            def _route(self, method: str):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.hits[url.path] += 1
                fake.times.setdefault(url.path, []).append(time.time())
                if fake.echo:
                    return self._echo()
                if fake.down:
                    return self._answer(500, {"errorMessages": ["down for maintenance"]})
                if self.headers.get("Authorization") != fake.auth:
                    return self._answer(401, {"errorMessages": ["not authenticated"]})
                for prefix in list(fake.drops):
                    if url.path.startswith(prefix) and fake.drops[prefix] > 0:
                        fake.drops[prefix] -= 1
                        self.close_connection = True
                        return self.connection.shutdown(2)  # mid-request: no status line at all
                for prefix in list(fake.faults):
                    if url.path.startswith(prefix) and fake.faults[prefix] > 0:
                        fake.faults[prefix] -= 1
                        headers = fake.limit_headers
                        if fake.reset_in is not None:
                            at = datetime.now(UTC) + timedelta(seconds=fake.reset_in)
                            headers = {"X-RateLimit-Reset": at.isoformat()}
                        return self._answer(429, {"errorMessages": ["rate limited"]}, headers)
                match = re.fullmatch(r"/rest/api/[23]/version/([^/]+)", url.path)
                if match:
                    version = fake.version(match.group(1))
                    if version is None:
                        return self._answer(404, {"errorMessages": [f"no version {match.group(1)}"]})
                    if method == "PUT":
                        return self._write(version)
                    return self._answer(200, version)
                match = re.fullmatch(r"/rest/api/[23]/project/([^/]+)/properties/([^/]+)", url.path)
                if match:
                    key = (match.group(1), match.group(2))
                    if method == "PUT":
                        return self._write(fake.properties.setdefault(key, {}), whole=True)
                    if key not in fake.properties:
                        return self._answer(404, {"errorMessages": [f"no property {key[1]}"]})
                    return self._answer(200, {"key": key[1], "value": fake.properties[key]})
                if method == "POST" and url.path == "/rest/api/3/search/jql":
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    chosen = fake._selected(body["jql"])
                    token = str(body.get("nextPageToken") or 0)
                    start = int(token) if token.isdigit() else 0
                    page = chosen[start:start + int(body.get("maxResults", 50))]
                    if fake.repeat and start > 0:
                        page = [chosen[start - 1]] + page
                    fake.served += [str(i.get("key")) for i in page]
                    out = {"issues": [_embedded(i) for i in page]}
                    if start + len(page) < len(chosen):
                        out["nextPageToken"] = str(start + len(page))
                    if fake.loop == "token":
                        out["nextPageToken"] = "again"
                    return self._answer(200, fake.reshape(out) if fake.reshape else out)
                if url.path == "/rest/api/2/search":
                    chosen = fake._selected(query.get("jql", ""))
                    start, size = int(query.get("startAt", 0)), int(query.get("maxResults", 50))
                    page = chosen[start:start + size]
                    total = len(chosen)
                    if fake.loop == "start_at":
                        start, page, total = 0, chosen[:size], 10 ** 9
                    if fake.loop == "total":
                        page = [{**chosen[i % len(chosen)], "key": f"LOOP-{start + i + 1}"} for i in range(size)]
                        total = start + 2 * size
                    fake.served += [str(i.get("key")) for i in page]
                    out = {"startAt": start, "maxResults": size, "total": total, "issues": page}
                    return self._answer(200, fake.reshape(out) if fake.reshape else out)
                match = re.fullmatch(r"/rest/api/3/issue/([^/]+)/changelog", url.path)
                if match:
                    histories = fake.issues[match.group(1)]["changelog"]["histories"]
                    start, size = int(query.get("startAt", 0)), int(query.get("maxResults", 100))
                    values = histories[start:start + size]
                    last = start + len(values) >= len(histories)
                    if fake.loop == "changelog":
                        values, last = histories[:size], False
                    return self._answer(200, {"startAt": start, "maxResults": size, "total": len(histories),
                                              "isLast": last, "values": values})
                match = re.fullmatch(r"/rest/api/[23]/project/([^/]+)/versions", url.path)
                if match:
                    return self._answer(200, fake.versions.get(match.group(1), []))
                if re.fullmatch(r"/rest/api/[23]/status", url.path):
                    if fake.trickle:
                        return self._trickle(fake.statuses, fake.trickle)
                    return self._answer(200, fake.statuses)
                if url.path == "/rest/agile/1.0/board":
                    start = int(query.get("startAt", 0))
                    return self._answer(200, {"startAt": start, "isLast": fake.loop != "boards",
                                              "values": fake.boards})
                if re.fullmatch(r"/rest/agile/1.0/board/[^/]+/sprint", url.path):
                    start = int(query.get("startAt", 0))
                    values = fake.sprints[start:start + 50]
                    return self._answer(200, {"startAt": start, "isLast": start + len(values) >= len(fake.sprints),
                                              "values": values})
                return self._answer(404, {"errorMessages": [f"no route {url.path}"]})

            def _write(self, record: dict, whole: bool = False):
                """A PUT's JSON body into ``record`` (replacing it ``whole``), kept in ``writes``."""
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if fake.forbid:
                    return self._answer(403, {"errorMessages": ["You do not have permission to edit this."]})
                fake.writes.append({"method": "PUT", "path": urlparse(self.path).path, "body": body})
                if whole:
                    record.clear()
                record.update(body)
                return self._answer(200, record)

            def do_GET(self):
                self._route("GET")

            def do_PUT(self):
                self._route("PUT")

            def do_POST(self):
                self._route("POST")

        return Handler


def _order(key: str) -> tuple:
    """Issue keys as Jira orders them (project, then number); any other text last."""
    project, _, number = key.rpartition("-")
    return (0, project, int(number), "") if number.isdigit() else (1, "", 0, key)


def _embedded(issue: dict) -> dict:
    """The issue as Cloud's search embeds it: only its newest histories, and the total."""
    if not isinstance(issue, dict) or not isinstance(issue.get("changelog"), dict):
        return issue
    histories = issue["changelog"]["histories"]
    kept = histories[-EMBEDDED:]
    return {**issue, "changelog": {"startAt": len(histories) - len(kept), "maxResults": len(kept),
                                   "total": len(histories), "histories": kept}}
