"""The simulator: deterministic, and slips arise from its mechanics."""

import pandas as pd
import pyarrow as pa

from slipcast.ingest.schema import TABLES
from slipcast.ingest.simulator import SimulationConfig, generate
from slipcast.ingest.tables import fingerprint


def test_same_seed_same_history_other_seed_other_history():
    a = generate(SimulationConfig(projects=2, tickets=300, seed=5))
    b = generate(SimulationConfig(projects=2, tickets=300, seed=5))
    c = generate(SimulationConfig(projects=2, tickets=300, seed=6))
    assert fingerprint(a) == fingerprint(b) != fingerprint(c)


def test_mechanics_appear_in_the_events(small_history):
    ev = small_history.events
    status = ev[ev["field"] == "status"]
    moves = ev[ev["field"] == "milestone"]
    due = ev[(ev["field"] == "due_at") & ev["from_value"].notna()]
    assert len(due) > 0, "due dates are moved"
    assert ((status["from_value"] == "done") & (status["to_value"] == "todo")).any(), "work reopens"
    assert (status["to_value"] == "blocked").any(), "tickets wait on other teams"
    assert (small_history.links["kind"] == "depends_on").any()
    assert moves["from_value"].notna().sum() > 0, "scope leaves milestones"
    est = ev[(ev["field"] == "story_points") & ev["from_value"].notna()]
    assert len(est) > 0, "tickets are re-estimated"
    assert small_history.milestones["completed_at"].isna().any(), "some milestones are still open at export"


def test_throughput_varies_by_team_and_drops_over_the_holidays(small_history):
    ev = small_history.events
    done = ev[(ev["field"] == "status") & (ev["to_value"] == "done")]
    project = done["ticket_id"].map(small_history.tickets.set_index("ticket_id")["project"])
    weekly = done.groupby([project, done["at"].dt.to_period("W")]).size()
    per_team = weekly.groupby(level=0).mean()
    assert per_team.max() > 1.3 * per_team.min()
    dates = done["at"]
    holiday = ((dates.dt.month == 12) & (dates.dt.day >= 24)) | ((dates.dt.month == 1) & (dates.dt.day <= 1))
    per_day_holiday = holiday.sum() / max(1, dates[holiday].dt.date.nunique() or 1)
    per_day = len(dates) / dates.dt.date.nunique()
    assert per_day_holiday < per_day


def test_every_time_column_is_utc_at_microseconds(small_history):
    for name, frame in small_history.items():
        spec = TABLES[name]
        times = [f.name for f in spec.schema if pa.types.is_timestamp(f.type)]
        assert times, name
        for col in times:  # every column the schema declares a time, not only those already aware
            dtype = frame[col].dtype
            assert isinstance(dtype, pd.DatetimeTZDtype), (name, col, dtype)
            assert str(dtype.tz) == "UTC" and dtype.unit == "us", (name, col, dtype)


def test_every_ticket_history_is_consistent_with_itself():
    """No change before the ticket exists, each change starts from the value the last one left,
    and the last status is the ticket's status (a done ticket never looks open to the features)."""
    t = generate(SimulationConfig(projects=6, tickets=6000, seed=1))
    ev, tk = t.events, t.tickets.set_index("ticket_id")
    mine = ev[ev["ticket_id"].notna()]
    assert (mine["at"] >= mine["ticket_id"].map(tk["created_at"])).all()
    for name in ("status", "assignee", "priority", "story_points", "resolution"):
        changes = mine[mine["field"] == name].sort_values("at", kind="stable")
        before = changes.groupby("ticket_id")["to_value"].shift()
        assert not (changes["from_value"].notna() & (changes["from_value"] != before)).any(), name
    last = mine[mine["field"] == "status"].sort_values("at", kind="stable").groupby("ticket_id")["to_value"].last()
    assert (last.reindex(tk.index) == tk["status"]).all()
