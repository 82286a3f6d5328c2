"""Alerts: a webhook receiver on loopback told, once, signed, when an open milestone's risk rose."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from slipcast.core.settings import AlertSubscription
from slipcast.ingest.tables import write_tables
from slipcast.live.ledger import Ledger
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
        assert e["link"] == f"https://dash.example/page/milestones/{e['milestone_id']}" and "reason" in e
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
    log = Ledger(s.serving.ledger_url).alerts()
    assert log and all(a["status"] == "failed" and a["attempts"] == 4 and a["response"].startswith("503")
                       for a in log)
