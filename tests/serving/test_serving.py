"""The forecast API: in-process and as a real uvicorn process on loopback."""

import hashlib
import inspect
import json
import os
import shutil
import threading
import time
import typing
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from slipcast.core.contracts import METADATA_FILE, past_outcomes
from slipcast.core.model_format import MODEL_FILE, ModelRefused
from slipcast.features.milestone_features import FACTORS, MILESTONE_FEATURES, TWINS
from slipcast.scoring.model_store import ModelStore, load_export
from slipcast.serving import dependencies
from slipcast.serving.app import create_app
from slipcast.tools.requests import as_columns, request_for
from slipcast.tools.service import free_port, running_service
from slipcast.training.run import train

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def env(trained):
    sets, tables = trained["sets"], trained["tables"]
    m = sets["milestone"]
    outcomes = past_outcomes(m)
    late = (m["remaining_count"] >= 3) & (m["history_weeks"] >= 4) & (m["span_elapsed"] >= 0.7)  # the model serves late
    row = m[late].sort_values("as_of").iloc[-1]
    body = request_for(tables, row["milestone_id"], row["as_of"], outcomes)
    return {**trained, "body": body, "row": row}


@pytest.fixture(scope="module")
def client(env):
    with TestClient(create_app(env["settings"])) as c:
        yield c


def test_forecast_round_trip_matches_offline_features(client, env):
    r = client.post("/v1/forecasts", json=env["body"])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "ok" and 0 <= out["probability"] <= 1
    assert out["risk_band"] in ("low", "medium", "high")
    assert out["model"]["version"] == "1" and out["model"]["source"] == "registry"
    assert out["model"]["run_id"] == env["result"]["milestone"]["run_id"]
    assert 1 <= len(out["drivers"]) <= 5
    assert all(d["direction"] in ("raises risk", "lowers risk") for d in out["drivers"])
    # the same features code online as offline: the API's inputs equal the training row
    row = env["row"]
    for name in MILESTONE_FEATURES:
        expected, got = row[name], out["features"][name]
        if isinstance(expected, float) and pd.isna(expected):
            assert got is None, name
        elif isinstance(expected, str):
            assert got == expected, name
        else:
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), name


def _scored(loaded, row: dict, typical: dict, names=()) -> float:
    """The model's probability for ``row`` with the features ``names`` at their typical values."""
    return float(loaded.predict(loaded.frame(pd.DataFrame([{**row, **{n: typical.get(n) for n in names}}])))[0])


def test_factors_and_their_features_are_the_changes_typical_values_make(client, env):
    """A factor's effect is the forecast minus the model's probability with all of its features
    at the typical milestone's values, scored here row by row; a feature's effect under it is the
    same with it (and its twin) alone; the effects and the remainder add up to the forecast minus
    the typical milestone's; a feature and its twin never show opposite signs."""
    out = client.post("/v1/forecasts", json=env["body"]).json()
    store = ModelStore(env["settings"], targets=("milestone",))
    store.refresh()
    loaded = store.get("milestone")
    typical = loaded.metadata["typical"]
    assert set(typical) == set(loaded.features)
    row = {name: out["features"][name] for name in loaded.features}
    p = _scored(loaded, row, typical)
    assert round(p, 4) == out["probability"]
    assert out["typical_probability"] == round(_scored(loaded, row, typical, loaded.features), 4)
    assert out["factors"] and out["reason"]
    for factor in out["factors"]:
        names = FACTORS[factor["factor"]]
        assert factor["effect"] == round(p - _scored(loaded, row, typical, names), 4)
        assert factor["direction"] == ("raises risk" if factor["effect"] >= 0 else "lowers risk")
        assert factor["sentence"] in out["reason"] or abs(factor["effect"]) < 0.005
        units = {tuple(t for t in pair if t in names) for pair in TWINS if pair[0] in names}
        units |= {(n,) for n in names if not any(n in pair for pair in TWINS)}
        effects = {n: round(p - _scored(loaded, row, typical, unit), 4) for unit in units for n in unit}
        for d in factor["drivers"]:
            assert d["effect"] == (factor["effect"] if len(units) == 1 else effects[d["feature"]]), d
    total = sum(f["effect"] for f in out["factors"]) + out["remainder"]
    assert total == pytest.approx(out["probability"] - out["typical_probability"], abs=5e-4)
    shown = {d["feature"]: d["effect"] for f in out["factors"] for d in f["drivers"]}
    for pair in TWINS:
        if all(n in shown for n in pair):
            assert len({shown[n] for n in pair}) == 1, pair
    assert [d["effect"] for d in out["drivers"]] == sorted((d["effect"] for d in out["drivers"]), key=abs, reverse=True)


def test_the_clock_is_injected_and_answers_a_request_without_as_of(env):
    body = {k: v for k, v in env["body"].items() if k != "as_of"}
    then = pd.Timestamp(env["body"]["as_of"]).to_pydatetime()
    with TestClient(create_app(env["settings"], clock=lambda: then)) as c:
        out = c.post("/v1/forecasts", json=body).json()
        pinned = c.post("/v1/forecasts", json=env["body"]).json()
    assert pd.Timestamp(out["as_of"]) == pd.Timestamp(then)
    assert out["probability"] == pinned["probability"] and out["features"] == pinned["features"]


@pytest.mark.parametrize("where, value", [
    (("tickets", 0, "story_points"), "NaN"), (("tickets", 0, "story_points"), "Infinity"),
    (("tickets", 0, "story_points"), "-Infinity"), (("explain",), "NaN"), (("as_of",), "Infinity"),
    (("milestone", "milestone_id"), "NaN"), (("tickets", 0, "ticket_id"), '"\\ud800"')])
def test_values_json_cannot_echo_get_a_422_not_a_500(client, env, where, value):
    body = json.loads(json.dumps(env["body"]))
    holder = body
    for key in where[:-1]:
        holder = holder[key]
    holder[where[-1]] = "PLACEHOLDER"
    raw = json.dumps(body).replace('"PLACEHOLDER"', value.replace("\\\\", "\\"))
    r = client.post("/v1/forecasts", content=raw.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(tuple(e["loc"][1:]) == where for e in r.json()["detail"]), r.json()


def test_a_body_sent_without_a_json_content_type_is_refused_without_echoing_it(client, env):
    raw = json.dumps(env["body"]).encode()
    r = client.post("/v1/forecasts", content=raw, headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
    assert len(r.content) < 500 < len(raw)  # the error, not the body echoed back


def test_batch_equals_singles(client, env):
    body = env["body"]
    other = json.loads(json.dumps(body))
    other["as_of"] = (pd.Timestamp(body["as_of"]) - pd.Timedelta(days=3)).isoformat()
    other["tickets"] = [t for t in other["tickets"] if t["created_at"] <= other["as_of"]]
    other["events"] = [e for e in other["events"] if e["at"] <= other["as_of"]]
    batch = client.post("/v1/forecasts/batch", json={"items": [body, other]})
    assert batch.status_code == 200, batch.text
    singles = [client.post("/v1/forecasts", json=b).json() for b in (body, other)]
    for got, single in zip(batch.json()["forecasts"], singles):
        assert got["probability"] == single["probability"]
        assert got["features"] == single["features"]


def test_what_if_descoping_and_more_time_lower_risk(client, env):
    body = env["body"]
    mid = body["milestone"]["milestone_id"]
    open_ = [t["ticket_id"] for t in body["tickets"] if t["milestone_id"] == mid and t["status"] != "done"]
    later = (pd.Timestamp(body["milestone"]["due_at"]) + pd.Timedelta(days=60)).isoformat()
    r = client.post("/v1/forecasts/what-if", json={"forecast": body, "change": {"remove_tickets": open_, "due_at": later}})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["after"]["features"]["remaining_count"] == 0
    assert out["after"]["features"]["due_replans"] == out["before"]["features"]["due_replans"] + 1
    assert out["after"]["probability"] < out["before"]["probability"]
    assert out["delta"] == pytest.approx(out["after"]["probability"] - out["before"]["probability"], abs=1e-4)
    bad = client.post("/v1/forecasts/what-if", json={"forecast": body, "change": {"remove_tickets": ["NOPE-1"]}})
    assert bad.status_code == 422 and "NOPE-1" in bad.text


def test_ticket_forecasts(client, env):
    r = client.post("/v1/forecasts/tickets", json=env["body"])
    assert r.status_code == 200, r.text
    tickets = r.json()["tickets"]
    assert len(tickets) == env["row"]["remaining_count"]
    assert all(0 <= t["probability"] <= 1 if t["probability"] is not None else t["basis"] == "withheld" and t["reason"]
               for t in tickets)


def test_insufficient_history_is_a_state_not_a_number(client, env):
    body = json.loads(json.dumps(env["body"]))
    mid = body["milestone"]["milestone_id"]
    body["tickets"] = [dict(t, status="todo", resolved_at=None) for t in body["tickets"] if t["milestone_id"] == mid]
    body["events"] = []
    body["past_milestones"] = []
    out = client.post("/v1/forecasts", json=body).json()
    assert out["status"] == "insufficient_history" and out["probability"] is None
    assert "weeks of finished work" in out["message"]


def test_tickets_without_events_read_as_their_fields_imply(client):
    """The light payload (current ticket state, no events): features worked out by hand."""
    day = "2024-{}T00:00:00+00:00".format
    ticket = {"project": "P", "created_at": day("01-01"), "status": "done", "milestone_id": None}
    history = [dict(ticket, ticket_id=f"H{i}", resolved_at=day(d))  # one finished a week, from Jan 20
               for i, d in enumerate(("01-20", "01-27", "02-03", "02-10", "02-17", "02-24"))]
    scope = [
        dict(ticket, ticket_id="T1", created_at=day("02-20"), resolved_at=day("03-10"), story_points=3,
             assignee="ann", milestone_id="M"),
        dict(ticket, ticket_id="T2", created_at=day("03-05"), status="in_progress", story_points=5,
             assignee="bob", priority="High", milestone_id="M"),
        dict(ticket, ticket_id="T3", created_at=day("02-25"), status="todo", type="Bug", milestone_id="M"),
    ]
    body = {"milestone": {"milestone_id": "M", "project": "P", "start_at": day("03-01"), "due_at": day("03-29")},
            "tickets": history + scope, "as_of": day("03-15"), "explain": False}
    r = client.post("/v1/forecasts", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "ok"
    expected = {
        "days_left": 14.0, "span_elapsed": 0.5, "scope_count": 3.0, "scope_points": 8.0, "unestimated_share": 1 / 3,
        "done_share": 1 / 3, "done_points_share": 3 / 8, "remaining_count": 2.0, "remaining_points": 5.0,
        "in_progress_share": 1 / 3,
        # T1 and T3 joined when the milestone started, T2 when it was created (Mar 5)
        "scope_added_since_start": 1.0, "scope_added_7d": 0.0, "scope_added_14d": 1.0,
        # finished per week over the 8 weeks before Mar 15: T1, none, then H6 back to H1
        "throughput_per_week": 7 / 8, "required_per_week": 1.0, "required_vs_observed": 1 / (7 / 8),
        "history_weeks": 55 / 7,
        "team_size": 2.0, "unassigned_open_share": 0.5, "open_age_mean_days": (10 + 19) / 2,
        "bug_share": 1 / 3, "high_priority_share": 1 / 3,
        "reopened_count": 0.0, "reassignments": 0.0, "due_replans": 0.0, "past_milestones_known": 0.0,
    }
    assert {k: out["features"][k] for k in expected} == pytest.approx(expected)
    assert out["features"]["past_slip_rate"] is None


def test_past_due(client, env):
    body = dict(env["body"], as_of=(pd.Timestamp(env["body"]["milestone"]["due_at"]) + pd.Timedelta(days=1)).isoformat())
    out = client.post("/v1/forecasts", json=body).json()
    assert out["status"] == "past_due" and out["probability"] is None


@pytest.mark.parametrize("mutate,where", [
    (lambda b: b["milestone"].update(due_at="2024-01-01T00:00:00"), ["milestone", "due_at"]),
    (lambda b: b["tickets"][0].update(status="sleeping"), ["tickets", 0, "status"]),
    (lambda b: b["milestone"].update(due_at=b["milestone"]["start_at"]), ["milestone", "due_at"]),
    (lambda b: b["tickets"].append(dict(b["tickets"][0])), ["tickets"]),
    (lambda b: b["tickets"][0].pop("created_at"), ["tickets", 0, "created_at"]),
    (lambda b: b.update(as_of="2000-01-01T00:00:00+00:00"), ["as_of"]),
    (lambda b: b["tickets"][0].update(story_points=-3), ["tickets", 0, "story_points"]),
    # event values the feature code reads: each would have reached its parser (a 500) unchecked
    (lambda b: b["events"].append({"milestone_id": b["milestone"]["milestone_id"], "at": b["milestone"]["start_at"],
                                   "field": "due_at", "to_value": "2024-W01-1"}), ["events", -1, "to_value"]),
    (lambda b: b["events"].append({"milestone_id": b["milestone"]["milestone_id"], "at": b["milestone"]["start_at"],
                                   "field": "due_at", "to_value": "now"}), ["events", -1, "to_value"]),
    (lambda b: b["events"].append({"ticket_id": b["tickets"][0]["ticket_id"], "at": b["tickets"][0]["created_at"],
                                   "field": "story_points", "to_value": "1_000"}), ["events", -1, "to_value"]),
    (lambda b: b["events"].append({"ticket_id": b["tickets"][0]["ticket_id"], "at": b["tickets"][0]["created_at"],
                                   "field": "story_points", "to_value": "inf"}), ["events", -1, "to_value"]),
    (lambda b: b["links"].extend([{"from_ticket": b["tickets"][0]["ticket_id"], "to_ticket": b["tickets"][1]["ticket_id"],
                                   "kind": "blocks"}] * 2), ["links", -1]),
    # every time bounded like the typed fields: a due date in the year 9999 once cost seconds of CPU
    (lambda b: b["events"].append({"milestone_id": b["milestone"]["milestone_id"], "at": b["milestone"]["start_at"],
                                   "field": "due_at", "to_value": "9999-12-31T00:00:00Z"}), ["events", -1, "to_value"]),
    (lambda b: b["milestone"].update(due_at="9999-12-31T00:00:00Z"), ["milestone", "due_at"]),
])
def test_bad_input_is_a_4xx_naming_the_field(client, env, mutate, where):
    body = json.loads(json.dumps(env["body"]))
    mutate(body)
    # -1: the last of that list
    where = [len(body[where[i - 1]]) - 1 if w == -1 else w for i, w in enumerate(where)]
    r = client.post("/v1/forecasts", json=body)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(loc[1:1 + len(where)] == where for loc in locs), locs


def test_a_batch_refuses_its_first_broken_item_by_its_place(client, env):
    """The values the feature code reads are checked for the whole batch at once; the error
    still names the first broken item, and in it the first broken check."""
    unreadable = json.loads(json.dumps(env["body"]))
    unreadable["events"].append({"milestone_id": unreadable["milestone"]["milestone_id"], "field": "due_at",
                                 "at": unreadable["milestone"]["start_at"], "to_value": "soon"})
    duplicated = json.loads(json.dumps(env["body"]))
    duplicated["tickets"].append(dict(duplicated["tickets"][0]))
    last = len(unreadable["events"]) - 1
    for items, where in (([env["body"], env["body"], unreadable], [2, "events", last, "to_value"]),
                         ([env["body"], duplicated, unreadable], [1, "tickets"])):
        r = client.post("/v1/forecasts/batch", json={"items": items})
        assert r.status_code == 422, r.text
        locs = [e["loc"] for e in r.json()["detail"]]
        assert any(loc[:2 + len(where)] == ["body", "items", *where] for loc in locs), locs


def test_operations_endpoints(client, env):
    assert client.get("/healthz").json() == {"status": "ok", "worker": os.getpid()}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["models"]["milestone"] == "1"
    info = client.get("/v1/model").json()
    assert info["model"]["name"] == "slipcast-milestone" and "brier" in info["metrics"]
    assert "base_rate" in info["baselines"]
    client.post("/v1/forecasts", json=env["body"])
    metrics = client.get("/metrics").text
    assert 'slipcast_requests_total{method="POST",path="/v1/forecasts",status="200"}' in metrics
    assert "slipcast_forecast_probability_bucket" in metrics
    assert client.get("/openapi.json").json()["info"]["title"] == "Slipcast"


def test_api_key_auth_and_body_limit(env):
    s = env["settings"]
    locked = s.model_copy(update={"serving": s.serving.model_copy(update={"api_keys": ["k-123"], "max_body_bytes": 200_000})})
    with TestClient(create_app(locked)) as c:
        assert c.post("/v1/forecasts", json=env["body"]).status_code == 401
        assert c.post("/v1/forecasts", json=env["body"], headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/forecasts", json=env["body"], headers={"X-API-Key": "k-123"}).status_code == 200
        assert c.get("/healthz").status_code == 200  # probes need no key
        big = {**env["body"], "tickets": env["body"]["tickets"] * 60}
        assert c.post("/v1/forecasts", json=big, headers={"X-API-Key": "k-123"}).status_code == 413


def test_falls_back_to_the_export_when_the_registry_is_down(env, tmp_path):
    s = env["settings"]
    for uri in (f"sqlite:///{tmp_path / 'gone' / 'mlflow.db'}", "http://127.0.0.1:9"):
        down = s.model_copy(update={"tracking_uri": uri})
        store = ModelStore(down)
        started = time.perf_counter()
        store.refresh()
        assert time.perf_counter() - started < 30
        loaded = store.get("milestone")
        assert loaded is not None and loaded.source == "export" and loaded.version == "1"


def test_corrupted_artifact_is_refused_and_last_good_keeps_serving(env, tmp_path):
    s = env["settings"]
    models = tmp_path / "models"
    shutil.copytree(s.models_dir, models)
    local = s.model_copy(update={"models_dir": models,
                                 "serving": s.serving.model_copy(update={"model_source": "export"})})
    store = ModelStore(local)
    store.refresh()
    good = store.get("milestone")
    assert good.source == "export"
    # a new export arrives whose model file does not match its recorded hash
    meta_path = models / "milestone" / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["model_version"] = "99"
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    store.refresh()
    assert store.get("milestone") is good
    assert "does not match" in store.errors["milestone"]
    with pytest.raises(ModelRefused):
        load_export(models, "milestone")
    # a truncated model file with a matching hash fails to load and is refused as well
    (models / "milestone" / MODEL_FILE).write_bytes(b"not a model")
    meta["sha256"] = hashlib.sha256(b"not a model").hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelRefused, match="cannot be loaded"):
        load_export(models, "milestone")


class _Planted:
    """Stands for any object a planted file would rebuild to run code: skops must refuse it."""

    def __reduce__(self):
        return (print, ("planted code ran",))


def test_a_planted_model_with_a_matching_hash_runs_no_code(env, tmp_path):
    import skops.io
    from sklearn.dummy import DummyClassifier

    models = tmp_path / "models"
    shutil.copytree(env["settings"].models_dir, models)
    planted = DummyClassifier().fit([[0], [1]], [0, 1])
    planted.payload = _Planted()
    path = models / "milestone" / MODEL_FILE
    skops.io.dump(planted, path)
    meta_path = models / "milestone" / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()  # whoever writes one writes both
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelRefused, match="does not trust"):
        load_export(models, "milestone")


@pytest.fixture()
def server(env):
    s = env["settings"]
    with running_service(free_port(), {"SLIPCAST_TRACKING_URI": s.tracking_uri, "SLIPCAST_MODELS_DIR": str(s.models_dir),
                                       "SLIPCAST_WORK_DIR": str(s.work_dir), "SLIPCAST_SERVING__RELOAD_SECONDS": "0.5",
                                       "MLFLOW_TRACKING_URI": None}) as base:
        yield base


@pytest.mark.slow
def test_real_server_round_trip_and_hot_swap_under_load(server, env):
    s = env["settings"]
    body = env["body"]
    first = httpx.post(f"{server}/v1/forecasts", json=body, timeout=30)
    assert first.status_code == 200, first.text
    assert first.json()["model"]["version"] == "1" and first.json()["model"]["source"] == "registry"
    # a second version is registered (not promoted), then promoted while requests flow
    out = train(s, features_dir=env["root"] / "features", targets=["milestone"], candidates=["base_rate"])
    new_version = out["milestone"]["version"]
    client = MlflowClient(s.resolved_uri(), s.resolved_uri())
    seen, failures, stop = set(), [], threading.Event()

    def hammer():
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{server}/v1/forecasts", json=body)
                if r.status_code != 200:
                    failures.append(r.status_code)
                else:
                    seen.add(r.json()["model"]["version"])

    with ThreadPoolExecutor(4) as pool:
        workers = [pool.submit(hammer) for _ in range(4)]
        try:
            time.sleep(1.0)
            client.set_registered_model_alias("slipcast-milestone", "champion", new_version)
            deadline = time.time() + 60
            while new_version not in seen and time.time() < deadline and not any(w.done() for w in workers):
                time.sleep(0.2)
            time.sleep(0.5)
        finally:
            stop.set()
            client.set_registered_model_alias("slipcast-milestone", "champion", "1")
        for w in workers:
            w.result()  # a dropped connection or a timeout in a worker fails the test here
    assert failures == []
    assert {"1", new_version} <= seen


def _without_first_ticket(body: dict) -> dict:
    """The same milestone with its first committed ticket (and that ticket's events) gone."""
    gone = next(t["ticket_id"] for t in body["tickets"] if t["milestone_id"] == body["milestone"]["milestone_id"])
    return {**body, "tickets": [t for t in body["tickets"] if t["ticket_id"] != gone],
            "events": [e for e in body["events"] if e["ticket_id"] != gone],
            "links": [x for x in body["links"] if gone not in (x["from_ticket"], x["to_ticket"])]}


def test_columns_score_each_milestone_as_the_items_batch_does(client, env):
    """The same states sent as columns (one copy of each table) and as items: the same forecasts,
    features and drivers, in the order asked."""
    items = [env["body"], _without_first_ticket(env["body"])]
    batch = client.post("/v1/forecasts/batch", json={"items": items})
    columns = client.post("/v1/forecasts/tables", json=as_columns(items))
    assert batch.status_code == 200 and columns.status_code == 200, columns.text
    by_items, by_columns = batch.json()["forecasts"], columns.json()["forecasts"]
    assert [f["milestone_id"] for f in by_columns] == [f"{i}:{env['body']['milestone']['milestone_id']}" for i in (0, 1)]
    assert by_items[0]["features"] != by_items[1]["features"]  # two different states
    for a, b in zip(by_items, by_columns):
        assert (a["probability"], a["status"], a["features"], a["drivers"]) == (
            b["probability"], b["status"], b["features"], b["drivers"])


def test_columns_forecast_every_milestone_open_at_as_of_by_default(client, env):
    body = as_columns([env["body"]])
    del body["milestone_ids"]
    m = body["milestones"]
    as_of = pd.Timestamp(body["as_of"])
    for name, start, completed in (("done", -60, -1), ("later", 1, None)):  # completed by as_of; not started
        m["milestone_id"].append(name)
        m["project"].append(m["project"][0])
        m["start_at"].append((as_of + pd.Timedelta(days=start)).isoformat())
        m["due_at"].append((as_of + pd.Timedelta(days=30)).isoformat())
        m.setdefault("completed_at", [None])
        m["completed_at"].append(None if completed is None else (as_of + pd.Timedelta(days=completed)).isoformat())
        for column in ("name", "kind"):
            m[column].append(None)
    r = client.post("/v1/forecasts/tables", json=body)
    assert r.status_code == 200, r.text
    assert [f["milestone_id"] for f in r.json()["forecasts"]] == [env["body"]["milestone"]["milestone_id"]]


@pytest.mark.parametrize("mutate,where", [
    (lambda b: b["events"]["at"].__setitem__(3, "2024-01-01T00:00:00"), ["events", "at", 3]),  # no UTC offset
    (lambda b: b["events"]["at"].__setitem__(2, "9999-12-31T00:00:00Z"), ["events", "at", 2]),
    (lambda b: b["tickets"]["created_at"].__setitem__(1, 20240101), ["tickets", "created_at", 1]),
    (lambda b: b["tickets"]["created_at"].pop(), ["tickets"]),  # columns of unequal length
    (lambda b: b["tickets"]["ticket_id"].__setitem__(2, b["tickets"]["ticket_id"][0]), ["tickets", "ticket_id", 2]),
    (lambda b: b["tickets"]["created_at"].__setitem__(4, (pd.Timestamp(b["as_of"]) + pd.Timedelta(hours=1)).isoformat()),
     ["tickets", "created_at", 4]),  # after as_of
    (lambda b: b["milestones"]["due_at"].__setitem__(0, b["milestones"]["start_at"][0]), ["milestones", "due_at", 0]),
    (lambda b: b.update(milestone_ids=["nowhere"]), ["milestone_ids", 0]),
    (lambda b: b.update(as_of="2000-01-01T00:00:00+00:00"), ["milestone_ids", 0]),  # before the milestone started
    (lambda b: [b["events"][c].append(v) for c, v in (("ticket_id", b["tickets"]["ticket_id"][0]), ("at", b["as_of"]),
                ("field", "story_points"), ("from_value", None), ("to_value", "lots"), ("milestone_id", None))],
     ["events", "to_value", -1]),
])
def test_columns_refuse_a_bad_value_naming_table_column_and_row(client, env, mutate, where):
    body = as_columns([env["body"]])
    mutate(body)
    where = [len(body["events"]["at"]) - 1 if w == -1 else w for w in where]
    r = client.post("/v1/forecasts/tables", json=body)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(loc[1:1 + len(where)] == where for loc in locs), locs
    assert len(r.content) < 2_000  # the error, not the table echoed back


def test_columns_body_read_in_one_pass_is_documented_and_refused_as_fastapi_would(client, env):
    """``POST /v1/forecasts/tables`` reads its body with pydantic's JSON parser (``JsonBody``): the
    OpenAPI document still describes it, and bad JSON is refused without echoing the body."""
    doc = client.get("/openapi.json").json()
    ref = doc["paths"]["/v1/forecasts/tables"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = doc["components"]["schemas"]
    tables = schemas[ref.rsplit("/", 1)[-1]]
    assert {"milestones", "tickets", "events"} <= set(tables["properties"])
    assert tables["properties"]["milestones"]["$ref"].rsplit("/", 1)[-1] in schemas  # its parts resolve too
    raw = json.dumps(as_columns([env["body"]]))
    r = client.post("/v1/forecasts/tables", content=raw[:-40], headers=JSON)  # cut short
    assert r.status_code == 422 and [e["type"] for e in r.json()["detail"]] == ["json_invalid"]
    assert r.json()["detail"][0]["loc"][0] == "body" and len(r.content) < 500


def test_a_body_read_in_one_pass_is_refused_as_fastapi_refuses_its_own(client, env):
    """``POST /v1/forecasts`` reads its body with ``JsonBody``, ``POST /v1/forecasts/tickets`` the
    same model through FastAPI: a body either refuses gets the same errors from both."""
    raw = json.dumps(env["body"])
    surrogate = json.dumps({**env["body"], "tickets": [{**env["body"]["tickets"][0], "ticket_id": "PLACEHOLDER"}]})
    bodies = [
        (raw[:-40], JSON), ("not json", JSON), ("", JSON), ("[1, 2]", JSON), (raw, {"Content-Type": "text/plain"}),
        (raw, {}), (json.dumps({k: v for k, v in env["body"].items() if k != "milestone"}), JSON),
        (surrogate.replace('"PLACEHOLDER"', '"\\ud800"'), JSON), (b"\x80", JSON),  # the last not UTF-8
    ]
    for body, headers in bodies:
        content = body if isinstance(body, bytes) else body.encode()
        ours, fastapi = (client.post(path, content=content, headers=headers)
                         for path in ("/v1/forecasts", "/v1/forecasts/tickets"))
        assert ours.status_code == fastapi.status_code and ours.status_code in (400, 422), (body[:80], ours.text[:300])
        if ours.status_code == 400:  # not UTF-8 text
            assert ours.json() == fastapi.json()
            continue
        assert ([(e["type"], e["loc"]) for e in ours.json()["detail"]]
                == [(e["type"], e["loc"]) for e in fastapi.json()["detail"]]), body[:80]
    paths = client.get("/openapi.json").json()["paths"]  # and both are documented alike
    ours_doc, fastapi_doc = paths["/v1/forecasts"]["post"], paths["/v1/forecasts/tickets"]["post"]
    assert ours_doc["requestBody"] == fastapi_doc["requestBody"]
    assert ours_doc["responses"]["422"] == fastapi_doc["responses"]["422"]


def test_a_batch_is_limited_by_its_rows_not_its_count_alone(env):
    s = env["settings"]
    rows = len(env["body"]["tickets"]) + len(env["body"]["events"]) + len(env["body"]["links"])
    tight = s.model_copy(update={"serving": s.serving.model_copy(update={"max_batch_rows": 2 * rows - 1})})
    with TestClient(create_app(tight)) as c:
        assert c.post("/v1/forecasts/batch", json={"items": [env["body"]]}).status_code == 200
        r = c.post("/v1/forecasts/batch", json={"items": [env["body"], env["body"]]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "items"], r.text


def test_a_far_due_date_is_simulated_up_to_the_horizon_and_said_so(client, env):
    body = json.loads(json.dumps(env["body"]))
    far = (pd.Timestamp(body["as_of"]) + pd.Timedelta(weeks=5 * 52)).isoformat()
    body["milestone"]["due_at"] = far
    body["events"] = [e for e in body["events"] if e["field"] != "due_at"]
    out = client.post("/v1/forecasts", json=body).json()
    assert out["status"] == "ok" and "Monte Carlo horizon" in out["message"]
    at_horizon = json.loads(json.dumps(body))
    horizon = env["settings"].features.monte_carlo_max_weeks
    at_horizon["milestone"]["due_at"] = (pd.Timestamp(body["as_of"]) + pd.Timedelta(weeks=horizon)).isoformat()
    capped = client.post("/v1/forecasts", json=at_horizon).json()
    assert out["features"]["monte_carlo_on_time"] == capped["features"]["monte_carlo_on_time"]


def test_metrics_follow_the_api_key_and_epochs_are_not_times(env):
    s = env["settings"]
    locked = s.model_copy(update={"serving": s.serving.model_copy(update={"api_keys": ["k-123"]})})
    with TestClient(create_app(locked)) as c:
        assert c.get("/metrics").status_code == 401  # its histogram tells what was forecast
        assert c.get("/metrics", headers={"X-API-Key": "k-123"}).status_code == 200
        body = json.loads(json.dumps(env["body"]))
        body["as_of"] = 1_700_000_000
        r = c.post("/v1/forecasts", json=body, headers={"X-API-Key": "k-123"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "as_of"], r.text


@pytest.mark.slow
def test_a_chunked_body_over_the_limit_gets_413(server):
    def chunks():
        for _ in range(6):
            yield b" " * 1_000_000  # 6 MB, no Content-Length: sent chunked

    r = httpx.post(f"{server}/v1/forecasts", content=chunks(), headers={"Content-Type": "application/json"},
                   timeout=30)
    assert r.status_code == 413, r.text


def test_where_the_model_does_not_beat_the_base_rate_the_base_rate_is_served_and_said(client, env):
    from dataclasses import replace

    from slipcast.core.contracts import horizon_of
    from slipcast.serving.request_forecasts import forecast_many
    from slipcast.serving.schemas import ForecastRequest

    loaded = client.app.state.store.get("milestone")
    req = ForecastRequest.model_validate(env["body"])
    (as_trained,) = forecast_many([req], loaded, env["settings"], req.as_of)
    horizon = horizon_of(as_trained.features["span_elapsed"])
    guard = {h: {**g, "guarded": h == horizon} for h, g in loaded.metadata["guard"].items()}
    guarded = replace(loaded, metadata={**loaded.metadata, "guard": guard, "project_guard": {}})
    (answer,) = forecast_many([req], guarded, env["settings"], req.as_of)
    assert answer.basis == "base_rate" and answer.drivers == []
    assert answer.probability == round(loaded.metadata["base_rate_served"], 4)
    assert f"base rate ({loaded.metadata['base_rate_basis']})" in answer.message
    assert "does not beat the base rate" in answer.message and f"{as_trained.probability:.4f}" in answer.message
    served = client.post("/v1/forecasts", json=env["body"]).json()
    cell = loaded.metadata["project_guard"].get(req.milestone.project, {}).get(horizon, loaded.metadata["guard"][horizon])
    assert served["basis"] == ("base_rate" if cell["guarded"] else "model")
    assert client.get("/v1/model").json()["guard"] == loaded.metadata["guard"]


def test_a_projects_own_guard_cell_decides_for_its_milestones(client, env):
    from dataclasses import replace

    from slipcast.core.contracts import horizon_of
    from slipcast.serving.request_forecasts import forecast_many
    from slipcast.serving.schemas import ForecastRequest

    loaded = client.app.state.store.get("milestone")
    req = ForecastRequest.model_validate(env["body"])
    (as_trained,) = forecast_many([req], loaded, env["settings"], req.as_of)
    horizon = horizon_of(as_trained.features["span_elapsed"])
    open_pooled = {h: {**g, "guarded": False} for h, g in loaded.metadata["guard"].items()}
    cell = {**open_pooled[horizon], "guarded": True, "project": req.milestone.project}
    mine = replace(loaded, metadata={**loaded.metadata, "guard": open_pooled,
                                     "project_guard": {req.milestone.project: {horizon: cell}}})
    (answer,) = forecast_many([req], mine, env["settings"], req.as_of)
    assert answer.basis == "base_rate" and f"for {req.milestone.project}" in answer.message
    other = replace(loaded, metadata={**mine.metadata, "project_guard": {"ANOTHER": {horizon: cell}}})
    (answer,) = forecast_many([req], other, env["settings"], req.as_of)
    assert answer.basis == "model"  # another team's cell does not speak for this one
    served_open = {**open_pooled[horizon], "project": req.milestone.project}
    trusted = replace(loaded, metadata={**loaded.metadata, "guard": {h: {**g, "guarded": True}
                                                                     for h, g in loaded.metadata["guard"].items()},
                                        "project_guard": {req.milestone.project: {horizon: served_open}}})
    (answer,) = forecast_many([req], trusted, env["settings"], req.as_of)
    assert answer.basis == "model"  # the team's own record clears it where the pool is guarded
    assert client.get("/v1/model").json()["project_guard"] == loaded.metadata.get("project_guard", {})


def test_ticket_forecasts_follow_the_ticket_models_guard(client, env):
    from dataclasses import replace

    from slipcast.serving.request_forecasts import forecast_tickets
    from slipcast.serving.schemas import ForecastRequest

    trained = client.app.state.store.get("ticket")
    req = ForecastRequest.model_validate(env["body"])
    held = forecast_tickets(req, trained, env["settings"], req.as_of)  # withheld where training found it not honest
    assert {t.basis for t in held.tickets} <= {"model", "base_rate", "withheld"}
    loaded = replace(trained, metadata={**trained.metadata, "withheld": {}})  # the guard alone
    as_trained = forecast_tickets(req, loaded, env["settings"], req.as_of)
    assert as_trained.tickets and {t.basis for t in as_trained.tickets} <= {"model", "base_rate"}
    guarded = replace(loaded, metadata={**loaded.metadata, "project_guard": {},
                                        "guard": {h: {**g, "guarded": True} for h, g in loaded.metadata["guard"].items()}})
    answer = forecast_tickets(req, guarded, env["settings"], req.as_of)
    assert [t.ticket_id for t in answer.tickets] == [t.ticket_id for t in as_trained.tickets]
    assert {(t.basis, t.probability) for t in answer.tickets} == {("base_rate", round(loaded.metadata["base_rate_served"], 4))}


def test_every_request_dependency_runs_on_the_event_loop():
    """A plain-function dependency is handed to the thread pool on every request that uses it
    (docs/architecture.md, "Live state"); the read path's throughput depends on there being none."""
    aliases = [v for v in vars(dependencies).values() if typing.get_origin(v) is typing.Annotated]
    used = {meta.dependency for alias in aliases for meta in alias.__metadata__} | {dependencies.authorized}
    assert {f.__name__ for f in used} == {"authorized", "portfolio", "settings", "store", "metrics", "now"}
    assert [f.__name__ for f in used if not inspect.iscoroutinefunction(f)] == []
