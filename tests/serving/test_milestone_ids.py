"""Every milestone id the service lists opens: ids holding '/', '%', spaces and non-ASCII (GitHub's
are ``gh-{owner}/{repo}-ms-N``), and one ending in '/history', on the API, its history and the
page, whose links encode them (docs/architecture.md, "Live state")."""

from __future__ import annotations

import html
from urllib.parse import quote, urljoin

import pytest
from fastapi.testclient import TestClient

from slipcast.ingest.tables import Tables, write_tables
from slipcast.serving.app import create_app
from tests.helpers import busiest_time, open_ids

GITHUB = "gh-acme/widget-ms-3"
ODD_IDS = [GITHUB, f"{GITHUB}/history", "50% done/ü ß", "日本語 1"]  # as many as milestones are open then


def renamed(tables: Tables, names: dict[str, str]) -> Tables:
    """The same history with milestones renamed wherever their id is written."""
    events = tables.events.copy()
    events["milestone_id"] = events["milestone_id"].replace(names)
    moves = events["field"] == "milestone"
    for column in ("from_value", "to_value"):
        events.loc[moves, column] = events.loc[moves, column].replace(names)
    return Tables(tables.milestones.assign(milestone_id=tables.milestones["milestone_id"].replace(names)),
                  tables.tickets.assign(milestone_id=tables.tickets["milestone_id"].replace(names)),
                  events, tables.links)


@pytest.fixture(scope="module")
def odd(trained, tmp_path_factory):
    tables = trained["tables"]
    now = busiest_time(tables)
    chosen = sorted(open_ids(tables, now))[:len(ODD_IDS)]
    assert len(chosen) == len(ODD_IDS)
    store = write_tables(renamed(tables, dict(zip(chosen, ODD_IDS))), tmp_path_factory.mktemp("odd") / "store")
    s = trained["settings"]
    s = s.model_copy(update={"serving": s.serving.model_copy(update={"store": store})})
    with TestClient(create_app(s, clock=lambda: now.to_pydatetime())) as client:
        yield client


def test_every_listed_id_opens_encoded_or_with_its_slashes(odd):
    listed = {m["milestone_id"] for m in odd.get("/v1/milestones", params={"limit": 500}).json()["items"]}
    assert set(ODD_IDS) <= listed
    for mid in listed:
        encoded = quote(mid, safe="")
        detail = odd.get(f"/v1/milestones/{encoded}")
        assert detail.status_code == 200 and detail.json()["milestone_id"] == mid, (mid, detail.text)
        history = odd.get(f"/v1/milestones/{encoded}/history")
        assert history.status_code == 200 and history.json()["milestone_id"] == mid and history.json()["points"]
        if not mid.endswith("/history"):  # the slashes left as they are open it too
            assert odd.get(f"/v1/milestones/{quote(mid)}").json()["milestone_id"] == mid


def test_an_id_ending_in_history_is_told_apart_by_its_encoded_slash(odd):
    """A final segment written ``history`` asks for the history; an id's own '/history' comes
    with its slash encoded (docs/architecture.md, "Live state")."""
    own = odd.get(f"/v1/milestones/{quote(GITHUB, safe='')}%2Fhistory")
    assert own.status_code == 200 and own.json()["milestone_id"] == f"{GITHUB}/history" and "tickets" in own.json()
    for path in (f"/v1/milestones/{quote(GITHUB, safe='')}/history", f"/v1/milestones/{GITHUB}/history"):
        history = odd.get(path)
        assert history.status_code == 200 and history.json()["milestone_id"] == GITHUB and "points" in history.json()
        assert history.headers["ETag"] != own.headers["ETag"]
    assert odd.get(f"/v1/milestones/{quote(GITHUB, safe='')}%2Fhistory/history").json()["milestone_id"] == \
        f"{GITHUB}/history"


def test_the_page_links_every_milestone_by_its_encoded_id_and_back(odd):
    page = odd.get("/")
    assert page.status_code == 200
    for mid in ODD_IDS:
        link = f'href="milestones/{quote(mid, safe="")}"'
        assert link in page.text, mid
        url = urljoin("http://testserver/", f"milestones/{quote(mid, safe='')}")
        one = odd.get(url)
        assert one.status_code == 200 and html.escape(mid) in one.text, mid
        back = one.text.split('<p><a href="', 1)[1].split('"', 1)[0]
        assert urljoin(url, back) == "http://testserver/"
    unencoded = odd.get(f"/milestones/{GITHUB}")  # a slash left as it is opens the page too, and leads back
    back = unencoded.text.split('<p><a href="', 1)[1].split('"', 1)[0]
    assert unencoded.status_code == 200 and urljoin(f"http://testserver/milestones/{GITHUB}", back) == \
        "http://testserver/"
