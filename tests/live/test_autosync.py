"""The service keeping its store current (``live.autosync``): runs claimed once through the ledger,
the one table of trackers, the settings and flags that ask for it, and ticks against a fake Jira."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError

from slipcast.core.settings import AutoSyncSettings, Settings, TrackerSettings
from slipcast.core.vocabulary import Tracker
from slipcast.ingest.connectors.trackers import TRACKERS, problem, sync_tracker
from slipcast.ingest.exports import render
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import read_tables
from slipcast.live.autosync import AutoSync, retrain_slot
from slipcast.live.ledger import Ledger
from slipcast.live.state import LiveState
from slipcast.scoring.model_store import ModelStore
from slipcast.tools.service import free_port, running_service
from tests.fakes.fake_jira import FakeJira
from tests.fakes.loopback import cli_env
from tests.helpers import POSTGRES, postgres_ledger

TOKEN = "autosync-token-that-must-never-be-written"
BASIC = "Basic " + base64.b64encode(f"pm@example.com:{TOKEN}".encode()).decode()
HOUR = timedelta(hours=1)


def _claimed_at_once(ledgers: list[Ledger], job: str, slot: datetime) -> list[int | None]:
    """What each ledger's claim of ``job`` for ``slot`` returned, the claims started together."""
    barrier, got = threading.Barrier(len(ledgers)), [None] * len(ledgers)

    def claim(i: int) -> None:
        barrier.wait()
        got[i] = ledgers[i].claim_run(job, slot, f"worker-{i}", HOUR)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(ledgers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=POSTGRES)])
def test_of_two_claimers_of_a_slot_one_wins_and_a_running_run_holds_the_job(dialect, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if dialect == "sqlite" else postgres_ledger()
    first, second = Ledger(url), Ledger(url)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for i in range(12):
        slot = start + timedelta(minutes=15 * i)
        got = _claimed_at_once([first, second], "sync", slot)
        winners = [g for g in got if g is not None]
        assert len(winners) == 1, got
        assert first.claim_run("sync", start + timedelta(minutes=15 * i + 1), "late", HOUR) is None  # still going
        first.finish_run(winners[0], "ok", {"issues": i})
        assert second.claim_run("sync", slot, "late", HOUR) is None  # done: the slot is taken
    runs = first.runs("sync")
    assert len(runs) == 12 and {r["status"] for r in runs} == {"ok"} and runs[0]["summary"] == {"issues": 11}


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=POSTGRES)])
def test_a_failed_run_is_claimed_again_and_one_cut_short_frees_its_slot_after_the_timeout(dialect, tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}" if dialect == "sqlite" else postgres_ledger())
    day = datetime(2026, 3, 1, 3, tzinfo=UTC)
    failed = ledger.claim_run("retrain", day, "a", HOUR)
    ledger.finish_run(failed, "failed", error="ConnectorError: 500")
    assert ledger.last_runs(["retrain"])["retrain"]["error"] == "ConnectorError: 500"
    again = ledger.claim_run("retrain", day, "b", HOUR)
    assert again == failed and ledger.runs("retrain")[0]["worker"] == "b"
    # b's worker is killed mid-run: its row says running; nobody may claim the job until the timeout
    assert ledger.claim_run("retrain", day, "c", HOUR) is None
    assert ledger.claim_run("retrain", day + timedelta(days=1), "c", HOUR) is None
    assert ledger.claim_run("retrain", day, "c", timedelta(0)) == failed  # taken for dead
    with pytest.raises(ValueError, match="status"):
        ledger.finish_run(failed, "done")


def test_the_retrain_is_due_from_its_hour_on_each_day():
    assert retrain_slot(datetime(2026, 3, 1, 2, 59, tzinfo=UTC), 3) is None
    assert retrain_slot(datetime(2026, 3, 1, 3, 0, 5, tzinfo=UTC), 3) == datetime(2026, 3, 1, 3, tzinfo=UTC)
    assert retrain_slot(datetime(2026, 3, 1, 23, 10, tzinfo=UTC), 3) == datetime(2026, 3, 1, 3, tzinfo=UTC)
    assert retrain_slot(datetime(2026, 3, 1, 23, 10, tzinfo=UTC), None) is None


def test_every_tracker_has_a_sync_and_says_what_it_needs(tmp_path, settings):
    assert set(TRACKERS) == set(Tracker)
    assert problem(TrackerSettings(tracker="github")) == "the github sync needs repo"
    assert problem(TrackerSettings(tracker="azure-devops", org="https://dev.azure.com/acme")) == \
        "the azure-devops sync needs project"
    with pytest.raises(ValueError, match="jira sync needs url"):
        sync_tracker(TrackerSettings(tracker="jira"), tmp_path / "store", settings)
    with pytest.raises(ValidationError, match="tracker"):
        TrackerSettings(tracker="trello")


def test_serving_sync_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("SLIPCAST_SERVING__SYNC__TRACKER", "jira")
    monkeypatch.setenv("SLIPCAST_SERVING__SYNC__URL", "https://acme.atlassian.net")
    monkeypatch.setenv("SLIPCAST_SERVING__SYNC__INTERVAL_SECONDS", "60")
    sync = Settings().serving.sync
    assert isinstance(sync, AutoSyncSettings)
    assert (sync.tracker, sync.url, sync.interval_seconds, sync.retrain_hour, sync.enabled) == \
        (Tracker.JIRA, "https://acme.atlassian.net", 60, 3, True)


def test_a_service_not_asked_to_sync_or_unable_to_is_off_and_says_why(settings):
    def status(**serving) -> dict:
        s = settings.model_copy(update={"serving": settings.serving.model_copy(update=serving)})
        return AutoSync(s, LiveState(s, ModelStore(s), lambda: datetime.now(UTC))).status()

    jira = AutoSyncSettings(tracker="jira", url="https://acme.atlassian.net")
    assert status(store="/srv/store", sync=None) == {"state": "off", "error": None}
    assert status(store="/srv/store", sync=jira.model_copy(update={"enabled": False})) == {"state": "off", "error": None}
    assert status(store="s3://bucket/store", sync=jira) == {
        "state": "off", "error": "a sync needs a store folder (--store DIR, or serving.store)"}
    assert status(store="/srv/store", sync=jira, ledger_url=None)["error"].startswith("a sync needs the ledger")
    assert status(store="/srv/store", sync=jira.model_copy(update={"url": None})) == {
        "state": "off", "error": "the jira sync needs url"}


@pytest.mark.parametrize(("flags", "says"), [
    (["--sync", "github"], "the github sync needs repo"),
    (["--sync", "jira", "--sync-url", "https://acme.atlassian.net", "--store", "s3://bucket/store"],
     "needs a store folder"),
])
def test_serve_refuses_a_sync_it_cannot_run(tmp_path, flags, says):
    if "--store" not in flags:
        flags = [*flags, "--store", str(tmp_path / "store")]
    done = subprocess.run([sys.executable, "-m", "slipcast.cli", "serve", "--port", "1", *flags],
                          capture_output=True, text=True, timeout=60, env=cli_env(SLIPCAST_HOME=str(tmp_path)))
    assert done.returncode == 2 and says in done.stderr, done.stderr


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site") / "export"
    render(generate(SimulationConfig(projects=2, tickets=120, seed=5)), "jira-json", folder, {"one_file_per_issue"})
    return folder


@pytest.mark.slow  # a child process runs `slipcast monitor` after each sync
def test_a_tick_syncs_once_records_a_failure_without_the_token_and_recovers(export, tmp_path, monkeypatch):
    for name, value in {"JIRA_EMAIL": "pm@example.com", "JIRA_API_TOKEN": TOKEN, "SLIPCAST_HOME": str(tmp_path),
                        "SLIPCAST_SERVING__STORE": str(tmp_path / "store"),
                        "SLIPCAST_SERVING__LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}.items():
        monkeypatch.setenv(name, value)  # the monitor's child process reads the settings from there
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with FakeJira.from_export(export, BASIC) as site:
        sync = AutoSyncSettings(tracker="jira", url=site.url, interval_seconds=3600, retrain_hour=None)
        s = Settings()
        s = s.model_copy(update={"serving": s.serving.model_copy(update={"build_niceness": None, "sync": sync})})
        live = LiveState(s, ModelStore(s), lambda: datetime.now(UTC))
        workers = [AutoSync(s, live), AutoSync(s, live)]
        assert workers[0].status() == {"state": "waiting", "tracker": "jira", "interval_seconds": 3600,
                                       "synced_at": None, "error": None, "runs": {}}
        now = datetime(2026, 3, 1, 9, 10, tzinfo=UTC)
        for w in workers:
            w.tick(now)
        assert sum(w.ran for w in workers) == 1
        assert site.hits["/rest/api/3/search/jql"] == -(-len(site.issues) // 100)  # one fetch in full
        assert len(read_tables(tmp_path / "store").tickets) == len(site.issues)
        ledger = Ledger(s.serving.ledger_url)
        assert [r["status"] for r in ledger.runs("sync")] == ["ok"]
        status = workers[1].status()  # the worker that lost the claim reads the same
        assert status["state"] == "ok" and status["synced_at"] is not None
        assert status["runs"]["sync"]["summary"]["records"] == len(site.issues)
        monitored = status["runs"]["monitor"]
        assert monitored["status"] == "ok" and monitored["summary"]["exit"] == 0, monitored  # nothing published yet
        assert monitored["summary"]["published"] == 0 and "published forecasts" in monitored["summary"]["said"]
        site.down = True
        workers[0].tick(now + HOUR)
        status = workers[0].status()
        assert status["state"] == "failing" and "500" in status["error"] and TOKEN not in str(status)
        site.down = False
        workers[1].tick(now + 2 * HOUR)
        assert workers[1].status()["state"] == "ok"
    runs = ledger.runs("sync")
    assert [r["status"] for r in runs] == ["ok", "failed", "ok"]
    assert not any(TOKEN in str(r) for r in ledger.runs())


def _moved(site: FakeJira, milestone_id: str, now: datetime) -> tuple[str, str]:
    """The version behind ``milestone_id`` renamed and its release date moved 30 days on in the
    fake, as a team would in Jira: in the project's versions and in the issues that carry it
    (updated now, so an incremental sync fetches them); its new name and new due day."""
    version = next(v for vs in site.versions.values() for v in vs if f"jira-version-{v['id']}" == milestone_id)
    day = (datetime.fromisoformat(version["releaseDate"]) + timedelta(days=30)).date().isoformat()
    name = f"{version['name']} (moved)"
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    for v in [version] + [v for i in site.issues.values() for v in i["fields"].get("fixVersions") or []
                          if v.get("id") == version["id"]]:
        v.update(name=name, releaseDate=day)
    for issue in site.issues.values():
        if any(v.get("id") == version["id"] for v in issue["fields"].get("fixVersions") or []):
            issue["fields"]["updated"] = stamp
    return name, day


@pytest.fixture
def served(trained, tmp_path, monkeypatch):
    """A fake Jira holding the trained history, and what `slipcast serve --sync jira` needs."""
    from tests.helpers import busiest_time

    export = tmp_path / "export"
    render(trained["tables"], "jira-json", export, {"one_file_per_issue"})
    s = trained["settings"]
    env = {"SLIPCAST_HOME": str(tmp_path), "SLIPCAST_TRACKING_URI": s.tracking_uri,
           "SLIPCAST_MODELS_DIR": str(s.models_dir), "SLIPCAST_WORK_DIR": str(tmp_path / "work"),
           "SLIPCAST_SERVING__AS_OF": busiest_time(trained["tables"]).isoformat(),
           "SLIPCAST_SERVING__RELOAD_SECONDS": "0.5", "SLIPCAST_SERVING__LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
           "JIRA_EMAIL": "pm@example.com", "JIRA_API_TOKEN": TOKEN, "MLFLOW_TRACKING_URI": None}
    return {"export": export, "env": env, "tmp": tmp_path, "ledger": f"sqlite:///{tmp_path / 'ledger.db'}"}


def _until(check, timeout: float = 180, every: float = 0.5):
    """``check()`` once it is truthy (None after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    return None


def _served(base: str, milestone_id: str) -> dict | None:
    items = httpx.get(f"{base}/v1/milestones", params={"limit": 500}, headers={"Connection": "close"}).json()["items"]
    return next((m for m in items if m["milestone_id"] == milestone_id), None)


def test_the_service_syncs_every_two_seconds_once_between_two_workers_and_shows_an_edit(served):
    """`slipcast serve --workers 2 --sync jira --sync-interval 2` from an empty store: the store
    fills from the fake; a version renamed and moved in the fake shows on the page and in
    /v1/milestones with no other command; each slot's sync ran once (the fake's searches, the
    ledger's runs); the day's retrain --if-needed ran once; the token was written nowhere."""
    with FakeJira.from_export(served["export"], BASIC) as site:
        args = ("--store", str(served["tmp"] / "store"), "--sync", "jira", "--sync-url", site.url,
                "--sync-interval", "2", "--retrain-hour", str(datetime.now(UTC).hour))
        with running_service(free_port(), served["env"], workers=2, args=args) as base:
            assert _until(lambda: httpx.get(f"{base}/v1/milestones").status_code == 200), "no state from the sync"
            items = httpx.get(f"{base}/v1/milestones", params={"limit": 500}).json()["items"]
            milestone_id = next(m["milestone_id"] for m in items if m["milestone_id"].startswith("jira-version-"))
            name, day = _moved(site, milestone_id, datetime.now(UTC))
            shown = _until(lambda: (m := _served(base, milestone_id)) and m["name"] == name and m)
            assert shown and shown["due_at"].startswith(day), shown
            assert all(_served(base, milestone_id)["name"] == name for _ in range(6))  # whichever worker answers
            # either worker may answer, and a sync may be under way in the other: ask until one page shows both
            page = _until(lambda: (text := httpx.get(f"{base}/", headers={"Connection": "close"}).text)
                          and name in text and 'id="sync" data-state="ok"' in text and text, timeout=60)
            last = httpx.get(f"{base}/").text
            assert page and "last synced" in page, last[last.find('id="sync"'):][:400]
            # a worker learns of the other's sync at its own next tick, which a monitor or retrain may hold up
            ready = _until(lambda: (r := httpx.get(f"{base}/readyz", headers={"Connection": "close"}).json()["sync"])
                           and r["state"] == "ok" and r, timeout=120)
            assert ready and ready["tracker"] == "jira" and ready["synced_at"], ready
            assert _until(lambda: Ledger(served["ledger"]).last_runs(["retrain"]).get("retrain", {}).get("status")
                          not in (None, "running"), timeout=240)
            time.sleep(5)  # a few more slots
        ledger = Ledger(served["ledger"])
        syncs = ledger.runs("sync")
        done = [r for r in syncs if r["status"] == "ok"]
        cut = [r for r in syncs if r["status"] != "ok"]  # the service stopped in the middle of it: the latest
        assert len(done) >= 3 and len(cut) <= 1 and all(r is syncs[0] and r["status"] == "failed" for r in cut), syncs
        assert len({r["slot"] for r in syncs}) == len(syncs) and {r["worker"] for r in done} <= {
            r["worker"] for r in ledger.runs()}
        # each sync asked the fake once: the first in full, each later one a page of what changed
        full = -(-len(site.issues) // 100)
        assert full + len(done) - 1 <= site.hits["/rest/api/3/search/jql"] <= full + len(done) + len(cut) - 1
        assert len(done) <= site.hits["/rest/api/3/status"] <= len(done) + len(cut)
        retrains = ledger.runs("retrain")  # the day's retrain claimed once, by one worker, and its end recorded
        assert len(retrains) == 1 and retrains[0]["status"] in ("ok", "failed"), retrains
        if retrains[0]["status"] == "ok":
            assert "retrain not needed" in retrains[0]["summary"]["said"]
        else:  # two children on one MLflow SQLite file at once can fail it: recorded with its reason, tried tomorrow
            assert retrains[0]["error"], retrains
    assert not any(TOKEN.encode() in p.read_bytes() for p in served["tmp"].rglob("*") if p.is_file())


def test_a_failing_sync_is_recorded_shown_and_mended_at_the_next_tick(served):
    """The fake answers 500: the run is recorded as failed, /readyz and the page say so, the
    service keeps serving; once the fake recovers the next tick syncs."""
    with FakeJira.from_export(served["export"], BASIC) as site:
        args = ("--store", str(served["tmp"] / "store"), "--sync", "jira", "--sync-url", site.url,
                "--sync-interval", "2")
        with running_service(free_port(), served["env"], args=args) as base:
            assert _until(lambda: httpx.get(f"{base}/readyz").json()["sync"]["state"] == "ok")
            assert _until(lambda: httpx.get(f"{base}/v1/milestones").status_code == 200)
            site.down = True
            failing = _until(lambda: (s := httpx.get(f"{base}/readyz").json()["sync"])["state"] == "failing" and s)
            assert failing and "500" in failing["error"] and failing["runs"]["sync"]["status"] == "failed", failing
            assert TOKEN not in json.dumps(failing)
            assert httpx.get(f"{base}/readyz").status_code == 200 and httpx.get(f"{base}/v1/milestones").status_code == 200
            page = httpx.get(f"{base}/").text
            assert 'data-state="failing"' in page and "500" in page
            site.down = False
            mended = _until(lambda: (s := httpx.get(f"{base}/readyz").json()["sync"])["state"] == "ok" and s)
            assert mended and mended["runs"]["sync"]["status"] == "ok" and mended["synced_at"] > failing["synced_at"]
    statuses = [r["status"] for r in reversed(Ledger(served["ledger"]).runs("sync"))]
    assert "failed" in statuses and statuses[-1] == "ok" and statuses.index("failed") > 0
    assert not any(TOKEN in json.dumps(r, default=str) for r in Ledger(served["ledger"]).runs())
