"""A ticket model withheld at a horizon answers no probability there, with the reason, in the
live state and on the page (issue 35: no number that is not honest is shown as a probability)."""

from __future__ import annotations

import dataclasses

import numpy as np
from fastapi.testclient import TestClient

from slipcast.core.contracts import HORIZONS
from slipcast.features.store_history import History
from slipcast.ingest.tables import write_tables
from slipcast.scoring.forecast import ticket_forecasts_of
from slipcast.scoring.model_store import ModelStore
from slipcast.serving.app import create_app
from tests.helpers import busiest_time

REASON = "withheld {}: tested forward, what would be served there has ECE 0.200 against a noise floor of 0.070"


def _withheld(loaded, horizons):
    held = {name: {"reason": REASON.format(name)} for name in horizons}
    return dataclasses.replace(loaded, metadata={**loaded.metadata, "withheld": held})


def _withheld_everywhere(loaded):
    return _withheld(loaded, [name for *_, name in HORIZONS])


def test_withheld_tickets_get_no_probability_and_say_why(trained):
    s, tables = trained["settings"], trained["tables"]
    store = ModelStore(s)
    store.refresh()
    model = store.get("ticket")
    history = History(tables, s.features)
    now = busiest_time(tables)
    ids = history.open_at(now)
    who, _, tickets = history.features(ids, [now] * len(ids))
    projects = list(who["project"])
    served = ticket_forecasts_of(tickets, projects, _withheld(model, []))
    assert served and all(t.probability is not None and t.basis != "withheld" for t in served)
    held = ticket_forecasts_of(tickets, projects, _withheld_everywhere(model))
    assert [t.ticket_id for t in held] == [t.ticket_id for t in served]
    assert all(t.probability is None and t.basis == "withheld" and t.reason.startswith("withheld ") for t in held)
    # only the horizons withheld: the others keep their probabilities
    early = HORIZONS[0][-1]
    mixed = ticket_forecasts_of(tickets, projects, _withheld(model, [early]))
    elapsed = np.asarray(tickets["span_elapsed"])
    assert all((t.basis == "withheld") == (e < HORIZONS[0][1]) for t, e in zip(mixed, elapsed))


def test_the_page_says_there_is_no_reliable_ticket_forecast(trained, tmp_path):
    s, tables = trained["settings"], trained["tables"]
    local = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": write_tables(tables, tmp_path / "store"), "ledger_url": None})})
    store = ModelStore(local)
    store.refresh()
    store._models["ticket"] = _withheld_everywhere(store.get("ticket"))  # as training would have marked it
    now = busiest_time(tables).to_pydatetime()
    with TestClient(create_app(local, store=store, clock=lambda: now)) as c:
        mid = c.get("/v1/milestones", params={"limit": 1}).json()["items"][0]["milestone_id"]
        detail = c.get(f"/v1/milestones/{mid}").json()
        page = c.get(f"/milestones/{mid}").text
    assert detail["tickets"] and all(t["basis"] == "withheld" and t["probability"] is None for t in detail["tickets"])
    assert "No reliable ticket forecast for this team yet" in page
