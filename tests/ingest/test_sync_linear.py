"""`slipcast sync linear` against a fake Linear GraphQL API on loopback (tests/fakes/fake_linear.py)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from slipcast.ingest.connectors.http import ConnectorError
from slipcast.ingest.connectors.linear import LIST_PAGE, sync_linear
from slipcast.ingest.connectors.store import sync_folder
from slipcast.ingest.exports import render
from slipcast.ingest.importers.linear import import_linear
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint, read_tables
from tests.fakes.fake_linear import FakeLinear
from tests.fakes.loopback import cli_env
from tests.ingest.kills import killed_when, rewritten

KEY = "lin_api_key_that_must_never_be_written"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workspace") / "export"
    render(generate(SimulationConfig(projects=3, tickets=300, seed=11)), "linear", folder,
           {"removed_items", "open_cycle", "undated_project"})
    return folder


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("LINEAR_API_KEY", KEY)


def _imported(folder, out, settings) -> str:
    import_linear(folder, out, settings)
    return fingerprint(read_tables(out))


def _site_tables(site: FakeLinear, folder, settings) -> str:
    """The fingerprint of the tables an import of what the workspace holds now gives."""
    (folder / "issues").mkdir(parents=True)
    for key, issue in site.issues.items():
        (folder / "issues" / f"{key}.json").write_text(json.dumps(issue))
    (folder / "cycles.json").write_text(json.dumps({"cycles": site.cycles}))
    (folder / "projects.json").write_text(json.dumps({"projects": site.projects}))
    return _imported(folder, folder.parent / f"{folder.name}-tables", settings)


def _nothing_holds(secret: str, *folders) -> bool:
    return not any(secret.encode() in p.read_bytes() for f in folders for p in f.rglob("*") if p.is_file())


def test_a_sync_gives_the_tables_an_import_of_the_same_records_gives(export, tmp_path, settings):
    with FakeLinear.from_export(export, KEY) as site:
        site.embedded = 4  # issues pages carry 4 history entries: the rest is paged per issue
        site.limited = 2  # RATELIMITED twice (HTTP 400), its reset now: retried, then on
        report = sync_linear(tmp_path / "store", settings, api_url=site.url)
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)
    assert report.issues == len(site.issues) and report.history_pages > 0
    assert site.hits["Issues"] == 2 + -(-len(site.issues) // 50) and site.hits["IssueHistory"] == report.history_pages
    assert not report.imported.rejections and not report.rejections
    assert KEY not in report.format() and _nothing_holds(KEY, tmp_path / "store", sync_folder(tmp_path / "store"))


def test_a_second_sync_after_five_edits_makes_few_requests_and_equals_a_full_one(export, tmp_path, settings):
    edited = tmp_path / "edited"
    shutil.copytree(export, edited)
    with FakeLinear.from_export(export, KEY) as site:
        full = sync_linear(tmp_path / "store", settings, api_url=site.url)
        later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)
        changed = sorted(site.issues)[:5]
        for key in changed:  # made urgent in Linear after the first sync
            issue = site.edit(key, later, priority=1)
            (edited / "issues" / f"{key}.json").write_text(json.dumps(issue))
        site.served.clear()
        site.hits.clear()
        again = sync_linear(tmp_path / "store", settings, api_url=site.url)
    print(f"\nLinear sync of {full.issues} issues: {full.requests} requests; after 5 edits: {again.issues} issues, "
          f"{again.requests} requests ({dict(site.hits)})")
    assert sorted(site.served) == changed and again.issues == 5 and again.since is not None
    assert again.requests <= 3  # the changed issues (one page), the cycles, the projects
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(edited, tmp_path / "ref", settings)
    urgent = read_tables(tmp_path / "store").tickets.set_index("ticket_id").loc[changed, "priority"]
    assert (urgent == "Urgent").all()


@pytest.mark.slow  # seconds of real waits
def test_a_spent_budget_is_waited_for_until_its_reset(export, tmp_path, settings):
    """Linear says when a budget refills in epoch milliseconds: a RATELIMITED answer is retried
    at that reset (1.5 s ahead), and an answer that says the budget is spent holds the next request
    until then, not sooner."""
    with FakeLinear.from_export(export, KEY) as site:
        site.limited, site.reset_in = 1, 1.5
        sync_linear(tmp_path / "store", settings, api_url=site.url)
        refused, retried = site.times["Issues"][:2]
        assert 1.3 <= retried - refused <= 3.5
        site.spent = 1
        site.times.clear()
        held = sync_linear(tmp_path / "store", settings, api_url=site.url, full=True)
    asked = sorted(t for times in site.times.values() for t in times)
    assert 1.3 <= asked[1] - asked[0] <= 3.5 and held.waited >= 1.3


def test_a_429_is_retried_too(export, tmp_path, settings):
    with FakeLinear.from_export(export, KEY) as site:
        site.limited, site.limit_status = 2, 429
        sync_linear(tmp_path / "store", settings, api_url=site.url)
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)


def test_an_issue_deleted_in_linear_leaves_the_store_at_the_next_key_sweep(export, tmp_path, settings):
    with FakeLinear.from_export(export, KEY) as site:
        sync_linear(tmp_path / "store", settings, api_url=site.url)
        deleted = sorted(site.issues)[7]
        del site.issues[deleted]
        quiet = sync_linear(tmp_path / "store", settings, api_url=site.url)  # swept at the full sync
        assert deleted in set(read_tables(tmp_path / "store").tickets["ticket_id"]) and not quiet.notes
        swept = sync_linear(tmp_path / "store", settings, api_url=site.url, sweep=True)
        assert any("1 gone" in n for n in swept.notes) and site.hits["IssueKeys"] == -(-len(site.issues) // LIST_PAGE)
        assert fingerprint(read_tables(tmp_path / "store")) == _site_tables(site, tmp_path / "now", settings)
    assert deleted not in set(read_tables(tmp_path / "store").tickets["ticket_id"])


def test_one_team_is_synced_alone(export, tmp_path, settings):
    with FakeLinear.from_export(export, KEY) as site:
        report = sync_linear(tmp_path / "store", settings, team="P001", api_url=site.url)
    tickets = read_tables(tmp_path / "store").tickets
    assert set(tickets["project"]) == {"P001"} and report.issues == len(tickets)
    assert report.issues == sum(1 for i in site.issues.values() if i["team"]["key"] == "P001")


def test_a_graphql_error_is_named_and_leaves_the_store(export, tmp_path, settings):
    with FakeLinear.from_export(export, KEY) as site:
        sync_linear(tmp_path / "store", settings, api_url=site.url)
        before = fingerprint(read_tables(tmp_path / "store"))
        site.errors["Projects"] = "INVALID_INPUT"
        with pytest.raises(ConnectorError, match="Projects: GraphQL error 'INVALID_INPUT': Projects failed"):
            sync_linear(tmp_path / "store", settings, api_url=site.url, full=True)
    assert fingerprint(read_tables(tmp_path / "store")) == before


def test_a_listing_that_never_ends_and_hostile_identifiers_end_or_are_counted(export, tmp_path, settings):
    with FakeLinear.from_export(export, KEY) as site:
        hostile = {**site.issues["P000-1"], "identifier": "../../escape-1"}
        site.issues["../../escape-1"] = hostile
        report = sync_linear(tmp_path / "store", settings, api_url=site.url)
        assert report.rejections == [{"record": "issue '../../escape-1'",
                                      "reason": "not a Linear issue identifier (TEAM-123)"}]
        assert "1 rejected" in report.format() and not (tmp_path / "escape-1.json").exists()
        before = fingerprint(read_tables(tmp_path / "store"))
        site.loop = True
        with pytest.raises(ConnectorError, match="Issues: the next page's cursor .* was seen before"):
            sync_linear(tmp_path / "store", settings, api_url=site.url, full=True)
    assert fingerprint(read_tables(tmp_path / "store")) == before
    assert not any(p.name.startswith("escape") for p in tmp_path.rglob("*"))


def test_a_refused_key_is_named_never_shown(export, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("LINEAR_API_KEY", "lin_api_a_wrong_key")
    with FakeLinear.from_export(export, KEY) as site, pytest.raises(ConnectorError) as refused:
        sync_linear(tmp_path / "store", settings, api_url=site.url)
    assert "401" in str(refused.value) and "LINEAR_API_KEY" in str(refused.value)
    assert "a_wrong_key" not in str(refused.value) and not (tmp_path / "store").exists()
    monkeypatch.delenv("LINEAR_API_KEY")
    with pytest.raises(ConnectorError, match="set LINEAR_API_KEY"):
        sync_linear(tmp_path / "store", settings, api_url="http://127.0.0.1:9")


@pytest.mark.slow  # two child processes
def test_sync_linear_on_the_command_line(export, tmp_path):
    with FakeLinear.from_export(export, KEY) as site:
        env = cli_env(LINEAR_API_KEY=KEY)
        cmd = [sys.executable, "-m", "slipcast.cli", "sync", "linear", "--api-url", site.url]
        done = subprocess.run(cmd + ["--store", str(tmp_path / "store")], capture_output=True, text=True, env=env)
        refused = subprocess.run(cmd + ["--store", str(tmp_path / "other")], capture_output=True, text=True,
                                 env={**env, "LINEAR_API_KEY": "lin_api_wrong"})
    assert done.returncode == 0, done.stderr
    assert "synced Linear" in done.stdout and KEY not in done.stdout + done.stderr
    assert len(read_tables(tmp_path / "store").tickets) == len(site.issues)
    assert refused.returncode == 2 and "LINEAR_API_KEY" in refused.stderr and "lin_api_wrong" not in refused.stderr


@pytest.mark.slow
def test_a_sync_killed_at_any_point_leaves_the_old_store_or_the_new_and_the_next_completes(export, tmp_path, settings):
    """20 kills of a full sync: half once a chosen number of issue files are rewritten (mid-fetch),
    half at a random moment after ``projects.json`` is (importing, or between the store and its
    watermark). Each kill is checked to have landed so, from the files' times; the store is the
    old or the new, and the next sync completes."""
    env = cli_env(LINEAR_API_KEY=KEY)
    store = tmp_path / "store"
    raw = sync_folder(store)
    with FakeLinear.from_export(export, KEY) as site:
        cmd = [sys.executable, "-m", "slipcast.cli", "sync", "linear", "--api-url", site.url, "--store", str(store)]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        old = fingerprint(read_tables(store))
        importing = ((raw / "sync-state").stat().st_mtime_ns - (raw / "projects.json").stat().st_mtime_ns) / 1e9
        issues = sorted((raw / "issues").glob("*.json"))
        later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)
        for key in sorted(site.issues)[:5]:
            site.edit(key, later, priority=1)
        new = _site_tables(site, tmp_path / "now", settings)
        rng, seen, landed = random.Random(0), set(), {"fetch": 0, "after fetch": 0, "finished": 0}
        for i in range(20):
            started = time.time_ns()
            if i % 2 == 0:
                target = rng.randint(1, len(issues) - 1)
                ended = killed_when(cmd + ["--full"], env, lambda s=started, t=target: rewritten(issues, s) >= t)
            else:
                ended = killed_when(cmd + ["--full"], env, lambda s=started: rewritten([raw / "projects.json"], s) > 0,
                                    delay=rng.uniform(0, importing))
            fetched = rewritten(issues, started)
            done = rewritten([raw / "projects.json"], started), rewritten([raw / "sync-state"], started)
            landed["finished"] += ended is not None
            landed["fetch"] += ended is None and 0 < fetched < len(issues)
            landed["after fetch"] += ended is None and done == (1, 0)
            seen.add(fingerprint(read_tables(store)))
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert seen <= {old, new}  # never half of one and half of the other
    assert fingerprint(read_tables(store)) == new
    assert landed["fetch"] >= 8 and landed["after fetch"] >= 5, landed  # the kills landed mid-sync


def test_the_table_of_trackers_runs_a_linear_sync(export, tmp_path, settings):
    """What `slipcast sync linear` and the service (serving.sync) call: one team, and a summary of the run."""
    from slipcast.core.settings import TrackerSettings
    from slipcast.ingest.connectors.trackers import summary, sync_tracker

    with FakeLinear.from_export(export, KEY) as site:
        tracker = TrackerSettings(tracker="linear", url=site.url, team="P002")
        report = sync_tracker(tracker, tmp_path / "store", settings)
    done = summary(tracker, report)
    assert done["records"] == report.issues == len(read_tables(tmp_path / "store").tickets) > 0
    assert done["requests"] == report.requests and done["rejected"] == 0
