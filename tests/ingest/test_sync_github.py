"""`slipcast sync github` against a fake GitHub on loopback (tests/fake_github.py)."""

from __future__ import annotations

import json
import shutil

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


def test_sync_github_on_the_command_line(export, tmp_path):
    import subprocess
    import sys

    with FakeGitHub(export, REPO, TOKEN) as site:
        env = {"GITHUB_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", "github", "--repo", REPO, "--api-url",
                               site.url, "--store", str(tmp_path / "store")], capture_output=True, text=True, env=env)
        refused = subprocess.run([sys.executable, "-m", "slipcast.cli", "sync", "github", "--repo", REPO, "--api-url",
                                  site.url, "--store", str(tmp_path / "other")], capture_output=True, text=True,
                                 env={**env, "GITHUB_TOKEN": "wrong-token"})
    assert done.returncode == 0, done.stderr
    assert "synced" in done.stdout and len(read_tables(tmp_path / "store").tickets) == len(site.issues)
    assert refused.returncode == 2 and "GITHUB_TOKEN" in refused.stderr and "wrong-token" not in refused.stderr
