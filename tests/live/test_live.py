"""The live state: the store's open milestones answered from state the service keeps
(``live.portfolio``, ``live.state``), against the request path and the tables themselves."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.core.contracts import past_outcomes
from slipcast.ingest.tables import write_tables
from slipcast.live.state import LiveState
from slipcast.scoring.model_store import ModelStore
from slipcast.serving.app import create_app
from slipcast.tools.requests import request_for
from slipcast.tools.service import free_port, running_service
from tests.helpers import busiest_time, open_ids, refreshed_under_load, without_milestone


@pytest.fixture(scope="module")
def live(trained, tmp_path_factory):
    tables = trained["tables"]
    store = tmp_path_factory.mktemp("live") / "store"
    write_tables(tables, store)
    now = busiest_time(tables)
    s = trained["settings"]
    s = s.model_copy(update={"serving": s.serving.model_copy(update={"store": store, "reload_seconds": 0.2})})
    app = create_app(s, clock=lambda: now.to_pydatetime())
    with TestClient(app) as client:
        yield {"client": client, "now": now, "tables": tables, "store": store, "settings": s, "app": app,
               "outcomes": past_outcomes(trained["sets"]["milestone"])}


def test_every_open_milestone_is_listed_with_the_forecast_a_request_for_it_gets(live):
    client, now, tables = live["client"], live["now"], live["tables"]
    page = client.get("/v1/milestones", params={"limit": 500}).json()
    assert pd.Timestamp(page["as_of"]) == now  # on a refresh period's boundary
    expected = open_ids(tables, now)
    assert page["total"] == len(expected) >= 3 and {m["milestone_id"] for m in page["items"]} == expected
    probabilities = [m["probability"] for m in page["items"] if m["probability"] is not None]
    assert probabilities == sorted(probabilities, reverse=True)  # riskiest first
    for item in page["items"]:
        asked = client.post("/v1/forecasts", json=request_for(tables, item["milestone_id"], now, live["outcomes"]))
        assert asked.status_code == 200, asked.text
        one = asked.json()
        assert (item["status"], item["probability"], item["basis"]) == (one["status"], one["probability"], one["basis"])
        assert item["drivers"] == one["drivers"]


def test_each_open_milestone_has_a_prometheus_gauge(live):
    client = live["client"]
    items = client.get("/v1/milestones", params={"limit": 500}).json()["items"]
    text = client.get("/metrics").text
    for m in items:
        if m["probability"] is not None:
            line = f'slipcast_milestone_slip_probability{{milestone="{m["milestone_id"]}",project="{m["project"]}"}}'
            assert f"{line} {m['probability']}" in text


def when_matches_what_if(client, tables, now, outcomes) -> int:
    """Checks that ``when_50`` (``when_85``) is the first of the candidate due dates by which the
    forecast the what-if endpoint serves, the due date moved there now, is done with at least an
    even (85 %) chance, a later date never counting less than an earlier one; returns how many
    dates were found."""
    from slipcast.live.portfolio import WHEN_DAYS

    items = client.get("/v1/milestones", params={"limit": 500}).json()["items"]
    candidates = [now + pd.Timedelta(days=d) for d in WHEN_DAYS]
    found = 0
    for m in items:
        if not (m["basis"] == "model" or m["status"] == "past_due"):
            assert m["when_50"] is None and m["when_85"] is None
            continue
        body = request_for(tables, m["milestone_id"], now, outcomes)
        done = np.maximum.accumulate([1 - client.post("/v1/forecasts/what-if", json={
            "forecast": body, "change": {"due_at": due.isoformat()}}).json()["after"]["probability"]
            for due in candidates])
        for key, chance in (("when_50", 0.5), ("when_85", 0.85)):
            reached = np.flatnonzero(done >= chance - 5e-5)  # the endpoint rounds to 4 places
            expected = candidates[reached[0]] if len(reached) else None
            assert (None if m[key] is None else pd.Timestamp(m[key])) == expected, (m["milestone_id"], key, done)
            found += expected is not None
    return found


def test_when_is_the_first_candidate_date_the_what_if_endpoint_gives_that_chance_of_done(live):
    when_matches_what_if(live["client"], live["tables"], live["now"], live["outcomes"])
    # the same with a model that no horizon guards: the dates then come from the model alone
    store = ModelStore(live["settings"])
    store.refresh()
    for target in store.targets:
        store.get(target).metadata.update(guard={}, project_guard={})
    app = create_app(live["settings"], store=store, clock=lambda: live["now"].to_pydatetime())
    with TestClient(app) as client:
        assert when_matches_what_if(client, live["tables"], live["now"], live["outcomes"]) > 0


def test_filters_sorting_and_paging(live):
    client = live["client"]
    everything = client.get("/v1/milestones", params={"limit": 500}).json()["items"]
    project = everything[0]["project"]
    mine = client.get("/v1/milestones", params={"project": project}).json()
    assert mine["total"] == sum(m["project"] == project for m in everything)
    assert all(m["project"] == project for m in mine["items"])
    by_due = client.get("/v1/milestones", params={"sort": "due_at", "limit": 500}).json()["items"]
    assert [m["due_at"] for m in by_due] == sorted(m["due_at"] for m in by_due)
    pages = [client.get("/v1/milestones", params={"sort": "milestone_id", "offset": k, "limit": 2}).json()
             for k in range(0, len(everything), 2)]
    assert [m["milestone_id"] for p in pages for m in p["items"]] == sorted(m["milestone_id"] for m in everything)
    band = everything[0]["risk_band"]
    assert all(m["risk_band"] == band for m in client.get("/v1/milestones", params={"band": band}).json()["items"])
    assert client.get("/v1/milestones", params={"sort": "nonsense"}).status_code == 422


def test_one_milestone_its_tickets_and_its_daily_history(live):
    client, now = live["client"], live["now"]
    item = next(m for m in client.get("/v1/milestones").json()["items"] if m["change_7d"] is not None)
    detail = client.get(f"/v1/milestones/{item['milestone_id']}").json()
    assert detail["probability"] == item["probability"] and detail["features"]
    risks = [t["probability"] for t in detail["tickets"] if t["probability"] is not None]
    assert risks == sorted(risks, reverse=True)  # riskiest first; withheld ones (no probability) last
    withheld = [t for t in detail["tickets"] if t["probability"] is None]
    assert detail["tickets"][len(risks):] == withheld and all(t["basis"] == "withheld" and t["reason"] for t in withheld)
    ms = live["tables"].milestones.set_index("milestone_id").loc[item["milestone_id"]]
    history = client.get(f"/v1/milestones/{item['milestone_id']}/history").json()
    days = [pd.Timestamp(p["as_of"]) for p in history["points"]]
    assert days[0] == ms["start_at"] and all(b - a == timedelta(days=1) for a, b in zip(days, days[1:]))
    assert days[-1] <= now < days[-1] + timedelta(days=1)
    assert history["points"][-1]["due_at"] == detail["due_at"]
    # the change is against what the same model said with what was known a week earlier
    again = client.post("/v1/forecasts", json=request_for(live["tables"], item["milestone_id"],
                                                           now - timedelta(days=7), live["outcomes"])).json()
    assert item["change_7d"] == pytest.approx(item["probability"] - again["probability"], abs=1e-4)
    assert client.get("/v1/milestones/NOPE-1").status_code == 404


def test_projects_add_up_to_the_milestones(live):
    client = live["client"]
    projects = client.get("/v1/projects").json()["items"]
    items = client.get("/v1/milestones", params={"limit": 500}).json()["items"]
    assert sum(p["open_milestones"] for p in projects) == len(items)
    for p in projects:
        mine = [m for m in items if m["project"] == p["project"]]
        assert sum(p["by_band"].values()) == sum(m["risk_band"] is not None for m in mine)
        assert p["finished_milestones"] > 0 and 0 <= p["slipped_share"] <= 1


def test_an_unchanged_state_answers_304_and_a_new_store_a_new_state(live):
    client, app = live["client"], live["app"]
    first = client.get("/v1/milestones")
    tag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "no-cache"
    again = client.get("/v1/milestones", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag and not again.content
    other = client.get("/v1/milestones", params={"limit": 3})
    assert other.headers["ETag"] != tag  # another query, another answer
    # the store rewritten (one milestone taken out) while dashboards keep asking: never a failed request
    tables = live["tables"]
    gone = first.json()["items"][0]["milestone_id"]
    assert not refreshed_under_load(client, app, lambda: write_tables(without_milestone(tables, gone), live["store"],
                                                                      force=True))
    now = client.get("/v1/milestones", headers={"If-None-Match": tag}, params={"limit": 500})
    assert now.status_code == 200 and now.headers["ETag"] != tag
    assert gone not in {m["milestone_id"] for m in now.json()["items"]}
    # as the other tests found it
    assert not refreshed_under_load(client, app, lambda: write_tables(tables, live["store"], force=True))


def test_if_none_match_takes_weak_tags_lists_and_a_star_on_every_etag_route(live):
    """``If-None-Match`` is compared weakly (``W/"x"`` matches ``"x"``), may list several tags, and
    ``*`` matches any current answer: 304 on every route that sends an ETag."""
    client = live["client"]
    one = quote(client.get("/v1/milestones").json()["items"][0]["milestone_id"], safe="")
    for path in ("/v1/milestones", f"/v1/milestones/{one}", f"/v1/milestones/{one}/history", "/v1/projects"):
        tag = client.get(path).headers["ETag"]
        for given in (tag, f"W/{tag}", "*", f'"elsewhere", W/{tag}', f'W/"a,b",{tag}', f' {tag} '):
            again = client.get(path, headers={"If-None-Match": given})
            assert again.status_code == 304 and again.headers["ETag"] == tag and not again.content, (path, given)
        for given in ('"elsewhere"', f'W/"x{tag[1:]}', tag[1:-1], '"*"', ""):
            assert client.get(path, headers={"If-None-Match": given}).status_code == 200, (path, given)
    assert client.get("/v1/milestones/NOPE-1", headers={"If-None-Match": "*"}).status_code == 404


def test_the_load_helper_raises_what_ended_its_asking_thread():
    """A GET that raises while the state is rebuilt (a 500 the test client re-raises in the asking
    thread) fails ``refreshed_under_load`` instead of ending that thread unseen."""
    from types import SimpleNamespace

    from fastapi import FastAPI

    app = FastAPI()
    app.state.live = SimpleNamespace(refreshes=0)

    @app.get("/v1/milestones")
    def broken():
        raise RuntimeError("a GET that fails during a rebuild")

    def rebuilt():
        time.sleep(0.3)
        app.state.live.refreshes += 1

    with TestClient(app) as client, pytest.raises(RuntimeError, match="fails during a rebuild"):
        refreshed_under_load(client, app, rebuilt)


def test_two_workers_refreshing_within_one_period_build_the_same_state(live):
    """Within one ``refresh_seconds`` period two workers serve the same state, which one built."""
    later = live["now"] + timedelta(minutes=20)
    with TestClient(create_app(live["settings"], clock=lambda: later.to_pydatetime())) as other:
        theirs = other.get("/v1/milestones", params={"limit": 500})
        assert other.app.state.live.built == 0  # read as the first worker built it
        history = other.get(f"/v1/milestones/{theirs.json()['items'][0]['milestone_id']}/history")
    ours = live["client"].get("/v1/milestones", params={"limit": 500})
    assert theirs.json() == ours.json() and theirs.headers["ETag"] == ours.headers["ETag"]
    assert history.status_code == 200 and len(history.json()["points"]) > 1  # the history came along


def test_workers_refreshing_at_once_build_the_state_once(live):
    """Four workers (threads here: the lock is the same between processes) refresh a new period
    together: one builds, three wait and read it, and all four hold equal states."""
    later = (live["now"] + timedelta(hours=5)).to_pydatetime()
    models = ModelStore(live["settings"])
    models.refresh()
    workers = [LiveState(live["settings"], models, lambda: later) for _ in range(4)]
    threads = [threading.Thread(target=w.refresh) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [w.error for w in workers] == [None] * 4 and sum(w.built for w in workers) == 1
    states = [w.get() for w in workers]
    assert len({s.version for s in states}) == 1 and all(s.model is models.get("milestone") for s in states)
    assert all(s.milestones == states[0].milestones and s.tickets == states[0].tickets for s in states)
    # a shared file cut short (a disk filled, say) is built anew, not served
    for path in workers[0].shared.rglob("*.pickle"):
        path.write_bytes(path.read_bytes()[:100])
    again = LiveState(live["settings"], models, lambda: later)
    assert again.refresh() and again.built == 1 and again.get().milestones == states[0].milestones


def test_the_state_is_built_in_a_child_process_of_low_priority(live):
    """With ``serving.build_niceness`` a child process at that niceness builds the state, equal to
    the state built in the serving process; a child that died is replaced at the next refresh."""
    later = (live["now"] + timedelta(hours=9)).to_pydatetime()
    models = ModelStore(live["settings"])
    models.refresh()
    s = live["settings"]
    here = LiveState(s.model_copy(update={"serving": s.serving.model_copy(update={"build_niceness": None})}),
                     models, lambda: later)
    assert here.builder is None and here.refresh() and here.built == 1
    child = LiveState(s, models, lambda: later)
    try:
        assert s.serving.build_niceness == 19 and child.refresh() and child.built == 1, child.error
        pid = child.builder.pid
        assert pid != os.getpid() and os.getpriority(os.PRIO_PROCESS, pid) == 19
        ours, theirs = here.get(), child.get()
        assert theirs.version == ours.version and theirs.model is models.get("milestone")
        assert theirs.milestones == ours.milestones and theirs.tickets == ours.tickets
        os.kill(pid, signal.SIGKILL)
        child.clock = lambda: later + timedelta(hours=2)  # a new period: a new state to build
        assert not child.refresh() and "BrokenProcessPool" in child.error  # the last good state serves on
        assert child.get() is theirs
        histories = {p: p.stat().st_mtime_ns for p in (child.shared / "histories").glob("*.pickle")}
        assert child.refresh() and child.built == 2 and child.error is None
        assert child.builder.pid not in (None, pid)  # by a new child
        # from the history coded before: the store has not changed
        assert {p: p.stat().st_mtime_ns for p in (child.shared / "histories").glob("*.pickle")} == histories
        assert child.get().history is theirs.history and len(histories) >= 1
    finally:
        child.stop()


def _running(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_builder_child_ends_with_the_process_that_started_it():
    """A worker that ends outright (killed, crashed) leaves no child process behind."""
    code = ("import os; from slipcast.core.settings import get_settings; from slipcast.live.builder import Builder; "
            "b = Builder(get_settings(), 19); b.start(); print(b.pid, flush=True); os._exit(0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 15
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(pid)


def _gauges(base: str) -> set[str]:
    """The milestones with a slip-probability gauge in the service's metrics."""
    text = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
    return set(re.findall(r'slipcast_milestone_slip_probability\{milestone="([^"]+)"', text))


def test_two_worker_processes_serve_one_state_built_once(live, tmp_path):
    """``slipcast serve --workers 2`` on the store: one worker builds the state, the other reads
    it (the workers' shared metrics count both), and every answer carries the same version; the
    gauges are the open milestones', and a milestone gone from the store loses its gauge."""
    s = live["settings"]
    store = write_tables(live["tables"], tmp_path / "store")
    env = {"SLIPCAST_TRACKING_URI": s.tracking_uri, "SLIPCAST_MODELS_DIR": str(s.models_dir),
           "SLIPCAST_WORK_DIR": str(tmp_path / "work"), "SLIPCAST_SERVING__STORE": str(store),
           "SLIPCAST_SERVING__AS_OF": live["now"].isoformat(), "SLIPCAST_SERVING__RELOAD_SECONDS": "0.5",
           "SLIPCAST_SERVING__LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    with running_service(free_port(), env, workers=2) as base:
        deadline, counts = time.monotonic() + 120, {}
        while sum(counts.values()) < 2 and time.monotonic() < deadline:  # the second worker may still be starting
            time.sleep(0.5)
            text = httpx.get(f"{base}/metrics", timeout=10).text
            counts = {m[0]: float(m[1]) for m in re.findall(r'slipcast_live_states_total\{source="(\w+)"\} (\S+)', text)}
        assert counts == {"built": 1.0, "read": 1.0}, counts
        tags = {httpx.get(f"{base}/v1/milestones", headers={"Connection": "close"}).headers["ETag"] for _ in range(12)}
        assert len(tags) == 1
        items = httpx.get(f"{base}/v1/milestones", params={"limit": 500}).json()["items"]
        scored = {m["milestone_id"] for m in items if m["probability"] is not None}
        assert len(scored) >= 2 and all(_gauges(base) == scored for _ in range(6))  # whichever worker answers
        gone = sorted(scored)[0]
        write_tables(without_milestone(live["tables"], gone), store)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(gone in _gauges(base) for _ in range(6)):
            time.sleep(0.5)
        assert all(_gauges(base) == scored - {gone} for _ in range(6))


def test_without_a_store_the_live_endpoints_say_why(trained):
    with TestClient(create_app(trained["settings"])) as client:
        r = client.get("/v1/milestones")
    assert r.status_code == 503 and "no store configured" in r.json()["detail"]


def test_the_live_endpoints_are_in_the_openapi_document(live):
    paths = live["client"].get("/openapi.json").json()["paths"]
    assert {"/v1/milestones", "/v1/milestones/{milestone_id}", "/v1/milestones/{milestone_id}/history",
            "/v1/projects"} <= set(paths)
    assert np.all([p in paths for p in ("/v1/forecasts", "/v1/model")])
