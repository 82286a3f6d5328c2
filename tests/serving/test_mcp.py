"""The assistant interface (MCP), asked with the SDK's own client: over streamable HTTP at ``/mcp``
of the service running on loopback, each tool's answer against the REST API's for the same thing,
bad arguments as tool errors carrying the API's messages, the API keys; and ``slipcast mcp`` over
stdio (docs/architecture.md, "The assistant interface (MCP)")."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import timedelta
from urllib.parse import quote

import anyio
import httpx
import httpx2
import pandas as pd
import pytest
import uvicorn
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from slipcast.core.settings import ProgramDeclaration
from slipcast.ingest.tables import write_tables
from slipcast.serving.app import create_app
from slipcast.tools.requests import request_for
from slipcast.tools.service import free_port
from tests.helpers import busiest_time, open_ids, serving_programs, unguarded

KEYS = ["alice-key", "bob-key"]  # two callers, each with a key of their own
LAUNCH = "acme/launch"
TOOLS = {"at_risk", "milestone", "history", "what_if", "model_health", "program", "program_what_if"}


@pytest.fixture(scope="module")
def service(trained, tmp_path_factory):
    """The service (uvicorn, in a thread) on loopback with a store, a declared program and two API
    keys; a REST client with the first key."""
    tables = trained["tables"]
    root = tmp_path_factory.mktemp("mcp")
    store = write_tables(tables, root / "store")
    now = busiest_time(tables)
    ids = sorted(open_ids(tables, now))
    declared = [ProgramDeclaration(program_id=LAUNCH, name="Launch", milestones=ids, target_at=now + timedelta(days=60))]
    s = serving_programs(trained["settings"], root, store, now, declared, api_keys=KEYS)
    server = uvicorn.Server(uvicorn.Config(create_app(s, store=unguarded(s)), host="127.0.0.1", port=free_port(),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    base = f"http://127.0.0.1:{server.config.port}"
    with httpx.Client(base_url=base, headers={"X-API-Key": KEYS[0]}, timeout=60) as rest:
        yield {"base": base, "rest": rest, "now": now, "ids": ids, "tables": tables, "store": store,
               "settings": s, "trained": trained}
    server.should_exit = True
    thread.join(10)


async def _session(read, write, calls: list[tuple[str, dict]]) -> list:
    async with ClientSession(read, write) as session:
        await session.initialize()
        return [await session.list_tools(), *[await session.call_tool(name, args) for name, args in calls]]


def ask(base: str, *calls: tuple[str, dict], key: str | None = KEYS[1]) -> list:
    """One session of the SDK's client at ``base``/mcp, sending ``key`` in X-API-Key: the tools
    listed, then each call's result."""
    async def run() -> list:
        async with httpx2.AsyncClient(headers={} if key is None else {"X-API-Key": key}, timeout=60) as http:
            async with streamable_http_client(f"{base}/mcp", http_client=http) as (read, write):
                return await _session(read, write, list(calls))
    return anyio.run(run)


def answer(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def without_page(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "page"}


def test_the_tools_are_listed_with_descriptions_and_output_schemas(service):
    tools = {t.name: t for t in ask(service["base"])[0].tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description) > 100 and tool.output_schema["type"] == "object"
        assert "page" in tool.output_schema["properties"]  # every answer links its page
    assert set(tools["what_if"].input_schema["properties"]) == {"id", "due", "scope", "people"}


def test_at_risk_is_the_api_list_riskiest_first_with_links_that_open_the_pages(service):
    base, rest = service["base"], service["rest"]
    listed = rest.get("/v1/milestones", params={"limit": 3}).json()
    first = listed["items"][0]
    project, band = first["project"], first["risk_band"]
    filtered = rest.get("/v1/milestones", params={"project": project, "band": band}).json()
    _, top, some = ask(base, ("at_risk", {"limit": 3}), ("at_risk", {"project": project, "band": band, "limit": 500}))
    top, some = answer(top), answer(some)
    assert top["total"] == listed["total"] and pd.Timestamp(top["as_of"]) == pd.Timestamp(listed["as_of"])
    assert [without_page(m) for m in top["milestones"]] == [
        {k: item[k] for k in without_page(top["milestones"][0])} for item in listed["items"]]
    assert [m["milestone_id"] for m in some["milestones"]] == [m["milestone_id"] for m in filtered["items"]]
    assert some["total"] == filtered["total"] >= 1
    assert top["page"] == f"{base}/"
    page = top["milestones"][0]["page"]
    assert page == f"{base}/milestones/{quote(first['milestone_id'], safe='')}"
    opened = rest.get(page)
    assert opened.status_code == 200 and first["milestone_id"] in opened.text


def test_milestone_history_and_model_health_are_the_apis_answers(service):
    base, rest = service["base"], service["rest"]
    items = rest.get("/v1/milestones", params={"limit": 500}).json()["items"]
    mid = next(m["milestone_id"] for m in items if m["factors"])  # the model's own forecast, with its reasons
    detail = rest.get(f"/v1/milestones/{quote(mid, safe='')}").json()
    days = rest.get(f"/v1/milestones/{quote(mid, safe='')}/history").json()
    model = rest.get("/v1/model").json()
    _, one, history, health = ask(base, ("milestone", {"id": mid}), ("history", {"id": mid, "days": 5}),
                                  ("model_health", {}))
    one, history, health = answer(one), answer(history), answer(health)
    assert {k: one[k] for k in detail if k not in ("features", "tickets")} == \
        {k: v for k, v in detail.items() if k not in ("features", "tickets")}
    assert one["reason"] and all(f["sentence"] for f in one["factors"])  # the reasons in words
    assert one["riskiest_tickets"] == detail["tickets"][:5] and one["open_tickets"] == len(detail["tickets"])
    assert one["page"] == f"{base}/milestones/{quote(mid, safe='')}"
    assert history["points"] == days["points"][-5:] and len(history["points"]) == 5
    assert history["model"] == days["model"]
    assert without_page(health) == model and health["page"] == f"{base}/"
    assert health["metrics"]["brier_skill"] is not None


def test_what_if_is_the_what_if_endpoints_answer_for_the_milestone_as_stored(service):
    base, rest, now = service["base"], service["rest"], service["now"]
    from slipcast.core.contracts import past_outcomes

    listed = rest.get("/v1/milestones", params={"limit": 1}).json()["items"][0]
    mid = listed["milestone_id"]
    body = request_for(service["tables"], mid, now, past_outcomes(service["trained"]["sets"]["milestone"]))
    committed = [t["ticket_id"] for t in body["tickets"] if t["milestone_id"] == mid and t["status"] != "done"]
    due = (now + timedelta(days=45)).isoformat()
    change = {"due_at": due, "remove_tickets": committed[:2], "add_people": 2}
    expected = rest.post("/v1/forecasts/what-if", json={"forecast": body, "change": change}).json()
    _, got = ask(base, ("what_if", {"id": mid, "due": due, "scope": committed[:2], "people": 2}))
    got = answer(got)
    assert {k: got[k] for k in ("before", "after", "delta")} == expected
    assert got["before"]["probability"] == listed["probability"]  # the store's own forecast
    assert got["after"]["probability"] < got["before"]["probability"]  # more time, less scope, more people
    assert got["page"] == f"{base}/milestones/{quote(mid, safe='')}"


def test_a_program_and_its_what_if_are_the_apis_answers(service):
    base, rest, ids = service["base"], service["rest"], service["ids"]
    path = f"/v1/programs/{quote(LAUNCH, safe='')}"
    detail = rest.get(path).json()
    change = {"slip": [{"milestone_id": detail["milestones"][0]["milestone_id"], "days": 14}]}
    expected = rest.post(f"{path}/what-if", json=change).json()
    _, one, changed = ask(base, ("program", {"id": LAUNCH}), ("program_what_if", {"id": LAUNCH, **change}))
    one, changed = answer(one), answer(changed)
    assert without_page(one) == detail and {m["milestone_id"] for m in one["milestones"]} == set(ids)
    assert {k: changed[k] for k in ("before", "after", "delta")} == expected and changed["delta"] < 0
    assert one["page"] == changed["page"] == f"{base}/programs/{quote(LAUNCH, safe='')}"
    assert rest.get(one["page"]).status_code == 200


def test_bad_arguments_are_tool_errors_carrying_the_apis_messages(service):
    base, rest, now = service["base"], service["rest"], service["now"]
    from slipcast.core.contracts import past_outcomes

    mid = rest.get("/v1/milestones", params={"limit": 1}).json()["items"][0]["milestone_id"]
    body = request_for(service["tables"], mid, now, past_outcomes(service["trained"]["sets"]["milestone"]))
    scope = rest.post("/v1/forecasts/what-if", json={"forecast": body, "change": {"remove_tickets": ["NOPE-1"]}})
    early = (now - timedelta(days=1)).isoformat()
    target = rest.post(f"/v1/programs/{quote(LAUNCH, safe='')}/what-if", json={"target_at": early})
    limit = rest.get("/v1/milestones", params={"limit": 0})
    missing = rest.get("/v1/milestones/no%20such")
    assert {scope.status_code, target.status_code, limit.status_code, missing.status_code} == {422, 404}
    _, *results = ask(base, ("what_if", {"id": mid, "scope": ["NOPE-1"]}),
                      ("program_what_if", {"id": LAUNCH, "target_at": early}),
                      ("at_risk", {"limit": 0}), ("milestone", {"id": "no such"}), ("at_risk", {"band": "nonsense"}),
                      ("what_if", {"id": mid}))
    for result in results:
        assert result.is_error and result.structured_content is None
    texts = [r.content[0].text for r in results]

    def said(response) -> str:
        error = response.json()["detail"][0]
        return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"

    assert said(scope) in texts[0] and "NOPE-1" in texts[0]
    assert said(target) in texts[1]
    assert limit.json()["detail"][0]["msg"] in texts[2] and "limit" in texts[2]
    assert missing.json()["detail"] in texts[3]
    assert "band: unknown risk band 'nonsense'" in texts[4] and "'high'" in texts[4]
    assert "nothing to change" in texts[5]


def test_each_caller_uses_its_own_key_and_a_missing_or_wrong_one_is_refused(service):
    base = service["base"]
    for key in KEYS:
        assert answer(ask(base, ("at_risk", {"limit": 1}), key=key)[1])["total"] >= 1
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": KEYS[0] + "x"}):
        refused = httpx.post(f"{base}/mcp", json=hello, headers={"Accept": "application/json, text/event-stream",
                                                                 **headers})
        assert refused.status_code == 401 and refused.json() == {"detail": "missing or invalid X-API-Key"}
        assert refused.headers["WWW-Authenticate"] == "API-Key"
    for key in (None, "wrong"):  # the SDK's client gets no session: its first request is answered 401
        with pytest.raises(BaseException) as refused_by_sdk:
            ask(base, key=key)
        assert [str(e) for e in leaves(refused_by_sdk.value)] == ["Server returned an error response"]


def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions an exception group holds, however nested."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


def test_slipcast_mcp_answers_over_stdio_from_the_store(service):
    s, now = service["settings"], service["now"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update({"SLIPCAST_TRACKING_URI": s.tracking_uri, "SLIPCAST_MODELS_DIR": str(s.models_dir),
                "SLIPCAST_WORK_DIR": str(s.work_dir / "stdio"), "SLIPCAST_SERVING__AS_OF": now.isoformat(),
                "SLIPCAST_SERVING__LEDGER_URL": f"sqlite:///{s.work_dir / 'stdio.db'}",
                "SLIPCAST_SERVING__PAGE_URL": "https://slipcast.example.com/"})
    params = StdioServerParameters(command=sys.executable, args=["-m", "slipcast.cli", "mcp", "--store",
                                                                 str(service["store"])], env=env)

    async def run() -> list:
        with open(os.devnull, "w") as quiet:
            async with stdio_client(params, errlog=quiet) as (read, write):
                return await _session(read, write, [("at_risk", {"limit": 500})])

    tools, listed = anyio.run(run)
    assert {t.name for t in tools.tools} == TOOLS
    listed = answer(listed)
    open_now = open_ids(service["tables"], now)
    assert listed["total"] == len(open_now) and {m["milestone_id"] for m in listed["milestones"]} == open_now
    chances = [m["probability"] for m in listed["milestones"] if m["probability"] is not None]
    assert chances == sorted(chances, reverse=True)
    assert listed["page"] == "https://slipcast.example.com/"
    assert all(m["page"] == f"https://slipcast.example.com/milestones/{quote(m['milestone_id'], safe='')}"
               for m in listed["milestones"])
