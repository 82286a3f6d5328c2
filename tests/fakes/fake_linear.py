"""A fake Linear GraphQL API on loopback, speaking the shapes Slipcast's sync reads.

``POST /graphql`` with ``{"query", "variables", "operationName"}`` and the API key bare in
``Authorization``. It answers the operations the connector sends (dispatched on the operation's
name): ``Issues`` (``filter: {team: {key: {eq}}, updatedAt: {gt}}``, ``first``/``after``, ordered
by ``createdAt``, each issue with the first page of its history: as many entries as
``history(first: N)`` asks, or ``embedded`` when set), ``IssueKeys``, ``IssueHistory`` (``issue(id:)
{ history(first, after) }``), ``Cycles`` and ``Projects``; cursors are opaque. Every answer carries
Linear's budget headers (``X-RateLimit-Requests-Remaining``/``-Reset`` in epoch milliseconds,
``X-Complexity``, ``X-RateLimit-Complexity-Remaining``/``-Reset``). Faults on demand: ``limited``
answers the next requests HTTP 400 ``RATELIMITED`` (or 429, with ``limit_status``), their reset
``reset_in`` seconds ahead; ``spent`` answers the next requests 200 with the requests budget at 0;
``errors`` answers an operation with a GraphQL error; ``loop`` makes the issues listing never end
(the same cursor on every page). Identifiers may be anything (a hostile workspace). It counts what it serves, and when.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from tests.fakes.loopback import JsonHandler, LoopbackSite

LIMIT = 1500  # requests an hour (Linear's for an API key)
COMPLEXITY = 250000


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    return int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0


class FakeLinear(LoopbackSite):
    def __init__(self, issues: dict[str, dict], key: str, cycles: list | None = None, projects: list | None = None):
        self.issues = issues  # identifier -> the issue node with its whole history
        self.cycles = cycles or []
        self.projects = projects or []
        self.key = key
        self.embedded: int | None = None  # else the history entries an issue page embeds at most
        self.limited = 0  # requests still to answer rate limited
        self.limit_status = 400  # Linear's RATELIMITED answer (429 also happens)
        self.reset_in = 0.0  # seconds ahead the limited budget's reset says
        self.spent = 0  # successful answers still to say the requests budget is spent
        self.errors: dict[str, str] = {}  # operation -> the GraphQL error code it answers with
        self.loop = False  # every Issues page says there is a next one, at the same cursor
        self.hits: Counter = Counter()  # operation -> requests
        self.times: dict[str, list[float]] = {}
        self.served: list[str] = []  # identifiers in Issues answers, in order
        super().__init__(self._handler())

    @classmethod
    def from_export(cls, export: Path, key: str) -> FakeLinear:
        """A workspace holding what ``slipcast.ingest.exports`` rendered as ``linear``."""
        issues = {p.stem: json.loads(p.read_text()) for p in sorted((export / "issues").glob("*.json"))}
        return cls(issues, key, cycles=json.loads((export / "cycles.json").read_text())["cycles"],
                   projects=json.loads((export / "projects.json").read_text())["projects"])

    def edit(self, identifier: str, at: pd.Timestamp, **changes) -> dict:
        """Change an issue as Linear would: its fields, a history entry saying so, and updatedAt."""
        issue = self.issues[identifier]
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"
        entry = {"id": f"edit-{identifier}-{len(issue['history']['nodes'])}", "createdAt": stamp}
        for name, value in changes.items():
            entry[f"from{name[0].upper()}{name[1:]}"] = issue.get(name)
            entry[f"to{name[0].upper()}{name[1:]}"] = value
            issue[name] = value
        issue["history"]["nodes"].append(entry)
        issue["updatedAt"] = stamp
        return issue

    # -- answers ----------------------------------------------------------------------------------
    def _issues(self, variables: dict) -> list[dict]:
        chosen = (variables.get("filter") or {})
        team = ((chosen.get("team") or {}).get("key") or {}).get("eq")
        since = ((chosen.get("updatedAt") or {}).get("gt"))
        since_ts = pd.Timestamp(since) if since else None
        return [i for i in sorted(self.issues.values(), key=lambda i: (i["createdAt"], i["identifier"]))
                if (team is None or i["team"]["key"] == team)
                and (since_ts is None or pd.Timestamp(i["updatedAt"]) > since_ts)]

    @staticmethod
    def _page(nodes: list, variables: dict, shape=lambda n: n) -> dict:
        start, size = _offset(variables.get("after")), int(variables.get("first", 50))
        chunk = nodes[start:start + size]
        more = start + len(chunk) < len(nodes)
        return {"pageInfo": {"hasNextPage": more, "endCursor": _cursor(start + len(chunk)) if chunk else None},
                "nodes": [shape(n) for n in chunk]}

    def _embedded(self, issue: dict, first: int) -> dict:
        """The issue as an issues page embeds it: the first page of its history."""
        size = min(first, self.embedded) if self.embedded else first
        return {**issue, "history": self._page(issue["history"]["nodes"], {"first": size})}

    def answer(self, operation: str, query: str, variables: dict) -> dict:
        if operation in self.errors:
            return {"errors": [{"message": f"{operation} failed", "extensions": {"code": self.errors[operation]}}],
                    "data": None}
        if operation == "Issues":
            match = re.search(r"history\(first: (\d+)", query)
            first = int(match.group(1)) if match else 50
            page = self._page(self._issues(variables), variables, lambda i: self._embedded(i, first))
            if self.loop:
                page["pageInfo"] = {"hasNextPage": True, "endCursor": _cursor(0)}
            self.served += [i["identifier"] for i in page["nodes"]]
            return {"data": {"issues": page}}
        if operation == "IssueKeys":
            return {"data": {"issues": self._page(self._issues(variables), variables,
                                                  lambda i: {"identifier": i["identifier"]})}}
        if operation == "IssueHistory":
            issue = next((i for i in self.issues.values() if variables["id"] in (i["id"], i["identifier"])), None)
            if issue is None:
                return {"errors": [{"message": "Entity not found: Issue", "extensions": {"code": "INVALID_INPUT"}}],
                        "data": None}
            return {"data": {"issue": {"history": self._page(issue["history"]["nodes"], variables)}}}
        if operation == "Cycles":
            team = (((variables.get("filter") or {}).get("team") or {}).get("key") or {}).get("eq")
            cycles = [c for c in self.cycles if team is None or c["team"]["key"] == team]
            return {"data": {"cycles": self._page(cycles, variables)}}
        if operation == "Projects":
            return {"data": {"projects": self._page(self.projects, variables)}}
        return {"errors": [{"message": f"Unknown operation {operation}", "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}]}

    def _handler(self):
        fake = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                query = body.get("query", "")
                operation = body.get("operationName") or (re.findall(r"query (\w+)", query) or ["?"])[0]
                fake.hits[operation] += 1
                fake.times.setdefault(operation, []).append(time.time())
                if self.path != "/graphql":
                    return self._answer(404, {"errors": [{"message": "Not found"}]})
                if self.headers.get("Authorization") != fake.key:
                    return self._answer(401, {"errors": [{"message": "Authentication required, not authenticated",
                                                          "extensions": {"code": "AUTHENTICATION_ERROR"}}]})
                now_ms = int(time.time() * 1000)
                budget = {"X-RateLimit-Requests-Limit": str(LIMIT), "X-RateLimit-Requests-Remaining": str(LIMIT - 1),
                          "X-RateLimit-Requests-Reset": str(now_ms + 3600_000), "X-Complexity": "120",
                          "X-RateLimit-Complexity-Limit": str(COMPLEXITY),
                          "X-RateLimit-Complexity-Remaining": str(COMPLEXITY - 120),
                          "X-RateLimit-Complexity-Reset": str(now_ms + 3600_000)}
                if fake.limited > 0:
                    fake.limited -= 1
                    spent = {**budget, "X-RateLimit-Requests-Remaining": "0",
                             "X-RateLimit-Requests-Reset": str(now_ms + int(fake.reset_in * 1000))}
                    return self._answer(fake.limit_status, {"errors": [{
                        "message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED", "statusCode": 429}}]},
                        spent)
                if fake.spent > 0:
                    fake.spent -= 1
                    budget.update({"X-RateLimit-Requests-Remaining": "0",
                                   "X-RateLimit-Requests-Reset": str(now_ms + int(fake.reset_in * 1000))})
                return self._answer(200, fake.answer(operation, query, body.get("variables") or {}), budget)

        return Handler
