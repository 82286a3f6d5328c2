"""A milestone model withheld at a horizon answers no probability there, with the reason, in
forecasts and in the API (issue 35: no number that is not honest is shown as a probability)."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from slipcast.core.contracts import HORIZONS
from slipcast.features.store_history import History
from slipcast.ingest.tables import write_tables
from slipcast.scoring.forecast import forecasts_of
from slipcast.scoring.model_store import ModelStore
from slipcast.serving.app import create_app
from tests.helpers import busiest_time
from tests.scoring.test_withheld_tickets import _withheld, _withheld_everywhere


def test_withheld_milestones_get_no_probability_and_say_why(trained):
    s, tables = trained["settings"], trained["tables"]
    store = ModelStore(s)
    store.refresh()
    model = store.get("milestone")
    history = History(tables, s.features)
    now = busiest_time(tables)
    ids = history.open_at(now)
    who, feats, _ = history.features(ids, [now] * len(ids))
    args = (list(who["milestone_id"]), list(who["project"]), [now] * len(ids), feats, np.arange(len(ids)))
    served = forecasts_of(*args, _withheld(model, []), s)
    answered = [f.status == "ok" for f in served]
    assert any(answered)
    held = forecasts_of(*args, _withheld_everywhere(model), s)
    for before, after in zip(served, held):
        if before.status == "ok":
            assert after.status == "withheld" and after.probability is None and after.basis == "withheld"
            assert after.message.startswith("withheld ") and not after.factors and after.reason is None
        else:  # past due and too new are said as before
            assert after.status == before.status
    early = HORIZONS[0][-1]
    mixed = forecasts_of(*args, _withheld(model, [early]), s)
    elapsed = np.asarray(feats["span_elapsed"])
    assert any(a for a, e in zip(answered, elapsed) if e >= HORIZONS[0][1])
    assert all((f.status == "withheld") == (a and e < HORIZONS[0][1]) for f, a, e in zip(mixed, answered, elapsed))


def test_the_api_answers_withheld_milestones_without_a_probability(trained, tmp_path):
    s, tables = trained["settings"], trained["tables"]
    local = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": write_tables(tables, tmp_path / "store"), "ledger_url": None})})
    store = ModelStore(local)
    store.refresh()
    store._models["milestone"] = _withheld_everywhere(store.get("milestone"))  # as training would have marked it
    now = busiest_time(tables).to_pydatetime()
    with TestClient(create_app(local, store=store, clock=lambda: now)) as c:
        items = c.get("/v1/milestones", params={"limit": 500}).json()["items"]
        page = c.get("/").text
    held = [m for m in items if m["status"] == "withheld"]
    assert held and all(m["probability"] is None for m in held)
    assert all(m["status"] in ("withheld", "past_due", "insufficient_history") for m in items)
    assert page  # the portfolio page renders with withheld milestones
