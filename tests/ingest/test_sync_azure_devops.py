"""`slipcast sync azure-devops` against a fake Azure DevOps organization on loopback
(tests/fakes/fake_azure_devops.py)."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import time

import pytest

from slipcast.ingest.connectors.azure_devops import sync_azure_devops
from slipcast.ingest.connectors.http import ConnectorError
from slipcast.ingest.connectors.store import sync_folder
from slipcast.ingest.exports import render
from slipcast.ingest.importers.azure_devops import import_azure_devops
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint, read_tables
from tests.fakes.fake_azure_devops import FakeAzureDevOps
from tests.fakes.loopback import cli_env
from tests.ingest.kills import killed_when, rewritten

PAT = "ado-pat-that-must-never-be-written"
BASIC = "Basic " + base64.b64encode(f":{PAT}".encode()).decode()
PROJECT = "Slipcast"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("org") / "export"
    render(generate(SimulationConfig(projects=3, tickets=300, seed=11)), "azure-devops", folder,
           {"removed_items", "nested_iterations"})
    return folder


@pytest.fixture(autouse=True)
def pat(monkeypatch):
    monkeypatch.setenv("AZURE_DEVOPS_PAT", PAT)


def _imported(folder, out, settings) -> str:
    import_azure_devops(folder, out, settings)
    return fingerprint(read_tables(out))


def _site_tables(site: FakeAzureDevOps, folder, settings) -> str:
    """The fingerprint of the tables an import of what the organization holds now gives."""
    (folder / "workitems").mkdir(parents=True)
    for item_id, item in site.items.items():
        revisions = [r for r in site.log if r["id"] == item_id]
        (folder / "workitems" / f"{item_id}.json").write_text(json.dumps({**item, "revisions": revisions}))
    (folder / "states.json").write_text(json.dumps(site.states))
    (folder / "iterations.json").write_text(json.dumps(site.iterations))
    return _imported(folder, folder.parent / f"{folder.name}-tables", settings)


def _nothing_holds(secrets, *folders) -> bool:
    return not any(s.encode() in p.read_bytes() for s in secrets for f in folders for p in f.rglob("*") if p.is_file())


def test_a_sync_gives_the_tables_an_import_of_the_same_records_gives(export, tmp_path, settings):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        site.faults["/_apis/wit/workitemsbatch"] = 2  # rate limited twice: waits what Retry-After says, goes on
        report = sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings, team="P000")
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)
    assert report.items == len(site.items) and report.revisions == len(site.log)
    batches = -(-len(site.items) // 200)
    assert site.hits[f"/acme/{PROJECT}/_apis/wit/workitemsbatch"] == 2 + batches  # 200 ids a request
    assert site.hits[f"/acme/{PROJECT}/_apis/wit/reporting/workitemrevisions"] == -(-len(site.log) // 200)
    assert not report.imported.rejections and report.imported.ignored["tickets"] == 3  # the removed items
    assert (sync_folder(tmp_path / "store") / "team-iterations.json").exists()
    assert PAT not in report.format()
    assert _nothing_holds([PAT, BASIC.split()[1]], tmp_path / "store", sync_folder(tmp_path / "store"))


def test_wiql_is_paged_by_id_range_when_the_project_holds_more_than_an_answer(export, tmp_path, settings):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        site.cap = 120  # as if the project held more than 20,000 work items
        sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
    assert site.hits[f"/acme/{PROJECT}/_apis/wit/wiql"] == -(-len(site.items) // 120) + 1  # and an empty one
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)


def test_an_incremental_sync_after_five_edits_makes_few_requests_and_equals_a_full_one(export, tmp_path, settings):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        full = sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
        for item_id in sorted(site.items)[10:15]:  # reprioritised on the site after the first sync
            site.edit(item_id, {"Microsoft.VSTS.Common.Priority": 1})
        again = sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
        now = _site_tables(site, tmp_path / "now", settings)
    print(f"\nAzure DevOps: full sync {full.requests} requests; incremental after 5 edits {again.requests} requests")
    assert again.since is not None and again.items == 5 and again.revisions == 5
    assert again.requests <= 3  # the revisions feed, one batch of items, the iteration tree
    assert fingerprint(read_tables(tmp_path / "store")) == now
    assert set(read_tables(tmp_path / "store").tickets.set_index("ticket_id").loc[
        [str(i) for i in sorted(site.items)[10:15]], "priority"]) == {"1"}


def test_a_429_is_waited_for_as_long_as_retry_after_says(export, tmp_path, settings):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        site.faults["/_apis/wit/classificationnodes/Iterations"] = 1
        site.retry_after = "1.5"
        sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
    refused, retried = site.times[f"/acme/{PROJECT}/_apis/wit/classificationnodes/Iterations"]
    assert 1.4 <= retried - refused <= 3.5


def test_a_work_item_deleted_on_the_site_leaves_the_store_at_the_next_key_sweep(export, tmp_path, settings):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
        deleted = sorted(site.items)[7]
        site.delete(deleted)
        quiet = sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)  # swept at the full sync
        assert str(deleted) in set(read_tables(tmp_path / "store").tickets["ticket_id"]) and not quiet.notes
        swept = sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings, sweep=True)
        assert any("1 gone" in n for n in swept.notes)
        assert fingerprint(read_tables(tmp_path / "store")) == _site_tables(site, tmp_path / "now", settings)
    assert str(deleted) not in set(read_tables(tmp_path / "store").tickets["ticket_id"])


def test_a_refused_credential_is_named_never_shown(export, tmp_path, settings, monkeypatch):
    monkeypatch.setenv("AZURE_DEVOPS_PAT", "a-wrong-pat")
    with FakeAzureDevOps.from_export(export, BASIC) as site, pytest.raises(ConnectorError) as refused:
        sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
    assert "401" in str(refused.value) and "AZURE_DEVOPS_PAT" in str(refused.value)
    assert "a-wrong-pat" not in str(refused.value)
    assert not (tmp_path / "store").exists()


def test_sync_on_the_command_line_writes_the_token_nowhere(export, tmp_path):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        done = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", "azure-devops", "--org", site.org_url,
                               "--project", PROJECT, "--team", "P001", "--store", str(tmp_path / "store")],
                              capture_output=True, text=True, env=cli_env(AZURE_DEVOPS_PAT=PAT))
    assert done.returncode == 0, done.stderr
    assert "synced Azure DevOps project" in done.stdout
    secrets = [PAT, BASIC.split()[1]]
    assert not any(s in done.stdout + done.stderr for s in secrets)
    assert _nothing_holds(secrets, tmp_path / "store", sync_folder(tmp_path / "store"))
    assert len(read_tables(tmp_path / "store").tickets) == len(site.items) - 3  # the removed items left out


@pytest.mark.slow
def test_a_sync_killed_at_any_point_leaves_the_old_store_or_the_new_and_the_next_completes(export, tmp_path, settings):
    """16 kills of a full sync, each at a moment the sync folder's own progress names: half once a
    chosen number of work item files are rewritten (mid-fetch), half at a random moment after the
    iteration tree is (fetching states, importing, or between the store and its token)."""
    env = cli_env(AZURE_DEVOPS_PAT=PAT)
    store = tmp_path / "store"
    raw = sync_folder(store)
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        cmd = [sys.executable, "-m", "slipcast.cli", "sync", "azure-devops", "--org", site.org_url, "--project",
               PROJECT, "--store", str(store)]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        old = fingerprint(read_tables(store))
        importing = ((raw / "sync-state").stat().st_mtime_ns - (raw / "iterations.json").stat().st_mtime_ns) / 1e9
        items = sorted((raw / "workitems").glob("*.json"))
        for item_id in sorted(site.items)[:5]:
            site.edit(item_id, {"Microsoft.VSTS.Common.Priority": 1})
        new = _site_tables(site, tmp_path / "now", settings)
        rng, seen, landed = random.Random(0), set(), {"fetch": 0, "after fetch": 0, "finished": 0}
        for i in range(16):
            started = time.time_ns()
            if i % 2 == 0:
                target = rng.randint(1, len(items) - 1)
                ended = killed_when(cmd + ["--full"], env, lambda s=started, t=target: rewritten(items, s) >= t)
            else:
                ended = killed_when(cmd + ["--full"], env, lambda s=started: rewritten([raw / "iterations.json"], s) > 0,
                                    delay=rng.uniform(0, importing))
            fetched = rewritten(items, started)
            done = rewritten([raw / "iterations.json"], started), rewritten([raw / "sync-state"], started)
            landed["finished"] += ended is not None
            landed["fetch"] += ended is None and 0 < fetched < len(items)
            landed["after fetch"] += ended is None and done == (1, 0)
            seen.add(fingerprint(read_tables(store)))
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert seen <= {old, new}  # never half of one and half of the other
    assert fingerprint(read_tables(store)) == new
    assert landed["fetch"] >= 6 and landed["after fetch"] >= 4, landed


def test_a_revisions_feed_that_never_ends_stops_the_sync_and_keeps_the_store(export, tmp_path, settings):
    with FakeAzureDevOps.from_export(export, BASIC) as site:
        sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings)
        before = fingerprint(read_tables(tmp_path / "store"))
        site.loop = True
        with pytest.raises(ConnectorError, match="does not advance"):
            sync_azure_devops(site.org_url, PROJECT, tmp_path / "store", settings, full=True)
    assert fingerprint(read_tables(tmp_path / "store")) == before


def test_an_iteration_tree_of_releases_and_a_teams_iterations_make_the_milestones(tmp_path, settings):
    """A dated iteration holding dated ones is a release, its children sprints, an item in a sprint
    a member of both; an iteration the tree leaves undated is dated by the team's settings; doctor
    is told the releases came from the iteration tree."""
    def node(node_id, name, start=None, finish=None, children=()):
        return {"id": node_id, "name": name, "structureType": "iteration", "children": list(children),
                **({"attributes": {"startDate": start, "finishDate": finish}} if start else {})}

    tree = node(1, "Proj", children=[node(2, "Team", children=[
        node(3, "Release 1", "2026-01-05T00:00:00Z", "2026-03-27T00:00:00Z", [
            node(4, "Sprint 1", "2026-01-05T00:00:00Z", "2026-01-16T00:00:00Z"), node(5, "Sprint 2")])])])
    team = {"value": [{"id": "g5", "name": "Sprint 2", "path": "Proj\\Team\\Release 1\\Sprint 2",
                       "attributes": {"startDate": "2026-01-19T00:00:00Z", "finishDate": "2026-01-30T00:00:00Z"}}]}
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "iterations.json").write_text(json.dumps(tree))
    (tmp_path / "src" / "team-iterations.json").write_text(json.dumps(team))
    for item_id, iteration in ((1, 4), (2, 5)):
        fields = {"System.AreaPath": "Proj\\Team", "System.IterationId": iteration, "System.State": "Active",
                  "System.WorkItemType": "User Story", "System.CreatedDate": "2026-01-06T10:00:00Z",
                  "System.ChangedDate": "2026-01-06T10:00:00Z"}
        (tmp_path / "src" / f"{item_id}.json").write_text(json.dumps({"id": item_id, "fields": fields}))
    report = import_azure_devops(tmp_path / "src", tmp_path / "out", settings)
    assert report.modelled == {"releases": "the iteration tree"} and not report.rejections
    tables = read_tables(tmp_path / "out")
    kinds = dict(zip(tables.milestones["name"], tables.milestones["kind"]))
    assert kinds == {"Release 1": "release", "Sprint 1": "sprint", "Sprint 2": "sprint"}
    assert tables.milestones.set_index("name").loc["Sprint 2", "start_at"].isoformat() == "2026-01-19T00:00:00+00:00"
    joined = tables.events[tables.events["field"] == "milestone"].groupby("ticket_id")["to_value"].apply(set)
    assert joined["1"] == {"ado-iteration-3", "ado-iteration-4"} and joined["2"] == {"ado-iteration-3",
                                                                                      "ado-iteration-5"}
    assert set(tables.tickets["milestone_id"]) == {"ado-iteration-4", "ado-iteration-5"}  # the sprint first
