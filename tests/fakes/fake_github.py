"""A fake GitHub REST API on loopback: milestones, issues (``since``) and per-issue events,
paged by ``Link`` headers, ETags on milestones, and a spent rate limit on demand. Writes, as
publishing makes them: ``GET``/``PATCH /repos/{owner}/{repo}/milestones/{number}`` (the
description), each kept in ``writes``; ``limited`` answers the next requests 429 (``Retry-After:
0``), ``forbid`` every write 403, as GitHub does to a token without Issues write access.

Hostile modes: ``next_link`` (the issues listing's next page is this URL: another origin, or
``"self"`` for the page itself, a cycle), ``moved`` (every request answered 301 with a JSON body,
as GitHub answers for a renamed repository), ``reshape`` (the issues listing's body replaced by
what it returns) and ``echo`` (every request answered 500 with its own headers, token included).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pandas as pd

from tests.fakes.loopback import JsonHandler, LoopbackSite


class FakeGitHub(LoopbackSite):
    def __init__(self, export: Path, repo: str, token: str):
        self.milestones = json.loads((export / "milestones.json").read_text())
        self.issues = {i["number"]: i for i in json.loads((export / "issues.json").read_text())}
        self.events: dict[int, list] = {}
        for e in json.loads((export / "events.json").read_text()):
            self.events.setdefault(e["issue"]["number"], []).append({k: v for k, v in e.items() if k != "issue"})
        self.repo, self.token = repo, token
        self.spent = 0  # requests still to answer with a spent rate limit (403, x-ratelimit-remaining: 0)
        self.hits: Counter = Counter()
        self.next_link: str | None = None
        self.moved: str | None = None  # where a 301 points (the repository's new URL)
        self.reshape: Callable[[list], object] | None = None
        self.echo = False
        self.limited = 0  # requests still to answer 429
        self.writes: list[dict] = []  # each write answered: method, path, body
        self.forbid = False
        super().__init__(self._handler())

    def milestone(self, number: int) -> dict | None:
        return next((m for m in self.milestones if m.get("number") == number), None)

    def _handler(self):
        fake = self

        class Handler(JsonHandler):
            def _paged(self, url, query, items, extra=None):
                page, size = int(query.get("page", 1)), int(query.get("per_page", 30))
                chunk = items[(page - 1) * size:page * size]
                headers = dict(extra or {})
                if page * size < len(items):
                    following = {**query, "page": page + 1}
                    headers["Link"] = f'<{fake.url}{url.path}?{urlencode(following)}>; rel="next"'
                return self._answer(200, chunk, headers)

            def do_GET(self):
                self._route("GET")

            def do_PATCH(self):
                self._route("PATCH")

            def _route(self, method: str):
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                base = f"/repos/{fake.repo}"
                route = re.sub(r"/issues/\d+/events", "/issues/N/events", url.path)
                fake.hits[route] += 1
                if fake.echo:
                    return self._echo()
                if fake.moved:
                    return self._answer(301, {"message": "Moved Permanently", "url": fake.moved,
                                              "documentation_url": "https://docs.github.com/rest"},
                                        {"Location": fake.moved})
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    return self._answer(401, {"message": "Bad credentials"})
                if fake.limited > 0:
                    fake.limited -= 1
                    return self._answer(429, {"message": "too many requests"}, {"Retry-After": "0"})
                if fake.spent > 0:
                    fake.spent -= 1
                    return self._answer(403, {"message": "API rate limit exceeded"},
                                        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()))})
                match = re.fullmatch(rf"{base}/milestones/(\d+)", url.path)
                if match:
                    milestone = fake.milestone(int(match.group(1)))
                    if milestone is None:
                        return self._answer(404, {"message": "Not Found"})
                    if method == "PATCH":
                        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                        if fake.forbid:
                            return self._answer(403, {"message": "Resource not accessible by personal access token"})
                        fake.writes.append({"method": method, "path": url.path, "body": body})
                        milestone.update(body)
                    return self._answer(200, milestone)
                if url.path == f"{base}/milestones":
                    etag = '"' + hashlib.sha256(json.dumps(fake.milestones).encode()).hexdigest()[:16] + '"'
                    if self.headers.get("If-None-Match") == etag:
                        return self._answer(304)
                    return self._paged(url, query, fake.milestones, {"ETag": etag})
                if url.path == f"{base}/issues":
                    since = pd.Timestamp(query["since"]) if "since" in query else None
                    chosen = [fake.issues[n] for n in sorted(fake.issues, key=str)
                              if since is None or pd.Timestamp(fake.issues[n]["updated_at"]) >= since]
                    if fake.reshape:
                        return self._answer(200, fake.reshape(chosen))
                    if fake.next_link:
                        following = f"{fake.url}{self.path}" if fake.next_link == "self" else fake.next_link
                        return self._answer(200, chosen[:5], {"Link": f'<{following}>; rel="next"'})
                    return self._paged(url, query, chosen)
                match = re.fullmatch(rf"{base}/issues/(\d+)/events", url.path)
                if match:
                    return self._paged(url, query, fake.events.get(int(match.group(1)), []))
                return self._answer(404, {"message": "Not Found"})

        return Handler
