"""`slipcast sync jira` against a fake Jira on loopback (tests/fakes/fake_jira.py)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from slipcast.ingest.connectors.http import ConnectorError
from slipcast.ingest.connectors.jira import sync_jira
from slipcast.ingest.connectors.store import sync_folder
from slipcast.ingest.exports import render
from slipcast.ingest.importers.jira_json import import_jira_json
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint, read_tables
from tests.fakes.fake_jira import FakeJira
from tests.fakes.loopback import cli_env
from tests.ingest.kills import killed_when, rewritten

TOKEN = "cloud-token-that-must-never-be-written"
PAT = "dc-pat-that-must-never-be-written"
BASIC = "Basic " + base64.b64encode(f"pm@example.com:{TOKEN}".encode()).decode()


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site") / "export"
    render(generate(SimulationConfig(projects=3, tickets=300, seed=11)), "jira-json", folder, {"one_file_per_issue"})
    return folder


@pytest.fixture
def cloud_env(monkeypatch):
    monkeypatch.setenv("JIRA_EMAIL", "pm@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)


def _imported(folder, out, settings) -> str:
    import_jira_json(folder, out, settings)
    return fingerprint(read_tables(out))


def _nothing_holds(secret: str, *folders) -> bool:
    return not any(secret.encode() in p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file())


def test_a_cloud_sync_gives_the_tables_an_import_of_the_same_records_gives(export, tmp_path, settings, cloud_env):
    with FakeJira.from_export(export, BASIC) as site:
        site.faults["/rest/api/3/search/jql"] = 2  # rate limited twice: waits what Retry-After says, then goes on
        report = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)
    assert report.issues == len(site.issues) and report.changelog_pages > 0  # Cloud's cut changelogs completed
    assert site.hits["/rest/api/3/search/jql"] == 2 + -(-len(site.issues) // 100)
    assert not report.imported.rejections
    assert TOKEN not in report.format() and _nothing_holds(TOKEN, tmp_path / "store", sync_folder(tmp_path / "store"))


@pytest.mark.slow  # seconds of real waits or resampling: make test runs it
def test_a_rate_limit_reset_time_is_waited_for(export, tmp_path, settings, cloud_env):
    """Jira Cloud may send only ``X-RateLimit-Reset``, an ISO 8601 time: the sync waits until then
    (3 s here), not what backoff alone would wait before a second try (at most 1.5 s)."""
    with FakeJira.from_export(export, BASIC) as site:
        site.faults["/rest/api/3/status"] = 1
        site.reset_in = 3.0
        sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    refused, retried = site.times["/rest/api/3/status"]
    assert 2.7 <= retried - refused <= 4.5
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)


def test_a_data_center_sync_pages_by_start_at(export, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("JIRA_PAT", PAT)
    with FakeJira.from_export(export, f"Bearer {PAT}") as site:
        report = sync_jira(site.url, tmp_path / "store", settings, flavour="datacenter")
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)
    assert report.changelog_pages == 0 and site.hits["/rest/api/2/search"] == -(-len(site.issues) // 100)
    assert _nothing_holds(PAT, tmp_path / "store", sync_folder(tmp_path / "store"))


def test_a_second_sync_fetches_only_what_changed_and_equals_a_full_one(export, tmp_path, settings, cloud_env):
    edited = tmp_path / "edited"
    shutil.copytree(export, edited)
    with FakeJira.from_export(export, BASIC) as site:
        sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
        later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        changed = sorted(site.issues)[:5]
        for key in changed:  # reprioritised on the site after the first sync
            issue = site.issues[key]
            issue["fields"].update(updated=later, priority={"id": "1", "name": "Highest"})
            (edited / "issues" / f"{key}.json").write_text(json.dumps(issue))
        site.served.clear()
        report = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    assert sorted(site.served) == changed and report.issues == 5 and report.since is not None
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(edited, tmp_path / "ref", settings)


def test_a_refused_credential_is_named_never_shown(export, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("JIRA_EMAIL", "pm@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", "a-wrong-token")
    with FakeJira.from_export(export, BASIC) as site, pytest.raises(ConnectorError) as refused:
        sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    assert "401" in str(refused.value) and "JIRA_API_TOKEN" in str(refused.value)
    assert "a-wrong-token" not in str(refused.value)
    assert not (tmp_path / "store").exists()  # nothing written when nothing could be fetched


def test_sync_on_the_command_line(export, tmp_path):
    with FakeJira.from_export(export, BASIC) as site:
        env = cli_env(JIRA_EMAIL="pm@example.com", JIRA_API_TOKEN=TOKEN)
        done = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", "jira", "--url", site.url,
                               "--store", str(tmp_path / "store")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "synced" in done.stdout and TOKEN not in done.stdout + done.stderr
    assert len(read_tables(tmp_path / "store").tickets) == len(site.issues)


@pytest.mark.slow
def test_a_sync_killed_at_any_point_leaves_the_old_store_or_the_new_and_the_next_completes(export, tmp_path, settings):
    """20 kills of a full sync, each at a moment the sync folder's own progress names: half once
    a chosen number of issue files are rewritten (mid-fetch), half at a random moment after the
    statuses are (fetching sprints, importing, or between the store and its watermark). Each
    kill is checked to have landed so, from the files' times; the store is the old or the new."""
    import random

    env = cli_env(JIRA_EMAIL="pm@example.com", JIRA_API_TOKEN=TOKEN)
    store = tmp_path / "store"
    raw = sync_folder(store)
    with FakeJira.from_export(export, BASIC) as site:
        cmd = [sys.executable, "-m", "slipcast.cli", "sync", "jira", "--url", site.url, "--store", str(store)]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        old = fingerprint(read_tables(store))
        importing = ((raw / "sync-state").stat().st_mtime_ns - (raw / "statuses.json").stat().st_mtime_ns) / 1e9
        issues = sorted((raw / "issues").glob("*.json"))
        later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        for key in sorted(site.issues)[:5]:
            site.issues[key]["fields"].update(updated=later, priority={"id": "1", "name": "Highest"})
        new = _site_tables(site, tmp_path / "now", settings)
        rng, seen, landed = random.Random(0), set(), {"fetch": 0, "after fetch": 0, "finished": 0}
        for i in range(20):
            started = time.time_ns()
            if i % 2 == 0:
                target = rng.randint(1, len(issues) - 1)
                ended = killed_when(cmd + ["--full"], env, lambda s=started, t=target: rewritten(issues, s) >= t)
            else:
                ended = killed_when(cmd + ["--full"], env, lambda s=started: rewritten([raw / "statuses.json"], s) > 0,
                                    delay=rng.uniform(0, importing))
            fetched = rewritten(issues, started)
            done = rewritten([raw / "statuses.json"], started), rewritten([raw / "sync-state"], started)
            landed["finished"] += ended is not None
            landed["fetch"] += ended is None and 0 < fetched < len(issues)
            landed["after fetch"] += ended is None and done == (1, 0)
            seen.add(fingerprint(read_tables(store)))
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert seen <= {old, new}  # never half of one and half of the other
    assert fingerprint(read_tables(store)) == new
    assert landed["fetch"] >= 8 and landed["after fetch"] >= 5, landed  # the kills landed mid-sync


def _site_tables(site: FakeJira, folder, settings) -> str:
    """The fingerprint of the tables an import of what the site holds now gives."""
    (folder / "issues").mkdir(parents=True)
    for key, issue in site.issues.items():
        (folder / "issues" / f"{key}.json").write_text(json.dumps(issue))
    for project, versions in site.versions.items():
        (folder / f"versions-{project}.json").write_text(json.dumps(versions))
    (folder / "statuses.json").write_text(json.dumps(site.statuses))
    (folder / "sprints-board-1.json").write_text(json.dumps({"isLast": True, "values": site.sprints}))
    return _imported(folder, folder.parent / f"{folder.name}-tables", settings)


@pytest.mark.slow  # real data or many exports end to end: make test runs it
def test_the_duraspace_history_synced_through_the_fake_equals_its_import(tmp_path, settings, duraspace_dir, cloud_env):
    """The real export served by the fake site (the richest copy of each issue, as the importer
    keeps it): a Cloud sync gives the same canonical tables as `slipcast import jira-json`."""
    issues: dict[str, dict] = {}
    for path in sorted(duraspace_dir.glob("*.json")):
        raw = path.read_bytes()
        try:
            issue = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            issue = json.loads(raw.decode(settings.imports.fallback_encoding))
        items = sum(len(h.get("items", [])) for h in (issue.get("changelog") or {}).get("histories", []))
        kept = issues.get(issue["key"])
        if kept is None or items > sum(len(h.get("items", [])) for h in kept["changelog"]["histories"]):
            issues[issue["key"]] = issue
    with FakeJira(issues, BASIC) as site:
        report = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
    assert report.issues == len(issues) and report.changelog_pages > 0
    import_jira_json(duraspace_dir, tmp_path / "ref", settings)
    synced, imported = read_tables(tmp_path / "store"), read_tables(tmp_path / "ref")
    assert synced.events.equals(imported.events)  # every change, in the same order
    for name in ("milestones", "tickets", "links"):  # the same rows; their order follows file names ("DS-1_CL.json")
        a, b = (getattr(t, name) for t in (synced, imported))
        pd.testing.assert_frame_equal(a.sort_values(list(a.columns)).reset_index(drop=True),
                                      b.sort_values(list(b.columns)).reset_index(drop=True))


def test_an_issue_deleted_on_the_site_leaves_the_store_at_the_next_key_sweep(export, tmp_path, settings, cloud_env):
    with FakeJira.from_export(export, BASIC) as site:
        sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
        deleted = sorted(site.issues)[7]
        del site.issues[deleted]
        quiet = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")  # swept at the full sync
        assert deleted in set(read_tables(tmp_path / "store").tickets["ticket_id"]) and not quiet.notes
        swept = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud", sweep=True)
        assert any("1 gone" in n for n in swept.notes)
        assert fingerprint(read_tables(tmp_path / "store")) == _site_tables(site, tmp_path / "now", settings)
    assert deleted not in set(read_tables(tmp_path / "store").tickets["ticket_id"])


@pytest.mark.slow  # seconds of real waits or resampling: make test runs it
def test_a_dropped_connection_and_a_repeated_issue_change_nothing(export, tmp_path, settings, cloud_env):
    with FakeJira.from_export(export, BASIC) as site:
        site.drops["/rest/api/3/search/jql"] = 1
        site.drops["/rest/api/3/issue/"] = 2
        site.repeat = True  # a record that slid onto the next page
        report = sync_jira(site.url, tmp_path / "store", settings, flavour="cloud")
        assert not +site.drops  # every drop happened, and was retried
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)
    assert report.issues > len(site.issues)  # the repeats were fetched, and written over their first copy
