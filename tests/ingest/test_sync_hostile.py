"""What a hostile or broken tracker can make a sync do (docs/architecture.md, "What a tracker can
make Slipcast do"), against the loopback fakes' hostile modes (tests/fakes/)."""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipcast.ingest.connectors.github import sync_github
from slipcast.ingest.connectors.http import ConnectorError
from slipcast.ingest.connectors.jira import sync_jira
from slipcast.ingest.connectors.store import file_stem, sync_folder, write_whole
from slipcast.ingest.exports import render
from slipcast.ingest.exports.github import REPO
from slipcast.ingest.importers.jira_json import import_jira_json
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint, read_tables
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import LOOPS, FakeJira
from tests.fakes.loopback import Recorder, cli_env

TOKEN = "cloud-token-that-must-never-be-written"
PAT = "dc-pat-that-must-never-be-written"
GH_TOKEN = "ghp_token_that_must_never_be_written"
CREDENTIAL = base64.b64encode(f"pm@example.com:{TOKEN}".encode()).decode()
BASIC = f"Basic {CREDENTIAL}"


@pytest.fixture(scope="module")
def jira_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site") / "export"
    render(generate(SimulationConfig(projects=2, tickets=120, seed=11)), "jira-json", folder, {"one_file_per_issue"})
    return folder


@pytest.fixture(scope="module")
def github_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repo") / "export"
    render(generate(SimulationConfig(projects=2, tickets=120, seed=5)), "github", folder)
    return folder


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("JIRA_EMAIL", "pm@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    monkeypatch.setenv("JIRA_PAT", PAT)
    monkeypatch.setenv("GITHUB_TOKEN", GH_TOKEN)


@pytest.fixture(scope="module")
def synced(jira_export, tmp_path_factory, settings):
    """A store synced once from the fake Jira (with its sync folder beside it), to copy."""
    store = tmp_path_factory.mktemp("synced") / "store"
    with pytest.MonkeyPatch.context() as env, FakeJira.from_export(jira_export, BASIC) as site:
        env.setenv("JIRA_EMAIL", "pm@example.com")
        env.setenv("JIRA_API_TOKEN", TOKEN)
        sync_jira(site.url, store, settings, flavour="cloud")
    return store


def _copy(store, to):
    """A copy of a store and its sync folder at ``to``."""
    shutil.copytree(store, to)
    shutil.copytree(sync_folder(store), sync_folder(to))
    return to


def _state(store) -> dict:
    """What a failed sync must leave as it was: each table file (inode and time: not even
    rewritten) and the sync state (the watermark)."""
    files = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(store.rglob("*"))}
    return {"tables": files, "folder": store.stat().st_ino, "fingerprint": fingerprint(read_tables(store)),
            "sync-state": (sync_folder(store) / "sync-state").read_text()}


def _sync_settings(settings, **values):
    return settings.model_copy(update={"sync": settings.sync.model_copy(update=values)})


# -- finding 1: a tracker writes files anywhere -------------------------------------------------

def test_traversal_keys_are_rejected_counted_and_never_written_or_requested(jira_export, tmp_path, settings,
                                                                             credentials):
    deep = tmp_path / "a" / "b" / "c" / "d"
    outside = tmp_path / "outside"
    with FakeJira.from_export(jira_export, BASIC) as site:
        model = site.issues[sorted(site.issues)[0]]
        for key in (f"{outside}/PWNED", "../../../../PWNED-KEY", "PWNED KEY-1"):
            site.issues[key] = {**copy.deepcopy(model), "key": key}
        evil = copy.deepcopy(model)
        evil["key"], evil["fields"]["project"]["key"] = "EVIL-1", "../../../PWNED-PROJ"
        site.issues["EVIL-1"] = evil
        site.boards = [*site.boards, {"id": "/../../../PWNED-BOARD", "name": "x"}, {"id": 2.5, "name": "y"}]
        report = sync_jira(site.url, deep / "store", settings, flavour="cloud")
    written = [p for p in tmp_path.rglob("*") if "PWNED" in p.name or "EVIL" in p.name]
    assert not written and not outside.exists()
    assert not [path for path in site.hits if "PWNED" in path or "EVIL" in path or "/x/" in path]
    reasons = {r["record"]: r["reason"] for r in report.rejections}
    assert len(reasons) == 6, reasons
    assert "not a Jira issue key" in reasons["'../../../../PWNED-KEY'"]
    assert "not a Jira project key" in reasons["'EVIL-1'"]
    assert "not a board id" in reasons["board '/../../../PWNED-BOARD'"]
    assert "6 rejected" in report.format()
    assert len(read_tables(deep / "store").tickets) == len(site.issues) - 4


def test_a_sync_folder_of_an_earlier_version_is_cleaned_and_keeps_working(synced, jira_export, tmp_path, settings,
                                                                         credentials):
    """A folder written before keys were checked may hold records under names no valid key gives
    and projects in its state that are not keys: the next sync drops them, counted, and
    the store equals an import of what the site holds."""
    store = _copy(synced, tmp_path / "store")
    raw = sync_folder(store)
    model = json.loads((jira_export / "issues" / sorted(p.name for p in (jira_export / "issues").iterdir())[0])
                       .read_text())
    (raw / "issues" / "OLD KEY-1.json").write_text(json.dumps({**model, "key": "OLD KEY-1"}))
    (raw / "sprints-board-..%2Fx.json").write_text(json.dumps({"isLast": True, "values": []}))
    state = json.loads((raw / "sync-state").read_text())
    (raw / "sync-state").write_text(json.dumps({**state, "projects": [*state["projects"], "../../../PWNED-PROJ"]}))
    with FakeJira.from_export(jira_export, BASIC) as site:
        report = sync_jira(site.url, store, settings, flavour="cloud")
    assert not (raw / "issues" / "OLD KEY-1.json").exists() and not (raw / "sprints-board-..%2Fx.json").exists()
    assert not [path for path in site.hits if "PWNED" in path]
    assert len(report.rejections) == 3, report.rejections
    import_jira_json(jira_export, tmp_path / "ref", settings)
    assert fingerprint(read_tables(store)) == fingerprint(read_tables(tmp_path / "ref"))


@given(st.text())
def test_a_file_stem_is_one_safe_name_per_text(text):
    stem = file_stem(text)
    assert set(stem) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-%")
    assert stem not in {"", ".", ".."} and not stem.startswith(".") and len(stem) <= 200
    assert file_stem(text + "x") != stem and file_stem("." + text) != stem  # no two texts share a name here


@pytest.mark.parametrize("name", ["../escaped.json", "/tmp/escaped.json", "issues/../../escaped.json", "."])
def test_nothing_is_written_outside_the_sync_folder(name, tmp_path):
    with pytest.raises(ConnectorError, match="outside the sync folder"):
        write_whole(tmp_path / "store.sync", name, {"planted": True})
    assert not [p for p in tmp_path.rglob("*") if p.is_file()] and not Path("/tmp/escaped.json").exists()


# -- finding 2: credentials go only to the configured origin ------------------------------------

def test_a_link_to_another_origin_is_refused_and_gets_no_token(github_export, tmp_path, settings, credentials):
    with FakeGitHub(github_export, REPO, GH_TOKEN) as site, Recorder() as thief:
        site.next_link = f"{thief.url}/repos/{REPO}/issues?page=2"
        with pytest.raises(ConnectorError, match="another origin") as refused:
            sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
    assert thief.seen == [] and thief.url.split("//")[1] in str(refused.value)
    assert GH_TOKEN not in str(refused.value) and not (tmp_path / "store").exists()


# -- finding 4: paging has no bound --------------------------------------------------------------

LOOP_FLAVOUR = {"token": "cloud", "start_at": "datacenter", "total": "datacenter", "changelog": "cloud",
                "boards": "cloud"}
LOOP_SAYS = {"token": "repeated nextPageToken", "start_at": "startAt", "total": "more than its total",
             "changelog": "more than its total", "boards": "nothing new"}


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_listing_that_never_ends_ends_the_sync_and_leaves_the_store(loop, synced, jira_export, tmp_path, settings,
                                                                       credentials):
    store = _copy(synced, tmp_path / "store")
    before = _state(store)
    flavour = LOOP_FLAVOUR[loop]
    with FakeJira.from_export(jira_export, BASIC if flavour == "cloud" else f"Bearer {PAT}") as site:
        site.loop = loop
        with pytest.raises(ConnectorError, match=LOOP_SAYS[loop]):
            sync_jira(site.url, store, settings, flavour=flavour, full=True)
    assert _state(store) == before


def test_a_link_cycle_ends_the_sync_and_leaves_the_store(github_export, tmp_path, settings, credentials):
    with FakeGitHub(github_export, REPO, GH_TOKEN) as site:
        sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
        before = _state(tmp_path / "store")
        site.next_link = "self"
        with pytest.raises(ConnectorError, match="seen before"):
            sync_github(REPO, tmp_path / "store", settings, api_url=site.url, full=True)
    assert _state(tmp_path / "store") == before


def test_a_page_budget_ends_the_sync(synced, jira_export, tmp_path, settings, credentials):
    store = _copy(synced, tmp_path / "store")
    before = _state(store)
    with FakeJira.from_export(jira_export, BASIC) as site, pytest.raises(ConnectorError, match="page budget of 3"):
        sync_jira(site.url, store, _sync_settings(settings, max_pages=3), flavour="cloud", full=True)
    assert site.hits["/rest/api/3/search/jql"] + site.hits["/rest/api/3/status"] <= 3 and _state(store) == before


@pytest.mark.parametrize("bound", ["request_seconds", "deadline_seconds"])
def test_a_trickling_answer_is_cut_off(bound, synced, jira_export, tmp_path, settings, credentials):
    """One byte every 0.2 s: never idle for the read timeout, and cut off by the read's own
    deadline or the sync's."""
    store = _copy(synced, tmp_path / "store")
    before = _state(store)
    with FakeJira.from_export(jira_export, BASIC) as site:
        site.trickle = 0.2
        started = time.monotonic()
        with pytest.raises(ConnectorError, match="deadline"):
            sync_jira(site.url, store, _sync_settings(settings, **{bound: 2.0}), flavour="cloud")
    assert time.monotonic() - started < 8 and _state(store) == before


# -- finding 5: a 3xx is never data --------------------------------------------------------------

def test_a_redirect_is_an_error_naming_its_status_and_host(github_export, tmp_path, settings, credentials):
    with FakeGitHub(github_export, REPO, GH_TOKEN) as site:
        sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
        before = _state(tmp_path / "store")
        milestones = (sync_folder(tmp_path / "store") / "milestones.json").read_text()
        site.moved = "https://api.elsewhere.example/repositories/42/milestones"
        with pytest.raises(ConnectorError, match=r"301.*api\.elsewhere\.example"):
            sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
    assert _state(tmp_path / "store") == before
    assert (sync_folder(tmp_path / "store") / "milestones.json").read_text() == milestones


# -- finding 9: named errors and handled values --------------------------------------------------

@pytest.mark.parametrize(("name", "reshape", "says"), [
    ("a list", lambda page: [page], "search page is not an object"),
    ("issues as numbers", lambda page: {**page, "issues": [1, "two", *page["issues"]]}, None),
    ("an issue without a key", lambda page: {**page, "issues": [{"fields": {}}, *page["issues"]]}, None),
])
def test_a_search_of_the_wrong_shape_is_named_or_counted(name, reshape, says, jira_export, tmp_path, settings,
                                                          credentials):
    with FakeJira.from_export(jira_export, BASIC) as site:
        site.reshape = reshape
        if says:
            with pytest.raises(ConnectorError, match=says):
                sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
            return
        report = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    assert report.rejections and all(r["reason"] in {"not an object", "no key"} for r in report.rejections)


def test_github_issues_of_the_wrong_shape_are_named_or_counted(github_export, tmp_path, settings, credentials):
    with FakeGitHub(github_export, REPO, GH_TOKEN) as site:
        site.reshape = lambda issues: {"message": "Server Error"}
        with pytest.raises(ConnectorError, match="not a list"):
            sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
        site.reshape = lambda issues: [*issues, {"number": "../../x", "title": "t"}, {"title": "no number"}, 7]
        report = sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
    assert len(report.rejections) == 3, report.rejections
    assert not [path for path in site.hits if "/x/" in path or ".." in path]


@pytest.mark.parametrize("after", ["-5", "nan", "soon-ish", "inf"])
def test_a_retry_after_that_says_nothing_usable_falls_back_to_backoff(after, jira_export, tmp_path, settings,
                                                                       credentials):
    with FakeJira.from_export(jira_export, BASIC) as site:
        site.faults["/rest/api/3/status"] = 1
        site.limit_headers = {"Retry-After": after}
        sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    gap = site.times["/rest/api/3/status"][1] - site.times["/rest/api/3/status"][0]
    assert site.hits["/rest/api/3/status"] == 2 and gap < 5  # backoff's first wait, not a minute


# -- finding 10: secrets never echoed ------------------------------------------------------------

@pytest.mark.parametrize("tracker", ["jira", "github"])
def test_an_echoing_server_error_shows_its_status_and_no_secret(tracker, jira_export, github_export, tmp_path,
                                                                settings, credentials):
    store = tmp_path / "store"
    fake = FakeJira.from_export(jira_export, BASIC) if tracker == "jira" else FakeGitHub(github_export, REPO, GH_TOKEN)
    secrets = [TOKEN, CREDENTIAL, PAT] if tracker == "jira" else [GH_TOKEN]
    with fake as site:
        site.echo = True
        with pytest.raises(ConnectorError) as failed:
            if tracker == "jira":
                sync_jira(site.url, store, settings, flavour="cloud")
            else:
                sync_github(REPO, store, settings, api_url=site.url)
        args = (["jira", "--url", site.url] if tracker == "jira" else ["github", "--repo", REPO, "--api-url", site.url])
        done = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", *args, "--store", str(store)],
                              capture_output=True, text=True,
                              env=cli_env(JIRA_EMAIL="pm@example.com", JIRA_API_TOKEN=TOKEN, GITHUB_TOKEN=GH_TOKEN))
    assert "500" in str(failed.value) and done.returncode == 2 and "500" in done.stderr
    text = str(failed.value) + done.stdout + done.stderr
    files = [p.read_bytes() for f in (store, sync_folder(store)) if f.exists() for p in f.rglob("*") if p.is_file()]
    for secret in secrets:
        assert secret not in text and not any(secret.encode() in data for data in files)
