"""`slipcast sync github` against a fake GitHub on loopback (tests/fakes/fake_github.py)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from slipcast.ingest.connectors.github import sync_github
from slipcast.ingest.connectors.store import sync_folder
from slipcast.ingest.exports import render
from slipcast.ingest.exports.github import REPO
from slipcast.ingest.importers.github import import_github
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint, read_tables
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.loopback import cli_env
from tests.ingest.kills import killed_when, rewritten

TOKEN = "ghp_token_that_must_never_be_written"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("repo") / "export"
    render(generate(SimulationConfig(projects=2, tickets=250, seed=5)), "github", folder)
    return folder


@pytest.fixture(autouse=True)
def token(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)


def _imported(folder, out, settings) -> str:
    import_github(folder, out, settings)
    return fingerprint(read_tables(out))


def test_a_sync_equals_an_import_and_a_second_fetches_only_what_changed(export, tmp_path, settings):
    edited = tmp_path / "edited"
    shutil.copytree(export, edited)
    with FakeGitHub(export, REPO, TOKEN) as site:
        site.spent = 1  # a spent rate limit first: waited out until its reset
        first = sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
        assert fingerprint(read_tables(tmp_path / "store")) == _imported(export, tmp_path / "ref", settings)
        assert first.issues == len(site.issues) and not first.imported.rejections
        later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        changed = sorted(site.issues)[:3]
        for n in changed:  # reassigned on GitHub after the first sync
            site.issues[n].update(updated_at=later, assignee={"login": "someone-new"})
        (edited / "issues.json").write_text(json.dumps([site.issues[n] for n in sorted(site.issues)]))
        site.hits.clear()
        second = sync_github(REPO, tmp_path / "store", settings, api_url=site.url)
    assert second.issues == 3 and site.hits[f"/repos/{REPO}/issues/N/events"] == 3
    assert second.milestones_unchanged  # If-None-Match with the last ETag: 304
    assert fingerprint(read_tables(tmp_path / "store")) == _imported(edited, tmp_path / "ref2", settings)
    files = [p for f in (tmp_path / "store", sync_folder(tmp_path / "store")) for p in f.rglob("*") if p.is_file()]
    assert not any(TOKEN.encode() in p.read_bytes() for p in files) and TOKEN not in second.format()


@pytest.mark.slow  # seconds of real waits or resampling: make test runs it
def test_sync_github_on_the_command_line(export, tmp_path):
    with FakeGitHub(export, REPO, TOKEN) as site:
        env = cli_env(GITHUB_TOKEN=TOKEN)
        done = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", "github", "--repo", REPO, "--api-url",
                               site.url, "--store", str(tmp_path / "store")], capture_output=True, text=True, env=env)
        refused = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", "github", "--repo", REPO, "--api-url",
                                  site.url, "--store", str(tmp_path / "other")], capture_output=True, text=True,
                                 env={**env, "GITHUB_TOKEN": "wrong-token"})
    assert done.returncode == 0, done.stderr
    assert "synced" in done.stdout and len(read_tables(tmp_path / "store").tickets) == len(site.issues)
    assert refused.returncode == 2 and "GITHUB_TOKEN" in refused.stderr and "wrong-token" not in refused.stderr


@pytest.mark.slow
def test_a_sync_killed_at_any_point_leaves_the_old_store_or_the_new_and_the_next_completes(export, tmp_path, settings):
    """20 kills of a full sync: half once the fake has answered a chosen number of requests
    (mid-fetch), half at a random moment after ``milestones.json`` is rewritten (writing the
    other files, importing, or between the store and its watermark). Each kill is checked to have
    landed so, by the requests served and the files' times; the store is the old or the new."""
    env = cli_env(GITHUB_TOKEN=TOKEN)
    store = tmp_path / "store"
    raw = sync_folder(store)
    edited = tmp_path / "edited"
    shutil.copytree(export, edited)
    with FakeGitHub(export, REPO, TOKEN) as site:
        cmd = [sys.executable, "-m", "slipcast.cli", "sync", "github", "--repo", REPO, "--api-url", site.url,
               "--store", str(store), "--full"]
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        old, requests = fingerprint(read_tables(store)), sum(site.hits.values())
        importing = ((raw / "sync-state").stat().st_mtime_ns - (raw / "milestones.json").stat().st_mtime_ns) / 1e9
        later = (pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for n in sorted(site.issues)[:3]:
            site.issues[n].update(updated_at=later, assignee={"login": "someone-new"})
        (edited / "issues.json").write_text(json.dumps([site.issues[n] for n in sorted(site.issues)]))
        new = _imported(edited, tmp_path / "new", settings)
        rng, seen, landed = random.Random(0), set(), {"fetch": 0, "after fetch": 0, "finished": 0}
        for i in range(20):
            started, before = time.time_ns(), sum(site.hits.values())
            if i % 2 == 0:
                target = rng.randint(1, requests - 1)
                ended = killed_when(cmd, env, lambda b=before, t=target: sum(site.hits.values()) - b >= t)
            else:
                ended = killed_when(cmd, env, lambda s=started: rewritten([raw / "milestones.json"], s) > 0,
                                    delay=rng.uniform(0, importing))
            served = sum(site.hits.values()) - before
            done = rewritten([raw / "milestones.json"], started), rewritten([raw / "sync-state"], started)
            landed["finished"] += ended is not None
            landed["fetch"] += ended is None and 0 < served < requests and done == (0, 0)
            landed["after fetch"] += ended is None and done == (1, 0)
            seen.add(fingerprint(read_tables(store)))
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert seen <= {old, new}  # never half of one and half of the other
    assert fingerprint(read_tables(store)) == new
    assert landed["fetch"] >= 8 and landed["after fetch"] >= 5, landed  # the kills landed mid-sync
