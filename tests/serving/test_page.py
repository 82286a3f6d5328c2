"""The dashboard page in a real headless Chromium (Debian's chromium and chromium-driver), driven
by Selenium, against the service on loopback."""

from __future__ import annotations

import shutil
import threading
import time

import httpx
import pytest
import uvicorn

from slipcast.ingest.tables import write_tables
from slipcast.serving.app import create_app
from slipcast.tools.service import free_port
from tests.helpers import busiest_time

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="chromium and chromium-driver are not installed "
                                "(.ci/run installs them from Debian)")


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    s = trained["settings"]
    s = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": write_tables(trained["tables"], root / "store"), "ledger_url": f"sqlite:///{root / 'ledger.db'}"})})
    now = busiest_time(trained["tables"]).to_pydatetime()
    app = create_app(s, clock=lambda: now)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield {"url": f"http://127.0.0.1:{server.config.port}", "app": app, "root": root}
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
    browser.find_element(By.LINK_TEXT, "← all open milestones").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#portfolio tr.milestone")
