"""Forecasts written back into the tracker (``live.publish``, ``ingest.connectors.writes``): the
block's text, then ``slipcast publish`` against the fake Jira and the fake GitHub on loopback,
extended to take writes, with a real store and a trained champion."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from slipcast import cli
from slipcast.core.settings import PublishSettings
from slipcast.ingest.connectors.http import ConnectorError
from slipcast.ingest.exports import render as render_export
from slipcast.ingest.exports.github import REPO
from slipcast.ingest.importers.github import import_github
from slipcast.ingest.importers.jira_json import import_jira_json
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.live.ledger import Ledger
from slipcast.live.publish import Published, moved, publish_store, read_block, render, state_now, with_block
from slipcast.live.state import LiveState
from slipcast.scoring.model_store import ModelStore
from tests.fakes.fake_github import FakeGitHub
from tests.fakes.fake_jira import FakeJira

TOKEN = "jira-token-that-must-never-be-written"
GH_TOKEN = "ghp_publish_token_that_must_never_be_written"
BASIC = "Basic " + base64.b64encode(f"pm@example.com:{TOKEN}".encode()).decode()
PAGE = "https://slipcast.example.com/page"
A_FORECAST = Published("model", 0.34, "medium", date(2026, 12, 20), date(2027, 1, 10),
                       datetime(2026, 12, 6, 18, 0, tzinfo=UTC), f"{PAGE}/milestones/jira-version-20001")


# -- the block ------------------------------------------------------------------------------

def test_a_block_reads_back_as_what_it_was_written_from():
    for p in (A_FORECAST, Published("past_due", None, None, None, date(2027, 1, 3), A_FORECAST.as_of, None),
              Published("base_rate", None, None, None, None, A_FORECAST.as_of, A_FORECAST.link)):
        assert read_block(f"notes\n\n{render(p)}\nmore") == p
    assert read_block("no block here") is None
    edited = render(A_FORECAST).replace("Slip risk: 34 %", "Slip risk: about a third")
    assert read_block(edited) is None  # a block a person rewrote is written anew


def test_only_the_block_changes_and_text_around_it_stays_byte_for_byte():
    before, after = "Release 2.0: the new importer.\r\nOwner: Kim\n\n", "\n\nNotes kept below.\n"
    first = with_block(before + "intro", render(A_FORECAST))
    assert first == before + "intro\n\n" + render(A_FORECAST)
    text = before + render(A_FORECAST) + after
    newer = Published("model", 0.61, "high", None, None, A_FORECAST.as_of, None)
    assert with_block(text, render(newer)) == before + render(newer) + after
    assert with_block("", render(newer)) == render(newer)


def test_a_block_is_written_again_only_when_its_numbers_moved_enough():
    same_band = Published("model", 0.38, "medium", None, None, A_FORECAST.as_of, None)
    assert moved(A_FORECAST, same_band, 0.05) is None  # 4 points, same band
    assert moved(A_FORECAST, Published("model", 0.39, "medium", None, None, A_FORECAST.as_of, None), 0.05)
    assert moved(A_FORECAST, Published("model", 0.35, "high", None, None, A_FORECAST.as_of, None), 0.05)
    withheld = Published("base_rate", None, None, None, None, A_FORECAST.as_of, None)
    assert moved(A_FORECAST, withheld, 0.05) and moved(None, A_FORECAST, 0.05)
    assert moved(withheld, withheld, 0.05) is None


def test_a_ledger_made_before_publications_gets_their_table_and_records_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Ledger(url).engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE publications"))
    ledger = Ledger(url)
    ledger.record_publication("github", "https://api.github.com:443", "milestone 3 of acme/app",
                              "description: no block yet; 34 % medium", "gh-acme/app-ms-3", A_FORECAST.numbers())
    [row] = ledger.publications()
    assert (row["target"], row["probability"], row["risk_band"], row["state"]) == \
        ("milestone 3 of acme/app", 0.34, "medium", "model")
    assert row["when_50"] == datetime(2026, 12, 20, tzinfo=UTC) and row["as_of"] == A_FORECAST.as_of


# -- against the fakes ---------------------------------------------------------------------

def open_count(milestones, t) -> int:
    return ((milestones["start_at"] <= t) & (milestones["completed_at"].isna() | (milestones["completed_at"] > t))).sum()


@pytest.fixture(scope="module")
def sites(trained, tmp_path_factory):
    """The trained history as a Jira site and a GitHub repository, each imported into a store as a
    sync leaves it; settings fixed at a time when many milestones are open."""
    root = tmp_path_factory.mktemp("publish")
    tables = generate(SimulationConfig(projects=6, tickets=1200, seed=1))  # four teams with releases: fix versions
    s = trained["settings"]
    render_export(tables, "jira-json", root / "jira", {"one_file_per_issue"})
    import_jira_json(root / "jira", root / "jira-store", s)
    render_export(tables, "github", root / "github")
    import_github(root / "github", root / "github-store", s)
    releases = tables.milestones[tables.milestones["kind"] == "release"]
    times = (releases["start_at"] + pd.Timedelta(days=1)).sort_values()
    at = max(times[times >= times.quantile(0.5)], key=lambda t: open_count(releases, t))  # with a history behind
    s = s.model_copy(update={"serving": s.serving.model_copy(update={"as_of": at.to_pydatetime()})})
    return {"root": root, "settings": s, "state": state_now(s, root / "jira-store", s.serving.as_of)}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("JIRA_EMAIL", "pm@example.com")
    monkeypatch.setenv("JIRA_API_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", GH_TOKEN)


def _settings(sites, tmp_path):
    s = sites["settings"]
    return s.model_copy(update={"serving": s.serving.model_copy(update={"ledger_url": f"sqlite:///{tmp_path}/l.db"})})


def _jira(site) -> PublishSettings:
    return PublishSettings(tracker="jira", url=site.url, page_url=PAGE)


def _versions(sites) -> list[str]:
    return [m.milestone_id.removeprefix("jira-version-") for m in sites["state"].milestones
            if m.milestone_id.startswith("jira-version-")]


def test_jira_gets_each_block_and_property_once_and_a_second_publish_writes_nothing(sites, tmp_path, env):
    s = _settings(sites, tmp_path)
    with FakeJira.from_export(sites["root"] / "jira", BASIC) as site:
        first = publish_store(s, sites["root"] / "jira-store", s.serving.as_of, _jira(site))
        versions = _versions(sites)
        assert len(versions) >= 3 and len(first.written) == len(versions)
        for m in sites["state"].milestones:
            if m.milestone_id.startswith("jira-version-"):
                block = read_block(site.version(m.milestone_id.removeprefix("jira-version-"))["description"])
                assert block is not None and block.state == (m.basis if m.status == "ok" else m.status)
                assert block.probability == (round(m.probability * 100) / 100 if m.basis == "model" else None)
                assert block.link == f"{PAGE}/milestones/{m.milestone_id}"
        projects = {m.project for m in sites["state"].milestones if m.milestone_id.startswith("jira-version-")}
        assert {k for k in site.properties} == {(p, "slipcast.forecasts") for p in projects}
        held = {v for value in site.properties.values() for v in value["versions"]}
        assert held == set(versions)
        puts = [w for w in site.writes if "/version/" in w["path"]]
        assert len(puts) == len(versions) and all(set(w["body"]) == {"description"} for w in puts)
        writes = len(site.writes)
        second = publish_store(s, sites["root"] / "jira-store", s.serving.as_of, _jira(site))
        assert second.written == [] and second.properties == [] and len(site.writes) == writes
        assert second.unchanged == len(versions)
    recorded = Ledger(s.serving.ledger_url).publications()
    assert len(recorded) == writes and {r["tracker"] for r in recorded} == {"jira"}
    assert all(r["site"] == site.url for r in recorded)  # origin only: no user, no token


def test_a_persons_edit_outside_the_block_survives_a_rewrite(sites, tmp_path, env):
    s = _settings(sites, tmp_path)
    with FakeGitHub(sites["root"] / "github", REPO, GH_TOKEN) as site:
        options = PublishSettings(tracker="github", url=site.url, repo=REPO)
        publish_store(s, sites["root"] / "github-store", s.serving.as_of, options)
        edited = [m for m in site.milestones if read_block(m.get("description") or "")]
        assert edited
        for m in edited:  # a person writes above and below the block; the block's numbers are old ones
            block = re.search(r"\[slipcast\].*\[/slipcast\]", m["description"], re.S).group(0)
            high = (read_block(block).probability or 0) > 0.5
            said = "1 % (band low" if high else "99 % (band high"
            old = re.sub(r"Slip risk: .*", f"Slip risk: {said}, from the model)", block)
            m["description"] = f"Scope agreed with ops.\n\n{old}\n\n- freeze on Friday\n"
        site.writes.clear()
        again = publish_store(s, sites["root"] / "github-store", s.serving.as_of, options)
    assert len(again.written) == len(edited) == len(site.writes)
    for m in edited:
        text = m["description"]
        assert text.startswith("Scope agreed with ops.\n\n[slipcast]\n") and text.endswith("[/slipcast]\n\n- freeze on Friday\n")
        assert "Slip risk: 99 % (band high" not in text and "Slip risk: 1 % (band low" not in text


def test_a_429_is_retried_and_the_write_lands(sites, tmp_path, env):
    s = _settings(sites, tmp_path)
    with FakeJira.from_export(sites["root"] / "jira", BASIC) as site:
        site.faults["/rest/api/3/version/"] = 2
        report = publish_store(s, sites["root"] / "jira-store", s.serving.as_of, _jira(site))
        assert len(report.written) == len(_versions(sites)) and site.faults["/rest/api/3/version/"] == 0
    with FakeGitHub(sites["root"] / "github", REPO, GH_TOKEN) as site:
        site.limited = 2
        report = publish_store(s, sites["root"] / "github-store", s.serving.as_of,
                               PublishSettings(tracker="github", url=site.url, repo=REPO))
        assert report.written and len(site.writes) == len(report.written) and site.limited == 0


def test_a_refused_write_names_the_permission_it_needs(sites, tmp_path, env):
    s = _settings(sites, tmp_path)
    with FakeJira.from_export(sites["root"] / "jira", BASIC) as site:
        site.forbid = True
        with pytest.raises(ConnectorError, match="Administer Projects") as jira:
            publish_store(s, sites["root"] / "jira-store", s.serving.as_of, _jira(site))
    with FakeGitHub(sites["root"] / "github", REPO, GH_TOKEN) as site:
        site.forbid = True
        with pytest.raises(ConnectorError, match=r"Issues: read and write .* repo scope") as github:
            publish_store(s, sites["root"] / "github-store", s.serving.as_of,
                          PublishSettings(tracker="github", url=site.url, repo=REPO))
    assert "403" in str(jira.value) and TOKEN not in str(jira.value) and GH_TOKEN not in str(github.value)
    assert Ledger(s.serving.ledger_url).publications() == []  # nothing was written


def _run(argv, capsys, settings, monkeypatch) -> tuple[int, str, str]:
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dry_run_prints_the_diff_and_writes_nothing(sites, tmp_path, env, capsys, monkeypatch):
    s = _settings(sites, tmp_path)
    with FakeGitHub(sites["root"] / "github", REPO, GH_TOKEN) as site:
        before = json.dumps(site.milestones)
        code, out, err = _run(["publish", "github", "--repo", REPO, "--api-url", site.url, "--store",
                               str(sites["root"] / "github-store"), "--page-url", PAGE, "--dry-run"],
                              capsys, s, monkeypatch)
        assert code == 0, err
        assert site.writes == [] and json.dumps(site.milestones) == before
    assert out.startswith(f"dry run, github {site.url}: ") and "--- milestone " in out and "+++ milestone " in out
    assert "+[slipcast]" in out and "+[/slipcast]" in out and f"+Page: {PAGE}/milestones/" in out
    assert not Path(s.serving.ledger_url.removeprefix("sqlite:///")).exists()  # not even the ledger


def test_the_token_is_in_nothing_written(sites, tmp_path, env, capsys, monkeypatch):
    s = _settings(sites, tmp_path)
    store = sites["root"] / "jira-store"
    with FakeJira.from_export(sites["root"] / "jira", BASIC) as site:
        code, out, err = _run(["publish", "jira", "--url", site.url, "--store", str(store), "--page-url", PAGE],
                              capsys, s, monkeypatch)
        assert code == 0, err
        site.forbid = True
        for version in (v for vs in site.versions.values() for v in vs if read_block(v.get("description") or "")):
            version["description"] = "changed"  # a write is due: it is refused
        refused, _, said = _run(["publish", "jira", "--url", site.url, "--store", str(store)], capsys, s, monkeypatch)
        held = json.dumps([site.versions, {str(k): v for k, v in site.properties.items()}, site.writes])
    assert refused == 2 and "Administer Projects" in said
    assert site.writes and "wrote" in out and (tmp_path / "l.db").is_file()
    basic = BASIC.removeprefix("Basic ")
    for secret in (TOKEN, basic):
        assert secret not in held and secret not in out + err + said
        assert not any(secret.encode() in p.read_bytes() for p in [*store.rglob("*"), tmp_path / "l.db"]
                       if p.is_file())


def test_the_service_publishes_after_a_refresh_and_a_failed_publish_fails_no_refresh(sites, tmp_path, env):
    s = _settings(sites, tmp_path)
    with FakeGitHub(sites["root"] / "github", REPO, GH_TOKEN) as site:
        options = PublishSettings(tracker="github", url=site.url, repo=REPO, page_url=PAGE)
        serving = s.serving.model_copy(update={"store": str(sites["root"] / "github-store"), "build_niceness": None,
                                               "publish": options})
        served = s.model_copy(update={"serving": serving, "work_dir": tmp_path / "work"})
        models = ModelStore(served)
        models.refresh()
        live = LiveState(served, models, lambda: s.serving.as_of)
        try:
            assert live.refresh()
            live.publisher.wait(60)
            assert live.publisher.error is None and site.writes
            assert len(site.writes) == len(live.publisher.report.written)
            site.forbid = True
            for m in site.milestones:
                m["description"] = None  # every block gone: each is due again, and refused
            assert live.refresh()  # the refresh itself is untouched
            live.publisher.wait(60)
            assert "Issues: read and write" in live.publisher.error and live.get() is not None
        finally:
            live.stop()
    rows = Ledger(s.serving.ledger_url).publications()
    assert rows[-1]["what"] == "failed" and "403" in rows[-1]["error"] and GH_TOKEN not in rows[-1]["error"]
    assert len([r for r in rows if r["what"] != "failed"]) == len(live.publisher.report.written)
