"""From API requests to forecasts, through the features/ code training uses.

A batch is one call to ``features_now``: each request's ids are namespaced so requests never
see each other's tickets, and every milestone is scored in one vectorised prediction.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
from fastapi import HTTPException

from features.online import SEP, features_now, state_tables
from features.schema import SchemaError
from features.tables import Tables
from serving.explain import drivers
from serving.model_store import LoadedModel
from serving.schemas import (EventIn, Forecast, ForecastRequest, LinkIn, MilestoneIn, ModelRef, PastMilestone,
                             TicketForecast, TicketForecasts, TicketIn)

INSUFFICIENT = "insufficient_history"


def reject(loc: list, msg: str):
    """A 422 naming the field, in FastAPI's own error shape."""
    raise HTTPException(status_code=422, detail=[{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


def check_request(req: ForecastRequest, now: datetime, loc: list) -> datetime:
    """Checks pydantic cannot express; returns the request's as_of."""
    m = req.milestone
    as_of = req.as_of or now
    if m.due_at <= m.start_at:
        reject([*loc, "milestone", "due_at"], "due_at must be after start_at")
    if as_of < m.start_at:
        reject([*loc, "as_of"], "as_of is before the milestone's start_at")
    seen = set()
    for i, t in enumerate(req.tickets):
        if t.ticket_id in seen:
            reject([*loc, "tickets", i, "ticket_id"], f"duplicate ticket_id {t.ticket_id!r}")
        seen.add(t.ticket_id)
        if t.created_at > as_of:
            reject([*loc, "tickets", i, "created_at"], "created after as_of: send the state as of as_of")
    for i, e in enumerate(req.events):
        if e.ticket_id is None and e.milestone_id is None:
            reject([*loc, "events", i], "an event names a ticket_id or a milestone_id")
    return as_of


def _frame(rows: list, model: type, index: list[int]) -> pd.DataFrame:
    """Pydantic objects as one frame (their attributes read directly), tagged with their request."""
    frame = pd.DataFrame([r.__dict__ for r in rows], columns=list(model.model_fields))
    frame["_req"] = np.asarray(index, dtype=np.int64)
    return frame


def _namespace(frame: pd.DataFrame, columns: list[str], where: pd.Series | None = None) -> None:
    """Prefix ids with their request's number (on the rows ``where`` holds), so requests in one
    batch never share an id."""
    for col in columns:
        keep = frame[col].notna() if where is None else frame[col].notna() & where
        spaced = frame[col].astype(object)
        spaced[keep] = (frame.loc[keep, "_req"].astype(str) + SEP + frame.loc[keep, col].astype(str)).to_numpy(object)
        frame[col] = spaced


def request_frames(reqs: list[ForecastRequest], as_ofs: list[datetime]) -> tuple[Tables, pd.DataFrame, pd.DataFrame]:
    """Canonical tables, snapshots and past outcomes of a batch, ids namespaced per request."""
    ms = _frame([r.milestone for r in reqs], MilestoneIn, list(range(len(reqs))))
    ms["name"] = ms["name"].fillna(ms["milestone_id"])

    def gather(attr: str, model: type) -> pd.DataFrame:
        rows = [(i, x) for i, r in enumerate(reqs) for x in getattr(r, attr)]
        return _frame([x for _, x in rows], model, [i for i, _ in rows])

    tk, ev, lk, past = (gather("tickets", TicketIn), gather("events", EventIn), gather("links", LinkIn),
                        gather("past_milestones", PastMilestone))
    project = ms["project"].to_numpy()
    tk["project"] = tk["project"].fillna(pd.Series(project[tk["_req"]], index=tk.index, dtype=object))
    past["project"] = project[past["_req"]]
    _namespace(ev, ["from_value", "to_value"], where=ev["field"] == "milestone")  # they name milestones
    _namespace(ms, ["milestone_id", "project"])
    _namespace(tk, ["ticket_id", "project", "milestone_id"])
    _namespace(ev, ["ticket_id", "milestone_id"])
    _namespace(lk, ["from_ticket", "to_ticket"])
    _namespace(past, ["project"])
    snaps = pd.DataFrame({"milestone_id": ms["milestone_id"], "as_of": as_ofs})
    tables = state_tables(*(f.drop(columns="_req") for f in (ms, tk, ev, lk)))
    outcomes = pd.DataFrame({"project": past["project"], "known_at": pd.to_datetime(past["known_at"], utc=True),
                             "slipped": past["slipped"].astype(float)})
    return tables, snaps, outcomes


def band(p: float, bands: dict[str, float]) -> str:
    """The highest risk band whose lower bound ``p`` reaches."""
    return max(((lo, name) for name, lo in bands.items() if p >= lo), default=(0, "low"))[1]


def model_ref(loaded: LoadedModel) -> ModelRef:
    meta = loaded.metadata
    return ModelRef(name=meta.get("model_name", ""), version=loaded.version, run_id=meta.get("run_id"),
                    candidate=meta.get("candidate"), source=loaded.source)


def forecast_many(reqs: list[ForecastRequest], loaded: LoadedModel, settings,
                  loc_prefix: list | None = None) -> list[Forecast]:
    """Forecasts for a batch of milestone states, in request order."""
    now = datetime.now(timezone.utc)
    as_ofs = [check_request(r, now, (loc_prefix or []) + ([i] if loc_prefix is not None else []))
              for i, r in enumerate(reqs)]
    try:
        tables, snaps, outcomes = request_frames(reqs, as_ofs)
        feats, _ = features_now(tables, snaps, settings.features, outcomes)
    except SchemaError as exc:  # the canonical contract refused something the schema let through
        reject(loc_prefix or [], str(exc))
    X = loaded.frame(feats)
    p = loaded.predict(X)
    explain = [i for i, r in enumerate(reqs) if r.explain]
    why = dict(zip(explain, drivers(loaded, X.iloc[explain], p[explain], settings.serving.top_drivers))) if explain else {}
    ref = model_ref(loaded)
    out = []
    min_weeks = settings.features.min_history_weeks
    for i, req in enumerate(reqs):
        row = feats.iloc[i]
        values = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in X.iloc[i].items()}
        common = {"milestone_id": req.milestone.milestone_id, "as_of": as_ofs[i], "features": values, "model": ref}
        if row["days_left"] <= 0:
            out.append(Forecast(status="past_due", probability=None, risk_band=None,
                                message=f"the due date has passed with {int(row['remaining_count'])} "
                                        "committed tickets still open", **common))
            continue
        if row["scope_count"] == 0 or row["history_weeks"] < min_weeks:
            why_not = ("nothing is committed to the milestone yet" if row["scope_count"] == 0 else
                       f"the team has {row['history_weeks']:.1f} weeks of finished work; "
                       f"{min_weeks} are needed (send its recently resolved tickets)")
            out.append(Forecast(status=INSUFFICIENT, probability=None, risk_band=None,
                                message=f"insufficient history: {why_not}", **common))
            continue
        out.append(Forecast(status="ok", probability=round(float(p[i]), 4),
                            risk_band=band(float(p[i]), settings.serving.risk_bands),
                            drivers=why.get(i, []), **common))
    return out


def forecast_tickets(req: ForecastRequest, loaded: LoadedModel, settings) -> TicketForecasts:
    """For each ticket of the milestone still open: the probability it is not done, and in the
    milestone, by the due date."""
    as_of = check_request(req, datetime.now(timezone.utc), [])
    tables, snaps, outcomes = request_frames([req], [as_of])
    _, tickets = features_now(tables, snaps, settings.features, outcomes)
    p = loaded.predict(loaded.frame(tickets)) if len(tickets) else []
    return TicketForecasts(
        milestone_id=req.milestone.milestone_id, as_of=as_of, model=model_ref(loaded),
        tickets=[TicketForecast(ticket_id=t.split(SEP, 1)[1], probability=round(float(q), 4))
                 for t, q in zip(tickets["ticket_id"], p)])
