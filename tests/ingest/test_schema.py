import pandas as pd
import pyarrow.parquet as pq
import pytest

from slipcast.ingest.schema import (
    EVENTS,
    MILESTONES,
    TICKETS,
    SchemaError,
    conform,
    validate,
)
from slipcast.ingest.tables import make_tables, read_tables, write_tables


def _tickets(**overrides):
    row = {"ticket_id": "A-1", "project": "A", "created_at": pd.Timestamp("2024-01-01", tz="UTC"),
           "status": "todo"}
    row.update(overrides)
    return pd.DataFrame([row])


def test_conform_makes_utc_microsecond_timestamps():
    frame = conform(_tickets(created_at=pd.Timestamp("2024-01-01 10:00", tz="Europe/Berlin")), TICKETS)
    assert str(frame["created_at"].dtype) == "datetime64[us, UTC]"
    assert frame.loc[0, "created_at"] == pd.Timestamp("2024-01-01 09:00", tz="UTC")


def test_conform_refuses_naive_timestamps():
    with pytest.raises(SchemaError, match="timezone-aware"):
        conform(_tickets(created_at=pd.Timestamp("2024-01-01")), TICKETS)


@pytest.mark.parametrize("overrides,message", [
    ({"status": "sleeping"}, "column status: 'sleeping' not one of"),
    ({"project": None}, "column project: null in a required column"),
])
def test_validate_names_row_and_column(overrides, message):
    with pytest.raises(SchemaError, match=message):
        validate(conform(_tickets(**overrides), TICKETS), TICKETS)


def test_validate_rejects_duplicate_keys():
    frame = conform(pd.concat([_tickets(), _tickets()], ignore_index=True), TICKETS)
    with pytest.raises(SchemaError, match="row 1: duplicate key"):
        validate(frame, TICKETS)


def test_event_must_name_ticket_or_milestone():
    ev = conform(pd.DataFrame([{"at": pd.Timestamp("2024-01-01", tz="UTC"), "field": "status"}]), EVENTS)
    with pytest.raises(SchemaError, match="neither ticket nor milestone"):
        validate(ev, EVENTS)


def test_round_trip_and_atomic_write(tmp_path, small_history):
    out = write_tables(small_history, tmp_path / "t")
    back = read_tables(out)
    for name, frame in small_history.items():
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), getattr(back, name))
    bad = make_tables(small_history.milestones, small_history.tickets, small_history.events, small_history.links)
    bad.milestones = bad.milestones.assign(kind="quarter")
    with pytest.raises(SchemaError):
        write_tables(bad, tmp_path / "t")
    # the earlier good output is intact and no temporary folder is left behind
    assert read_tables(out).counts() == small_history.counts()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_read_refuses_a_file_with_another_schema(tmp_path, small_history):
    out = write_tables(small_history, tmp_path / "t")
    small_history.milestones.drop(columns="kind").to_parquet(out / "milestones.parquet")
    with pytest.raises(SchemaError, match="differs from canonical"):
        read_tables(out)


@pytest.mark.parametrize("kind", ["release", "sprint", "epic"])
def test_every_milestone_kind_is_accepted(kind):
    frame = conform(pd.DataFrame([{"milestone_id": "m", "project": "p", "name": "n", "kind": kind}]), MILESTONES)
    validate(frame, MILESTONES)
    assert frame["kind"].tolist() == [kind]


def test_an_unknown_milestone_kind_is_refused_naming_it():
    frame = conform(pd.DataFrame([{"milestone_id": "m", "project": "p", "name": "n", "kind": "quarter"}]), MILESTONES)
    with pytest.raises(SchemaError, match="quarter"):
        validate(frame, MILESTONES)


def test_tables_written_back_by_pandas_are_read(tmp_path, small_history):
    """pandas writes large_string and nanosecond timestamps; a data scientist's fixed table is read."""
    out = write_tables(small_history, tmp_path / "t")
    tickets = read_tables(out).tickets
    tickets.loc[0, "priority"] = "fixed by hand"
    frame = tickets.copy()
    frame["created_at"] = frame["created_at"].dt.as_unit("ns")
    frame.to_parquet(out / "tickets.parquet")
    assert "large_string" in str(pq.read_schema(out / "tickets.parquet").field("ticket_id").type)
    back = read_tables(out)
    assert back.tickets.loc[0, "priority"] == "fixed by hand"
    assert back.tickets["created_at"].dtype == tickets["created_at"].dtype
    pd.testing.assert_frame_equal(back.tickets, tickets)
