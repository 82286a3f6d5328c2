"""Benchmark stages, each run in its own process so its peak memory is its own.

Each prints one JSON line of figures. ``benchmarks.run`` calls them in order and prints the
table; run one alone with ``python -m benchmarks.stages STAGE [ARGS]``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.core.settings import get_settings

WORK = get_settings().resolve(get_settings().work_dir) / "bench"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frame_mb(*frames: pd.DataFrame) -> float:
    return sum(f.memory_usage(deep=True).sum() for f in frames) / 2**20


def stage_import() -> dict:
    """Duraspace Jira JSON import throughput, against plain json.load of the same files."""
    from slipcast.ingest.importers import run_import

    src = get_settings().resolve(get_settings().evaluation.shared_data_dir) / "jira-duraspace"
    if not src.is_dir():
        return {"skipped": f"{src} absent"}
    def parse_all() -> float:
        started = time.perf_counter()
        for path in sorted(src.glob("*.json")):
            json.loads(path.read_bytes().decode("utf-8", "replace"))
        return time.perf_counter() - started

    parse_all()  # the files in the page cache for both timings
    parse_only = parse_all()
    started = time.perf_counter()
    report = run_import("jira-json", src, WORK / "duraspace", get_settings())
    seconds = time.perf_counter() - started
    records = sum(report.read.values())
    return {"records": records, "seconds": round(seconds, 2), "records_per_s": round(records / seconds),
            "vs_json_load": round(seconds / parse_only, 1), "peak_mb": round(peak_mb())}


def stage_generate(tickets: int, projects: int) -> dict:
    from slipcast.ingest.simulator import SimulationConfig, generate
    from slipcast.ingest.tables import write_tables

    started = time.perf_counter()
    tables = generate(SimulationConfig(projects=projects, tickets=tickets, seed=1))
    seconds = time.perf_counter() - started
    write_tables(tables, WORK / "history")
    return {"tickets": len(tables.tickets), "events": len(tables.events), "milestones": len(tables.milestones),
            "seconds": round(seconds, 1), "tickets_per_s": round(len(tables.tickets) / seconds),
            "events_per_s": round(len(tables.events) / seconds), "peak_mb": round(peak_mb())}


def stage_features() -> dict:
    """Training sets from the generated history, written bucket by bucket as `slipcast features`
    writes them, against one sorted group-by pass over the events."""
    from slipcast.features.buckets import bucket_count
    from slipcast.features.pipeline import write_training_sets
    from slipcast.ingest.tables import read_tables

    settings = get_settings().features
    tables = read_tables(WORK / "history")
    data_mb = frame_mb(*(f for _, f in tables.items()))
    base_peak = peak_mb()
    started = time.perf_counter()
    ev = tables.events.sort_values(["ticket_id", "at"])
    ev.groupby("ticket_id", sort=False)["at"].agg(["min", "max", "count"])
    reference = time.perf_counter() - started
    del ev
    started = time.perf_counter()
    written = write_training_sets(tables, settings, WORK / "features")
    seconds = time.perf_counter() - started
    return {"events": len(tables.events), "tickets": len(tables.tickets), "data_mb": round(data_mb),
            "buckets": bucket_count(len(tables.events), settings.bucket_events),
            "milestone_rows": written["milestone"].rows, "ticket_rows": written["ticket"].rows,
            "seconds": round(seconds, 1), "sorted_groupby_pass_s": round(reference, 2),
            "ratio_to_pass": round(seconds / reference, 1), "peak_mb": round(peak_mb()),
            "peak_over_data": round(peak_mb() / max(data_mb, 1), 1), "peak_before_mb": round(base_peak)}


class TreeMemory:
    """Peak resident memory of this process and all its descendants (a JVM and its Python
    workers, for Spark), sampled from /proc every ``every`` seconds in a thread."""

    def __init__(self, every: float = 0.5):
        import threading

        self.peak, self.every, self._stop = 0.0, every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree_mb(self) -> float:
        import os
        from pathlib import Path

        parents, rss = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            parents[pid], rss[pid] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        tree, frontier = {os.getpid()}, [os.getpid()]
        while frontier:
            children = [p for p, parent in parents.items() if parent in frontier and p not in tree]
            tree.update(children)
            frontier = children
        return sum(rss.get(p, 0) for p in tree) / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._tree_mb())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stage_spark() -> dict:
    """The Spark engine (local mode, settings' master) on the history ``features`` used; its
    output row counts are checked against the pandas stage's."""
    from slipcast.features.pipeline import read_training_set
    from slipcast.features.spark_engine import build_training_sets_spark

    settings = get_settings().features
    with TreeMemory() as memory:
        started = time.perf_counter()
        sets = build_training_sets_spark(WORK / "history", settings)
        seconds = time.perf_counter() - started
    pandas_rows = {t: len(read_training_set(WORK / "features" / f"{t}.parquet")[0]) for t in sets}
    return {"master": settings.spark_master, "partitions": settings.spark_partitions,
            "milestone_rows": len(sets["milestone"]), "ticket_rows": len(sets["ticket"]),
            "same_rows_as_pandas": all(len(f) == pandas_rows[t] for t, f in sets.items()),
            "seconds": round(seconds, 1), "peak_tree_mb": round(memory.peak)}


def stage_train(rows: int) -> dict:
    """Full backtest of every candidate plus the final fit on ``rows`` milestone snapshots."""
    from slipcast.features.pipeline import feature_columns, read_training_set
    from slipcast.training.backtest import labelled_rows, run_backtest
    from slipcast.training.fitting import fit_candidate

    frame, _ = read_training_set(WORK / "features" / "milestone.parquet")
    milestones = frame["milestone_id"].drop_duplicates().sample(frac=1.0, random_state=0)
    per = frame.groupby("milestone_id").size().reindex(milestones).cumsum()
    frame = frame[frame["milestone_id"].isin(per[per <= rows].index)]
    settings = get_settings()
    started = time.perf_counter()
    features = feature_columns("milestone")
    bt = run_backtest(frame, "milestone", features, settings.training.candidates, settings.training)
    chosen = bt.ranking()[0]
    fit_candidate(chosen, bt.frame, np.arange(len(bt.frame)), features, settings.training)
    seconds = time.perf_counter() - started
    return {"snapshots": len(frame), "labelled": len(labelled_rows(frame)), "seconds": round(seconds, 1),
            "peak_mb": round(peak_mb()), "chosen": chosen,
            "fit_seconds": {n: round(r.fit_seconds, 1) for n, r in bt.results.items()},
            "brier_skill": {n: round(r.overall["brier_skill"], 3) for n, r in bt.results.items()},
            "roc_auc": {n: round(r.overall["roc_auc"], 3) for n, r in bt.results.items()}}


def _percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def _post(http, url: str, content: bytes):
    """A JSON body encoded once by the caller: the service's time, not the client's encoding."""
    return http.post(url, content=content, headers={"content-type": "application/json"})


def _load(url: str, content: bytes, workers: int, seconds: float) -> dict:
    """Bounded load from ``workers`` threads against loopback: requests/s and errors."""
    import threading

    import httpx

    ok, errors, stop = [0] * workers, [0] * workers, threading.Event()

    def work(i):
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                try:
                    r = _post(http, url, content)
                    ok[i] += r.status_code == 200
                    errors[i] += r.status_code != 200
                except httpx.HTTPError:
                    errors[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"concurrency": workers, "requests_per_s": round(sum(ok) / elapsed, 1), "errors": sum(errors)}


def stage_serve() -> dict:
    """Forecast latency through HTTP on loopback next to the bare model on the same input;
    1,000-milestone batches, with where their time goes; bounded load."""
    import httpx

    from slipcast.core.contracts import METADATA_FILE, past_outcomes
    from slipcast.features.now import features_now
    from slipcast.features.pipeline import build_training_sets, write_training_set
    from slipcast.ingest.simulator import SimulationConfig, generate
    from slipcast.scoring.model_store import ModelStore
    from slipcast.scoring.runtime import limit_model_threads, tune_collector
    from slipcast.serving.request_forecasts import forecast_many, forecast_tables
    from slipcast.serving.request_state import item_state
    from slipcast.serving.schemas import BatchRequest, ForecastRequest, TablesRequest
    from slipcast.tools.requests import as_columns, request_for
    from slipcast.tools.service import free_port, running_service
    from slipcast.training.run import train

    root = WORK / "serve"
    settings = get_settings()
    limit_model_threads(settings)  # the bare model and the in-process figures run as the service runs them
    s = settings.model_copy(update={
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_location": str(root / "artifacts"),
        "models_dir": root / "models", "work_dir": root / "work",
        "training": settings.training.model_copy(update={"bootstrap_rounds": 20})})
    tables = generate(SimulationConfig(projects=4, tickets=2000, seed=3))
    sets = build_training_sets(tables, s.features)
    for target, frame in sets.items():
        write_training_set(frame, root / "features", target)
    if not (root / "models" / "milestone" / METADATA_FILE).exists():
        train(s, features_dir=root / "features", targets=["milestone"], candidates=["gradient_boosting"])
    m = sets["milestone"]
    outcomes = past_outcomes(m)
    row = m[(m["remaining_count"] >= 5) & (m["history_weeks"] >= 4)].sort_values("as_of").iloc[-1]
    body = request_for(tables, row["milestone_id"], row["as_of"], outcomes)
    plain = {**body, "explain": False}

    store = ModelStore(s, targets=("milestone",))
    store.refresh()
    loaded = store.get("milestone")
    tune_collector(s)
    req = ForecastRequest.model_validate(plain)
    state = item_state([req], req.as_of)
    X = loaded.frame(features_now(state.tables(), state.snaps, s.features, state.outcomes)[0])  # the bare model's input
    bare, inproc = [], []
    for _ in range(300):  # interleaved, so that both see the same machine
        started = time.perf_counter()
        loaded.predict(X)
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        forecast_many([req], loaded, s, req.as_of)
        inproc.append(time.perf_counter() - started)

    def batch_of(item: dict) -> dict:  # one state 1,000 times: the batch keeps each copy apart
        return {"items": [item] * 1000}

    full = batch_of(plain)
    state_only = batch_of({**plain, "events": []})  # current ticket state; history implied by the service
    columns = as_columns(full["items"])  # the same 1,000 states as one columns body
    in_process = {}
    for name, model, body_of, run in (
            ("full_history_in_process", BatchRequest, full,
             lambda r: forecast_many(r.items, loaded, s, r.items[0].as_of, within=lambda i: ["items", i])),
            ("columns_in_process", TablesRequest, columns, lambda r: forecast_tables(r, loaded, s, r.as_of))):
        raw = json.dumps(body_of)
        for _ in range(2):  # the second, warm (as a running service is)
            started = time.perf_counter()  # each body read as its route reads it (dependencies.JsonBody for columns)
            parsed = model.model_validate_json(raw) if model is TablesRequest else model.model_validate(json.loads(raw))
            parse_s = time.perf_counter() - started
            started = time.perf_counter()
            run(parsed)
            in_process[name] = {"parse_validate_s": round(parse_s, 2),
                                "features_and_model_s": round(time.perf_counter() - started, 2)}

    env = {"SLIPCAST_TRACKING_URI": s.tracking_uri, "SLIPCAST_MODELS_DIR": str(s.models_dir),
           "SLIPCAST_SERVING__RELOAD_SECONDS": "30", "SLIPCAST_SERVING__MAX_BODY_BYTES": "200000000"}
    with running_service(free_port(), env) as base:
        http_plain, http_explain = [], []
        with httpx.Client(timeout=120) as http:
            for samples, payload in ((http_plain, plain), (http_explain, body)):
                content = json.dumps(payload).encode()
                for _ in range(100):
                    started = time.perf_counter()
                    assert _post(http, f"{base}/v1/forecasts", content).status_code == 200
                    samples.append(time.perf_counter() - started)
            batches = {}
            for name, path, payload in (("full_history", "batch", full), ("ticket_state", "batch", state_only),
                                        ("columns", "tables", columns)):
                content = json.dumps(payload).encode()
                started = time.perf_counter()
                r = _post(http, f"{base}/v1/forecasts/{path}", content)
                batches[name] = {"seconds": round(time.perf_counter() - started, 2), "body_mb": round(len(content) / 1e6, 1)}
                assert r.status_code == 200, r.text[:300]
        load = [_load(f"{base}/v1/forecasts", json.dumps(plain).encode(), n, 5.0) for n in (1, 4, 16)]
    b, h = _percentiles(bare), _percentiles(http_plain)
    return {"request_tickets": len(body["tickets"]), "request_events": len(body["events"]),
            "bare_predict": b, "in_process_forecast": _percentiles(inproc), "http_forecast": h,
            "http_forecast_with_drivers": _percentiles(http_explain),
            "http_over_bare_p50_ms": round(h["p50_ms"] - b["p50_ms"], 2),
            "http_over_bare_ratio": round(h["p50_ms"] / b["p50_ms"], 2),
            "batch_1000": {**batches, **in_process},
            "load": load, "peak_mb": round(peak_mb())}


def stage_sync(issues: int) -> dict:
    """Full syncs of ``issues`` simulated issues from loopback fakes (tests/fakes/): Jira Cloud
    (changelogs cut to their newest histories, as Cloud embeds them) and Azure DevOps (WIQL,
    workitemsbatch, the reporting revisions feed) and Linear (GraphQL paged by cursor), then an
    incremental one of each after five issues change: their requests and time."""
    from slipcast.ingest.connectors.jira import sync_jira
    from slipcast.ingest.simulator import SimulationConfig, generate
    from tests.fakes.fake_jira import FakeJira

    tables = generate(SimulationConfig(projects=max(3, issues // 300), tickets=issues, seed=2))
    export = _sync_site(tables, "jira-json", "sync-site", WORK / "sync-store", {"one_file_per_issue"})
    os.environ.update(JIRA_EMAIL="bench@example.com", JIRA_API_TOKEN="bench")
    auth = "Basic " + base64.b64encode(b"bench@example.com:bench").decode()
    with FakeJira.from_export(export, auth) as site:
        started = time.perf_counter()
        full = sync_jira(site.url, WORK / "sync-store", get_settings())
        full_s = time.perf_counter() - started
        later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        for key in sorted(site.issues)[:5]:
            site.issues[key]["fields"].update(updated=later, priority={"id": "1", "name": "Highest"})
        started = time.perf_counter()
        again = sync_jira(site.url, WORK / "sync-store", get_settings())
        again_s = time.perf_counter() - started
    return {"issues": full.issues, "seconds": round(full_s, 2), "requests": full.requests,
            "changelog_pages": full.changelog_pages, "mb": round(full.bytes / 1e6, 1),
            "incremental": {"issues": again.issues, "requests": again.requests, "seconds": round(again_s, 2)},
            "azure_devops": _sync_azure_devops(tables), "linear": _sync_linear(tables)}


def _sync_site(tables, fmt: str, name: str, store: Path, quirks=()) -> Path:
    """A fresh rendering of ``tables`` as ``fmt`` for a fake site, and no ``store`` synced from it yet."""
    from slipcast.ingest.exports import render

    export = WORK / name
    for folder in (export, store, store.parent / f"{store.name}.sync"):
        shutil.rmtree(folder, ignore_errors=True)
    render(tables, fmt, export, quirks)
    return export


def _sync_azure_devops(tables) -> dict:
    """A full Azure DevOps sync of ``tables`` from the loopback fake, then one after five edits."""
    from slipcast.ingest.connectors.azure_devops import sync_azure_devops
    from tests.fakes.fake_azure_devops import FakeAzureDevOps

    store = WORK / "ado-sync-store"
    export = _sync_site(tables, "azure-devops", "ado-sync-site", store)
    os.environ["AZURE_DEVOPS_PAT"] = "bench"
    with FakeAzureDevOps.from_export(export, "Basic " + base64.b64encode(b":bench").decode()) as site:
        started = time.perf_counter()
        full = sync_azure_devops(site.org_url, site.project, store, get_settings())
        full_s = time.perf_counter() - started
        for item_id in sorted(site.items)[:5]:
            site.edit(item_id, {"Microsoft.VSTS.Common.Priority": 1})
        started = time.perf_counter()
        again = sync_azure_devops(site.org_url, site.project, store, get_settings())
        again_s = time.perf_counter() - started
    return {"items": full.items, "revisions": full.revisions, "seconds": round(full_s, 2), "requests": full.requests,
            "mb": round(full.bytes / 1e6, 1),
            "incremental": {"items": again.items, "requests": again.requests, "seconds": round(again_s, 2)}}


def _sync_linear(tables) -> dict:
    """A full Linear sync of ``tables`` from the loopback fake, then one after five edits."""
    from slipcast.ingest.connectors.linear import sync_linear
    from tests.fakes.fake_linear import FakeLinear

    store = WORK / "linear-sync-store"
    export = _sync_site(tables, "linear", "linear-sync-site", store)
    os.environ["LINEAR_API_KEY"] = "bench"
    with FakeLinear.from_export(export, "bench") as site:
        started = time.perf_counter()
        full = sync_linear(store, get_settings(), api_url=site.url)
        full_s = time.perf_counter() - started
        for key in sorted(site.issues)[:5]:
            site.edit(key, pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1), priority=1)
        started = time.perf_counter()
        again = sync_linear(store, get_settings(), api_url=site.url)
        again_s = time.perf_counter() - started
    return {"issues": full.issues, "seconds": round(full_s, 2), "issues_per_s": round(full.issues / full_s),
            "requests": full.requests, "mb": round(full.bytes / 1e6, 1),
            "incremental": {"issues": again.issues, "requests": again.requests, "seconds": round(again_s, 2)}}


def _hey(url: str, seconds: int, concurrency: int = 32) -> dict:
    """``hey`` (Debian's package) against ``url``: requests per second, and any answer not 200."""
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), url], capture_output=True, text=True,
                         check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = sum(n for c, n in codes.items() if c != 200) + sum(
        int(n) for n in re.findall(r"^\s+\[(\d+)\]\s+Get", out, flags=re.M))
    latency = {f"p{q}_ms": round(float(t) * 1000, 2) for q, t in re.findall(r"(50|99)% in ([\d.]+) secs", out)}
    return {"requests_per_s": round(rate), "responses": sum(codes.values()), "errors": errors, **latency}


def _through_refresh(url: str, change, seconds: int = 60, at: float = 3.0) -> dict:
    """``_hey`` for ``seconds`` with ``change()`` (a store rewrite) ``at`` seconds in, and when
    after the change the new state was first served (its ETag asked for 4 times a second)."""
    import httpx

    before = httpx.get(url).headers["ETag"]
    changed: list[float] = []
    served: list[float] = []
    stop = threading.Event()

    def watch():
        stop.wait(at)
        changed.append(time.perf_counter())
        change()
        while not stop.wait(0.25):
            if httpx.get(url).headers["ETag"] != before:
                served.append(time.perf_counter())
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    out = _hey(url, seconds)
    ended = time.perf_counter()
    watcher.join(timeout=120)
    stop.set()
    watcher.join()
    return {**out, "run_s": round(ended - started, 1), "new_state_served_after_change_s":
            round(served[0] - changed[0], 1) if served else None,
            "during_run": bool(served) and served[0] <= ended}


def stage_programs() -> dict:
    """A program of 200 open milestones with dependencies between them, forecast jointly with
    10,000 draws (its milestones' chances by each day, the Monte Carlo, criticality, the critical
    path, ripples), beside the plain forecasts of the same 200 milestones."""
    from slipcast.core.settings import DependencyDeclaration
    from slipcast.core.vocabulary import ProgramSource
    from slipcast.features.programs import Program
    from slipcast.features.store_history import History
    from slipcast.ingest.simulator import SimulationConfig, generate
    from slipcast.live.programs import forecast_programs, program_context
    from slipcast.scoring.forecast import forecasts_of
    from slipcast.scoring.model_store import load_export
    from slipcast.scoring.runtime import limit_model_threads

    settings = get_settings()
    limit_model_threads(settings)
    model = load_export(WORK / "serve" / "models", "milestone")  # the serve stage's champion
    tables = generate(SimulationConfig(projects=400, tickets=40_000, seed=5))
    history = History(tables, settings.features)
    starts = tables.milestones["start_at"].sort_values()
    as_of = max(starts.iloc[len(starts) // 2:len(starts) // 2 + 400:20], key=lambda t: len(history.open_at(t)))
    ids = [str(i) for i in history.open_at(as_of)[:200]]
    chain = [DependencyDeclaration(blocker=a, dependent=b) for k, (a, b) in enumerate(zip(ids, ids[1:])) if k % 4]
    s = settings.model_copy(update={"programs": settings.programs.model_copy(update={"dependencies": chain})})
    program = Program("bench", "bench", ProgramSource.DECLARED, tuple(ids))
    joint, alone = [], []
    for _ in range(3):
        started = time.perf_counter()
        state = forecast_programs(program_context(history, as_of.to_pydatetime(), s), [program], model, s)[0]
        joint.append(time.perf_counter() - started)
        started = time.perf_counter()
        who, feats, _ = history.features(ids, [as_of] * len(ids))
        forecasts_of(ids, list(who["project"]), [as_of] * len(ids), feats, np.zeros(0, int), model, s)
        alone.append(time.perf_counter() - started)
    return {"milestones": state.open_milestones, "edges": len(state.edges), "draws": state.draws,
            "seconds": round(float(np.median(joint)), 3),
            "plain_forecasts_s": round(float(np.median(alone)), 3),
            "ratio_to_plain": round(float(np.median(joint) / np.median(alone)), 1),
            "chance": state.chance, "critical_path": len(state.critical_path), "peak_mb": round(peak_mb())}


def stage_live() -> dict:
    """The live state of 1,000 teams: a refresh of every open milestone (forecasts, drivers, the
    week's change, "when", ledger), a backfill, and ``GET /v1/milestones/{id}`` under ``hey`` with
    2 workers (through a refresh too) beside a bare FastAPI endpoint returning a body of the same size."""
    import httpx

    from slipcast.features.store_history import History
    from slipcast.ingest.simulator import SimulationConfig, generate
    from slipcast.ingest.tables import write_tables
    from slipcast.live.backfill import backfill
    from slipcast.live.state import LiveState
    from slipcast.scoring.model_store import ModelStore
    from slipcast.scoring.runtime import tune_collector
    from slipcast.tools.service import free_port, running_service, wait_until_up

    root, models = WORK / "live", WORK / "serve"  # the serve stage's champion
    shutil.rmtree(root, ignore_errors=True)
    tables = generate(SimulationConfig(projects=1000, tickets=100_000, seed=5))
    store = write_tables(tables, root / "store")
    history = History(tables, get_settings().features)
    starts = tables.milestones["start_at"].sort_values()
    as_of = max(starts.iloc[len(starts) // 2:len(starts) // 2 + 2000:100], key=lambda t: len(history.open_at(t)))
    settings = get_settings()
    s = settings.model_copy(update={
        "tracking_uri": f"sqlite:///{models / 'mlflow.db'}", "models_dir": models / "models",
        "serving": settings.serving.model_copy(update={"store": store, "as_of": as_of.to_pydatetime(),
                                                       "ledger_url": f"sqlite:///{root / 'ledger.db'}"})})
    store_models = ModelStore(s)
    store_models.refresh()
    live = LiveState(s, store_models, lambda: as_of.to_pydatetime())
    tune_collector(s)  # as a worker does when it starts: what is loaded by now is out of the collector's way
    if live.builder is not None:  # the child started, as the service starts it, before the clock runs
        live.builder.start()
        assert live.builder.pid
    times = []
    shutil.rmtree(live.shared, ignore_errors=True)  # the first refresh codes the store's history too
    for _ in range(4):  # each built here: the state another worker would share taken away first
        shutil.rmtree(live.shared / "states", ignore_errors=True)
        started = time.perf_counter()
        assert live.refresh(), live.error
        times.append(time.perf_counter() - started)
    state = live.get()
    other = LiveState(s, store_models, lambda: as_of.to_pydatetime())  # a second worker: reads what the first built
    started = time.perf_counter()
    assert other.refresh() and other.built == 0, other.error
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    filled = backfill(s, store, as_of.to_pydatetime())
    backfill_s = time.perf_counter() - started

    env = {"SLIPCAST_TRACKING_URI": s.tracking_uri, "SLIPCAST_MODELS_DIR": str(s.models_dir),
           "SLIPCAST_SERVING__STORE": str(store), "SLIPCAST_SERVING__AS_OF": as_of.isoformat(),
           "SLIPCAST_SERVING__LEDGER_URL": s.serving.ledger_url, "SLIPCAST_SERVING__RELOAD_SECONDS": "1"}
    one = state.milestones[0].milestone_id
    with running_service(free_port(), env, workers=2, timeout=300) as base:
        url = f"{base}/v1/milestones/{one}"
        with httpx.Client() as http:
            deadline = time.monotonic() + 120
            while http.get(url).status_code != 200 and time.monotonic() < deadline:  # each worker builds its state
                time.sleep(0.5)
            body = http.get(url).content
            samples = []
            for _ in range(300):
                started = time.perf_counter()
                assert http.get(url).status_code == 200
                samples.append(time.perf_counter() - started)
        one_at_a_time = _hey(url, 5, concurrency=1)  # latency as a client other than Python's sees it
        steady = _hey(url, 10)
        refreshed = _through_refresh(url, lambda: write_tables(tables, store, force=True))
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-m", "gunicorn", "--worker-class", "uvicorn_worker.UvicornWorker",
                              "--workers", "2", "--bind", f"127.0.0.1:{port}", "benchmarks.floor_app:app"],
                             env={**os.environ, "FLOOR_BODY_BYTES": str(len(body))}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/floor", floor, 60, lambda: "")
        bare = _hey(f"http://127.0.0.1:{port}/floor", 10)
    finally:
        floor.terminate()
        floor.wait(timeout=10)
    return {"open_milestones": len(state.milestones), "programs": len(state.programs), "as_of": as_of.isoformat(),
            "refresh_s": {"cold": round(times[0], 2), "warm_median": round(float(np.median(times[1:])), 2),
                          "read_by_another_worker": round(read_s, 2)},
            "backfill": {"milestones": filled.milestones, "forecasts": filled.forecasts, "seconds": round(backfill_s, 1),
                         "seconds_per_60000": round(backfill_s * 60000 / max(filled.forecasts, 1), 1)},
            "get_milestone": {"body_bytes": len(body), **_percentiles(samples), "hey_c1": one_at_a_time,
                              "hey_c32": steady,
                              "hey_c32_through_refresh": refreshed},
            "floor_same_body": bare, "peak_mb": round(peak_mb())}

STAGES = {"import": stage_import, "generate": stage_generate, "features": stage_features, "spark": stage_spark,
          "train": stage_train, "serve": stage_serve, "sync": stage_sync, "programs": stage_programs,
          "live": stage_live}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    WORK.mkdir(parents=True, exist_ok=True)
    print(json.dumps(STAGES[name](*map(int, args))))
