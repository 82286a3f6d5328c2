"""Test helpers: real-data paths, a Jira issue shaped like a real export, quick settings, the
milestones open at a time, a program's state made by hand, load under a refresh, a new ledger on the
test's PostgreSQL, and a store served with programs: settings, unguarded models, a refresh awaited."""

from __future__ import annotations

import copy
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from slipcast.core.settings import get_settings
from slipcast.core.vocabulary import ProgramSource
from slipcast.ingest.tables import Tables
from slipcast.live.records import ProgramEdge, ProgramMilestone, ProgramState

SHARED_DATA = get_settings().resolve(get_settings().evaluation.shared_data_dir)


BASE_ISSUE = {
    "expand": "renderedFields,names,schema,changelog",
    "id": "17236",
    "key": "DS-1000",
    "fields": {
        "project": {"id": "10100", "key": "DS", "name": "DSpace"},
        "issuetype": {"id": "4", "name": "Improvement"},
        "priority": {"id": "3", "name": "Major"},
        "status": {"id": "6", "name": "Closed"},
        "created": "2011-08-19T03:34:46.761+0000",
        "resolutiondate": "2011-08-25T10:00:00.000+0000",
        "duedate": "2011-09-01",
        "assignee": {"name": "kshepherd", "displayName": "Kim Shepherd"},
        "customfield_10023": 3.0,
        "fixVersions": [{"id": "10343", "name": "1.8.0", "released": True, "releaseDate": "2011-11-04"}],
        "issuelinks": [
            {"id": "1", "type": {"name": "Dependency", "inward": "required by", "outward": "depends on"},
             "outwardIssue": {"key": "DS-999"}},
        ],
        "subtasks": [{"key": "DS-1001"}],
    },
    "changelog": {
        "startAt": 0, "maxResults": 3, "total": 3,
        "histories": [
            {"id": "1", "created": "2011-08-19T03:45:30.551+0000",
             "items": [{"field": "status", "fieldtype": "jira", "from": "10001", "fromString": "Received",
                        "to": "1", "toString": "Open"},
                       {"field": "Fix Version", "fieldtype": "jira", "from": None, "fromString": None,
                        "to": "10343", "toString": "1.8.0"}]},
            {"id": "2", "created": "2011-08-20T09:00:00.000+0000",
             "items": [{"field": "description", "fieldtype": "jira", "from": None, "fromString": "a",
                        "to": None, "toString": "b"},
                       {"field": "Story Points", "fieldtype": "custom", "from": None, "fromString": "2",
                        "to": None, "toString": "3"}]},
            {"id": "3", "created": "2011-08-25T10:00:00.000+0000",
             "items": [{"field": "status", "fieldtype": "jira", "from": "1", "fromString": "Open",
                        "to": "6", "toString": "Closed"},
                       {"field": "resolution", "fieldtype": "jira", "from": None, "fromString": None,
                        "to": "1", "toString": "Fixed"}]},
        ],
    },
}


def jira_issue(key: str = "DS-1000", **field_overrides) -> dict:
    """A Jira REST issue shaped like the Duraspace export, with overrides to ``fields``."""
    issue = copy.deepcopy(BASE_ISSUE)
    issue["key"] = key
    issue["fields"]["project"]["key"] = key.rsplit("-", 1)[0]
    for name, value in field_overrides.items():
        if value is None:
            issue["fields"].pop(name, None)
        else:
            issue["fields"][name] = value
    return issue


def configured(settings, root: Path, **training):
    """Settings whose stores live under ``root``, with quick training settings."""
    quick = {"folds": 2, "bootstrap_rounds": 20, "max_iter": 25, "min_train_rows": 60,
             "min_train_positives": 5, **training}
    return settings.model_copy(update={
        "tracking_uri": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        "artifact_location": str(root / "mlruns" / "artifacts"),
        "models_dir": root / "models",
        "work_dir": root / "work",
        "training": settings.training.model_copy(update=quick),
        "serving": settings.serving.model_copy(update={"reload_seconds": 0,
                                                       "ledger_url": f"sqlite:///{root / 'ledger.db'}"}),
    })


def busiest_time(tables: Tables) -> pd.Timestamp:
    """A time late in the history at which the most milestones are open."""
    ms = tables.milestones
    times = (ms["start_at"] + pd.Timedelta(days=1)).sort_values()
    times = times[times <= times.quantile(0.9)].iloc[-60:]
    return max(times, key=lambda t: len(open_ids(tables, t)))


def open_ids(tables: Tables, t: pd.Timestamp) -> set[str]:
    ms = tables.milestones
    return set(ms[(ms["start_at"] <= t) & (ms["completed_at"].isna() | (ms["completed_at"] > t))]["milestone_id"])


def without_milestone(tables: Tables, gone: str) -> Tables:
    """The tables with one milestone (and its events) taken out, as a tracker that deleted it."""
    return Tables(tables.milestones[tables.milestones["milestone_id"] != gone], tables.tickets,
                  tables.events[tables.events["milestone_id"] != gone], tables.links)


def program_edge(blocker: str, dependent: str, **fields) -> ProgramEdge:
    """A dependency found in the links, carrying a slip, unless ``fields`` say otherwise."""
    return ProgramEdge(**{"blocker": blocker, "dependent": dependent, "tickets": [("T-2", "T-1")], "open_blockers": 1,
                          "source": "links", "external": False, "in_cycle": False, "propagated": True, **fields})


def program_state(criticality: dict[str, float], edges: list[ProgramEdge], path: list[str], **fields) -> ProgramState:
    """A program of open milestones (most critical first, as the live state orders them; one team
    each) as of 2026-03-02, with ``fields`` over its defaults."""
    as_of = pd.Timestamp("2026-03-02", tz="UTC").to_pydatetime()
    milestones = [ProgramMilestone(milestone_id=m, project=f"P{i}", name=None, state="open", due_at=as_of,
                                   criticality=c)
                  for i, (m, c) in enumerate(sorted(criticality.items(), key=lambda kv: -kv[1]))]
    return ProgramState(**{
        "program_id": "prog", "name": "Prog", "source": ProgramSource.DECLARED, "as_of": as_of, "target_at": None,
        "open_milestones": len(milestones), "chance": 0.5, "probability": 0.5, "risk_band": "medium",
        "independent_chance": 0.6, "done_50": None, "done_85": None, "critical_path": path,
        "critical_path_share": 0.7, "milestones": milestones, "edges": edges, "cycles": [], "correlation": {},
        "lag_days": 1.0, "draws": 1000, "assumptions": [], "model": None, **fields})


def refreshed_under_load(client, app, change) -> list[int]:
    """Run ``change()`` (a rewrite of the store) while a thread keeps asking GET /v1/milestones,
    and wait until the live state has been rebuilt; the status codes of the requests that failed.
    An exception in the asking thread (a 500 the client re-raises, a dropped connection) is raised
    here: the thread runs in an executor and its future is read."""
    failures: list[int] = []
    stop = threading.Event()

    def ask():
        while not stop.is_set():
            r = client.get("/v1/milestones", params={"limit": 500})
            if r.status_code != 200:
                failures.append(r.status_code)

    with ThreadPoolExecutor(1) as pool:
        asker = pool.submit(ask)
        try:
            before = app.state.live.refreshes
            change()
            deadline = pd.Timestamp.now() + pd.Timedelta(seconds=30)
            while app.state.live.refreshes == before and pd.Timestamp.now() < deadline and not asker.done():
                stop.wait(0.1)
            if app.state.live.refreshes == before:
                failures.append(0)  # never rebuilt
        finally:
            stop.set()
        asker.result()  # re-raises whatever ended the thread
    return failures


POSTGRES = pytest.mark.skipif(not os.environ.get("SLIPCAST_TEST_POSTGRES"),
                              reason="SLIPCAST_TEST_POSTGRES unset (.ci/run starts PostgreSQL)")


def postgres_ledger() -> str:
    """The URL of a new, empty database on the test's PostgreSQL server."""
    import psycopg

    server = os.environ["SLIPCAST_TEST_POSTGRES"]
    name = f"ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{name}"


def serving_programs(settings, root: Path, store, as_of: pd.Timestamp | None, declared=(), dependencies=(),
                     **serving):
    """Settings that serve ``store`` as of the fixed time ``as_of`` (as ``SLIPCAST_SERVING__AS_OF``
    does; None: the app's clock), with a work folder (where the API's declarations go) and a ledger
    of their own under ``root``, these programs and dependencies declared in the settings (and
    none found in the history: its epics and shared names are left out), and ``serving`` besides."""
    return settings.model_copy(update={
        "work_dir": root / "work",
        "serving": settings.serving.model_copy(update={
            "store": str(store), "as_of": None if as_of is None else as_of.to_pydatetime(),
            "ledger_url": f"sqlite:///{root / 'ledger.db'}", "reload_seconds": 0.2, **serving}),
        "programs": settings.programs.model_copy(update={"declared": list(declared),
                                                         "dependencies": list(dependencies),
                                                         "from_epics": False, "from_shared_names": False})})


def unguarded(settings):
    """The trained models with no horizon or project guarded, so that every forecast is the
    model's own: a milestone's chance of being done then grows with the day asked, and a program's
    chance moves with what a what-if changes (under the guard, the small history's base rate says
    the same at every horizon)."""
    from slipcast.scoring.model_store import ModelStore

    store = ModelStore(settings)
    store.refresh()
    for target in store.targets:
        store.get(target).metadata.update(guard={}, project_guard={})
    return store


def refreshed(app, change, seconds: float = 60) -> None:
    """Run ``change()`` and wait until the live state has been rebuilt after it (by its watcher)."""
    before = app.state.live.refreshes
    change()
    deadline = time.monotonic() + seconds
    while app.state.live.refreshes == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.live.refreshes > before, app.state.live.error
