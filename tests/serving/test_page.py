"""The dashboard page in a real headless Chromium (Debian's chromium and chromium-driver), driven
by Selenium, against the service on loopback: the portfolio, a milestone's page, and a program
declared in the settings (open milestones of three teams, one waiting on another) and its page,
at the latest time three teams have a milestone open."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import pandas as pd
import pytest
import uvicorn

from slipcast.core.settings import DependencyDeclaration, ProgramDeclaration
from slipcast.ingest.tables import Tables, write_tables
from slipcast.serving.app import create_app
from slipcast.tools.service import free_port
from tests.helpers import open_ids

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed "
                                "(.ci/run installs them from Debian)")
PROGRAM = "launch/2026 <beta>"  # a '/' and what must be escaped, as a tracker may send


def program_time(tables: Tables) -> tuple[pd.Timestamp, list[str]]:
    """The latest day after a milestone's start at which three teams have a milestone open, and
    three such milestones, each its team's with the most tickets (work committed)."""
    tickets = tables.tickets["milestone_id"].value_counts()
    ms = tables.milestones.assign(tickets=tables.milestones["milestone_id"].map(tickets).fillna(0))
    for t in (ms["start_at"] + pd.Timedelta(days=1)).sort_values(ascending=False):
        open_ = ms[ms["milestone_id"].isin(open_ids(tables, t))]
        if open_["project"].nunique() >= 3:
            ranked = open_.sort_values(["tickets", "milestone_id"], ascending=[False, True])
            return t, ranked.drop_duplicates("project")["milestone_id"].head(3).tolist()
    raise AssertionError("no day with three teams' milestones open")


def unlinked(tables: Tables, milestones: list[str]) -> tuple[str, str]:
    """Two of ``milestones`` no ticket link joins either way, to declare one waiting on the other
    (a dependency against the links would make a cycle, drawn apart)."""
    home = tables.tickets.set_index("ticket_id")["milestone_id"]
    links = tables.links
    linked = set(zip(home.reindex(links["from_ticket"]).to_numpy(), home.reindex(links["to_ticket"]).to_numpy()))
    pairs = [(a, b) for a in milestones for b in milestones if a != b and not {(a, b), (b, a)} & linked]
    assert pairs, "every two of the program's milestones are linked"
    return pairs[0]


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    s = trained["settings"]
    at, chosen = program_time(trained["tables"])
    blocker, dependent = unlinked(trained["tables"], chosen)
    now = at.to_pydatetime()
    s = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": write_tables(trained["tables"], root / "store"), "ledger_url": f"sqlite:///{root / 'ledger.db'}"}),
        "programs": s.programs.model_copy(update={
            "declared": [ProgramDeclaration(program_id=PROGRAM, name="Launch & <beta>", milestones=chosen)],
            "dependencies": [DependencyDeclaration(blocker=blocker, dependent=dependent)]})})
    app = create_app(s, clock=lambda: now)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield {"url": f"http://127.0.0.1:{server.config.port}", "app": app, "root": root, "program": chosen,
           "declared": (blocker, dependent)}
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_lists_the_open_milestones_riskiest_first_and_opens_one_with_its_chart(site, browser):
    from selenium.webdriver.common.by import By

    listed = httpx.get(site["url"] + "/v1/milestones", params={"limit": 500}).json()["items"]  # what it should show
    browser.get(site["url"] + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#portfolio tr.milestone")
    assert [r.get_attribute("data-id") for r in rows] == [m["milestone_id"] for m in listed]
    shown = [float(p) for r in rows if (p := r.get_attribute("data-probability"))]
    assert shown == sorted(shown, reverse=True) and len(shown) >= 2
    browser.save_screenshot(str(site["root"] / "portfolio.png"))
    assert (site["root"] / "portfolio.png").stat().st_size > 10_000

    first = rows[0].get_attribute("data-id")
    rows[0].find_element(By.TAG_NAME, "a").click()
    assert first in browser.find_element(By.ID, "milestone-title").text
    chart = browser.find_element(By.ID, "history-chart")
    assert chart.find_elements(By.CSS_SELECTOR, "polyline.history-line")  # its days drawn as a line
    assert chart.size["width"] > 300
    drivers = browser.find_elements(By.CSS_SELECTOR, "#drivers tbody tr")
    assert len(drivers) == len(listed[0]["drivers"])
    said = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#factors li")]
    assert said == [f["sentence"] for f in listed[0]["factors"] if abs(f["effect"]) * 100 >= 0.5]
    browser.find_element(By.LINK_TEXT, "← all open milestones").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#portfolio tr.milestone")


def test_the_portfolio_links_a_program_whose_page_draws_its_graph_critical_path_and_milestones(site, browser):
    from selenium.webdriver.common.by import By

    program = site["app"].state.live.get().program(PROGRAM)  # what the page should show
    assert program is not None and program.chance is not None and program.critical_path
    browser.get(site["url"] + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#programs tr.program")
    (row,) = [r for r in rows if r.get_attribute("data-id") == PROGRAM]
    assert "Launch & <beta>" in row.text and f"{program.chance * 100:.0f} %" in row.text
    row.find_element(By.LINK_TEXT, "Launch & <beta>").click()

    assert browser.find_element(By.ID, "program-title").text.startswith("Launch & <beta>")
    chance = browser.find_element(By.ID, "chance").text
    assert f"{program.chance * 100:.0f} %" in chance and f"{program.independent_chance * 100:.0f} %" in chance
    graph = browser.find_element(By.ID, "program-graph")
    assert graph.size["width"] > 300
    boxes = {b.get_attribute("data-id"): b for b in graph.find_elements(By.CSS_SELECTOR, "g.node")}
    assert set(site["program"]) <= set(boxes)
    marked = {m for m, b in boxes.items() if "critical" in b.get_attribute("class").split()}
    assert marked == set(program.critical_path)
    assert all("\u2605" in boxes[m].text for m in marked)  # starred, not only red
    blocker, dependent = site["declared"]
    arrows = graph.find_elements(By.CSS_SELECTOR, "path.edge")
    assert (blocker, dependent) in {(a.get_attribute("data-blocker"), a.get_attribute("data-dependent")) for a in arrows}
    assert boxes[blocker].location["x"] < boxes[dependent].location["x"]  # the blocker a column to the left

    table = browser.find_elements(By.CSS_SELECTOR, "#program-milestones tbody tr")
    assert [r.get_attribute("data-id") for r in table] == [m.milestone_id for m in program.milestones]
    ripples = [r.find_element(By.CLASS_NAME, "ripple").text for r in table]
    days = site["app"].state.settings.programs.ripple_days
    assert any(f"slips {days} days, the program's chance " in t and f"{program.chance * 100:.0f} %" in t for t in ripples)
    edges = browser.find_element(By.ID, "program-edges").text
    assert blocker in edges and "declared" in edges
    browser.save_screenshot(str(site["root"] / "program.png"))
    assert (site["root"] / "program.png").stat().st_size > 10_000
    table[0].find_element(By.TAG_NAME, "a").click()  # the most critical milestone's own page
    assert program.milestones[0].milestone_id in browser.find_element(By.ID, "milestone-title").text
    browser.back()
    browser.find_element(By.LINK_TEXT, "← all open milestones").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#programs tr.program")
