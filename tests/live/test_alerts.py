"""Alerts: a webhook receiver on loopback told, once, signed, when an open milestone's risk rose."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.core.settings import AlertSubscription
from slipcast.ingest.tables import write_tables
from slipcast.live.alerts import Deliveries, event
from slipcast.live.ledger import Ledger
from slipcast.live.records import MilestoneState
from slipcast.scoring.records import ModelRef
from slipcast.serving.app import create_app
from tests.fakes.loopback import JsonHandler, LoopbackSite
from tests.helpers import busiest_time

SECRET = "whsec-that-must-never-be-logged"


class Receiver(LoopbackSite):
    """A webhook receiver: answers 503 to the first ``refuse`` deliveries, then 204."""

    def __init__(self, refuse: int = 0):
        self.received: list[tuple[dict, bytes]] = []
        self.refuse = refuse
        receiver = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refuse > 0:
                    receiver.refuse -= 1
                    return self._answer(503, {"error": "busy"})
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                return self._answer(204)

        super().__init__(Handler)


def _milestones(client) -> dict[str, dict]:
    return {m["milestone_id"]: m for m in client.get("/v1/milestones", params={"limit": 500}).json()["items"]}


def _expected(earlier: list[dict[str, dict]], after: dict[str, dict], bands: list[str], points: float) -> set[str]:
    """The milestones whose band rose since the last state, or whose probability moved by
    ``points`` from any state of the week before (``earlier``: one state per day, oldest first)."""
    out = set()
    for mid, now in after.items():
        seen = [state[mid] for state in earlier if mid in state and state[mid]["probability"] is not None]
        if not seen or now["probability"] is None:
            continue
        if bands.index(now["risk_band"]) > bands.index(seen[-1]["risk_band"]) or \
                max(abs(now["probability"] - w["probability"]) for w in seen) >= points - 1e-9:
            out.add(mid)
    return out


@pytest.fixture
def setup(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("SLIPCAST_TEST_HOOK_SECRET", SECRET)
    store = write_tables(trained["tables"], tmp_path / "store")
    return {"store": store, "tmp": tmp_path, "trained": trained, "now": busiest_time(trained["tables"])}


def _settings(setup, receiver_url: str):
    s = setup["trained"]["settings"]
    hook = AlertSubscription(url=f"{receiver_url}/hooks/slipcast", secret_env="SLIPCAST_TEST_HOOK_SECRET",
                             band_rise=True, min_points=0.1, within_days=7, page_url="https://dash.example/page")
    return s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": setup["store"], "ledger_url": f"sqlite:///{setup['tmp'] / 'ledger.db'}", "alerts": [hook]})})


def test_a_rise_is_posted_once_signed_retried_and_logged(setup):
    with Receiver(refuse=1) as receiver:
        s = _settings(setup, receiver.url)
        clock = [setup["now"]]
        app = create_app(s, clock=lambda: clock[0].to_pydatetime())
        with TestClient(app) as client:
            earlier = [_milestones(client)]
            assert not receiver.received  # nothing recorded before the first state: nothing to compare
            bands = sorted(s.serving.risk_bands, key=s.serving.risk_bands.__getitem__)
            for days in range(1, 7):  # day by day, until some milestone's risk has moved
                clock[0] = setup["now"] + timedelta(days=days)
                assert app.state.live.refresh()
                after = _milestones(client)
                expected = _expected(earlier, after, bands, 0.1)
                if expected:
                    break
                earlier.append(after)
            assert expected
            # another worker building the same state sends nothing more
            with TestClient(create_app(s, clock=lambda: clock[0].to_pydatetime())) as other:
                other.get("/v1/milestones")
            assert app.state.live.refresh()  # nor does the same state built again
            assert app.state.live.alerts.wait(120)  # delivered in the background
    events = [json.loads(body) for _, body in receiver.received]
    assert sorted(e["milestone_id"] for e in events) == sorted(expected)
    for headers, body in receiver.received:
        stamp = headers["x-slipcast-timestamp"]
        assert headers["x-slipcast-signature"] == "sha256=" + hmac.new(
            SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        e = json.loads(body)
        now = after[e["milestone_id"]]
        assert e["after"]["probability"] == now["probability"] and e["after"]["risk_band"] == now["risk_band"]
        assert e["before"]["probability"] in {state[e["milestone_id"]]["probability"] for state in earlier
                                              if e["milestone_id"] in state}
        assert e["link"] == f"https://dash.example/page/milestones/{quote(e['milestone_id'], safe='')}" and "reason" in e
        assert pd.Timestamp(e["as_of"]) == pd.Timestamp(now["as_of"])
    log = Ledger(s.serving.ledger_url).alerts()
    assert len(log) == len(expected) and all(a["status"] == "delivered" for a in log)
    assert sorted(a["attempts"] for a in log)[-1] == 2  # the first delivery was refused once, then retried
    assert not any(SECRET in json.dumps(a, default=str) for a in log)


def test_a_receiver_that_stays_down_is_logged_as_failed(setup):
    with Receiver(refuse=100) as receiver:
        s = _settings(setup, receiver.url)
        clock = [setup["now"]]
        app = create_app(s, clock=lambda: clock[0].to_pydatetime())
        with TestClient(app):
            for days in range(1, 8):
                clock[0] = setup["now"] + timedelta(days=days)
                app.state.live.refresh()
                if Ledger(s.serving.ledger_url).alerts():
                    break
            assert app.state.live.alerts.wait(120)
    log = Ledger(s.serving.ledger_url).alerts()
    assert log and all(a["status"] == "failed" and a["attempts"] == 4 and a["response"] == "503 Service Unavailable"
                       for a in log)


class SlowReceiver(LoopbackSite):
    """A webhook receiver that takes ``delay`` seconds over each of its first ``slow`` deliveries,
    then answers at once; ``arrived`` is set at each delivery's arrival."""

    def __init__(self, delay: float, slow: int):
        self.received: list[bytes] = []
        self.slow, self.arrived = slow, threading.Event()
        receiver = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                if receiver.slow > 0:
                    receiver.slow -= 1
                    time.sleep(delay)
                receiver.received.append(body)
                return self._answer(204)

        super().__init__(Handler)


def test_a_slow_receiver_holds_up_neither_start_up_nor_a_refresh(setup):
    """Deliveries run in the background (docs/architecture.md, "Alerts"): a receiver that takes 8 s
    over each of the first two delays neither the service's start (its /healthz) nor a refresh,
    and every alert is delivered later all the same."""
    delay = 8.0
    with SlowReceiver(delay, slow=2) as receiver:
        s = _settings(setup, receiver.url)
        hook = s.serving.alerts[0].model_copy(update={"min_points": 0.001})  # any move: several alerts at once
        s = s.model_copy(update={"serving": s.serving.model_copy(update={"alerts": [hook]})})
        earlier = (setup["now"] - timedelta(days=3)).to_pydatetime()
        with TestClient(create_app(s, clock=lambda: earlier)):  # the ledger's earlier records: nothing to compare yet
            pass
        assert not receiver.received
        clock = [setup["now"]]
        app = create_app(s, clock=lambda: clock[0].to_pydatetime())
        started = time.monotonic()
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            up = time.monotonic() - started
            claimed = Ledger(s.serving.ledger_url).alerts()
            assert claimed and up < delay, (len(claimed), up)
            assert receiver.arrived.wait(10)  # the first delivery is under way meanwhile
            clock[0] = setup["now"] + timedelta(days=1)
            started = time.monotonic()
            assert app.state.live.refresh()
            assert time.monotonic() - started < delay
            assert app.state.live.alerts.wait(180)
        log = Ledger(s.serving.ledger_url).alerts()
        assert len(log) > len(claimed) and all(a["status"] == "delivered" for a in log)
        assert len(receiver.received) == len(log)


def _pending(ledger: Ledger, count: int) -> list[int]:
    """``count`` alerts claimed in ``ledger``, not delivered yet."""
    at = datetime(2026, 3, 2, tzinfo=UTC)
    return [ledger.claim_alert("hook", f"M-{i}", at, "risk band rose") for i in range(count)]


def test_a_full_delivery_queue_drops_with_a_counted_logged_reason(tmp_path, monkeypatch, caplog):
    """The queue is bounded (``serving.alert_queue``): with one delivery under way and one
    waiting, the next ones are dropped at once, counted, logged and marked in the ledger."""
    monkeypatch.setenv("SLIPCAST_TEST_HOOK_SECRET", SECRET)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ids = _pending(ledger, 4)
    with SlowReceiver(2.0, slow=1) as receiver:
        hook = AlertSubscription(url=f"{receiver.url}/hook", secret_env="SLIPCAST_TEST_HOOK_SECRET")
        deliveries = Deliveries(size=1)
        try:
            assert deliveries.submit(hook, ids[0], {"n": 0}, ledger)
            assert receiver.arrived.wait(10)  # taken off the queue, under way
            started = time.monotonic()
            with caplog.at_level(logging.WARNING):
                queued = [deliveries.submit(hook, i, {"n": i}, ledger) for i in ids[1:]]
            assert time.monotonic() - started < 1.0 and queued == [True, False, False]
            assert deliveries.wait(60)
        finally:
            deliveries.stop()
    log = {a["id"]: a for a in ledger.alerts()}
    assert [log[i]["status"] for i in ids] == ["delivered", "delivered", "dropped", "dropped"]
    assert all("queue was full" in log[i]["response"] for i in ids[2:]) and deliveries.dropped == 2
    assert caplog.text.count("queue was full") == 2 and len(receiver.received) == 2


class EchoingReceiver(LoopbackSite):
    """A receiver that answers ``status`` with a body echoing the request's headers and a token."""

    def __init__(self, status: int):
        class Handler(JsonHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                return self._answer(status, {"echo": dict(self.headers), "token": "ghp_receivers0wnsecret"})

        super().__init__(Handler)


@pytest.mark.parametrize("status, phrase, tries", [(500, "500 Internal Server Error", 4), (403, "403 Forbidden", 1)])
def test_a_receivers_error_body_is_neither_logged_nor_stored(tmp_path, monkeypatch, caplog, status, phrase, tries):
    monkeypatch.setenv("SLIPCAST_TEST_HOOK_SECRET", SECRET)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    (alert,) = _pending(ledger, 1)
    with EchoingReceiver(status) as receiver, caplog.at_level(logging.DEBUG):
        deliveries = Deliveries(size=10)
        try:
            deliveries.submit(AlertSubscription(url=f"{receiver.url}/hook", secret_env="SLIPCAST_TEST_HOOK_SECRET"),
                              alert, {"milestone_id": "M-0"}, ledger)
            assert deliveries.wait(60)
        finally:
            deliveries.stop()
    (row,) = ledger.alerts()
    assert (row["status"], row["attempts"], row["response"]) == ("failed", tries, phrase)
    for text in (caplog.text, json.dumps(row, default=str)):
        assert "ghp_" not in text and "sha256=" not in text and SECRET not in text
    assert phrase in caplog.text


def test_the_alert_link_encodes_the_milestone_id():
    at = datetime(2026, 3, 2, tzinfo=UTC)
    now = MilestoneState(milestone_id="gh-acme/widget-ms-3 ü%", project="gh-acme/widget", name="v3",
                         kind="release", start_at=at, due_at=at, as_of=at, status="ok", probability=0.7,
                         risk_band="high", basis="model", change_7d=None,
                         model=ModelRef(name="m", version="1", run_id=None, candidate=None, source="registry"))
    hook = AlertSubscription(url="https://hooks.example/x", secret_env="X", page_url="https://dash.example/page/")
    before = {"as_of": at, "probability": 0.2, "risk_band": "low"}
    link = event(now, "risk band rose", before, hook)["link"]
    assert link == "https://dash.example/page/milestones/gh-acme%2Fwidget-ms-3%20%C3%BC%25"
