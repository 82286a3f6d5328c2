"""Training sets built one bucket of projects at a time equal one whole-history build."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from slipcast.features.buckets import bucket_count, bucket_tables, project_buckets
from slipcast.features.pipeline import build_training_sets, read_training_set, write_training_sets
from slipcast.ingest.tables import Tables


def training_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows in the order training reads them (training/backtest.py)."""
    return frame[frame["label"].notna()].sort_values(["as_of", "milestone_id"], kind="stable").reset_index(drop=True)


def test_a_bucketed_build_writes_the_whole_builds_rows(small_history, settings, tmp_path):
    expected = build_training_sets(small_history, settings.features)
    # buckets of about a seventh of the events: the projects land apart, so cross-team
    # dependencies and tickets moved between teams' milestones must reach the buckets that read them
    per_bucket = len(small_history.events) // 7 + 1
    bucketed = settings.features.model_copy(update={"bucket_events": per_bucket})
    assert bucket_count(len(small_history.events), per_bucket) == 7
    assert len(list(bucket_tables(small_history, 7))) > 1
    assert (expected["milestone"]["open_cross_team_dependencies"] > 0).any()

    written = write_training_sets(small_history, bucketed, tmp_path, "fp")
    for target, frame in expected.items():
        have, fingerprint = read_training_set(written[target].path)
        assert fingerprint == "fp"
        assert written[target].rows == len(frame) > 100
        assert written[target].labelled == frame["label"].notna().sum()
        assert written[target].slipped == (frame["label"] == 1).sum()
        pd.testing.assert_frame_equal(training_order(have), training_order(frame))
        keys = ["milestone_id", "as_of"] + (["ticket_id"] if target == "ticket" else [])
        pd.testing.assert_frame_equal(have.sort_values(keys).reset_index(drop=True),
                                      frame.sort_values(keys).reset_index(drop=True))


def test_buckets_hold_whole_projects_and_every_milestone_once(small_history):
    parts = list(bucket_tables(small_history, 5))
    milestones = pd.concat([p.milestones for p in parts])
    assert sorted(milestones["milestone_id"]) == sorted(small_history.milestones["milestone_id"])
    owners = [set(p.milestones["project"]) for p in parts]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])
    for part in parts:  # a bucket's tickets include every ticket its projects own
        own = small_history.tickets[small_history.tickets["project"].isin(part.milestones["project"])]
        assert set(own["ticket_id"]) <= set(part.tickets["ticket_id"])
        assert len(set(project_buckets(part.milestones["project"], 5))) == 1


def test_a_history_without_milestones_is_one_bucket(small_history):
    empty = Tables(milestones=small_history.milestones.iloc[:0], tickets=small_history.tickets,
                   events=small_history.events, links=small_history.links)
    assert [p.tickets is small_history.tickets for p in bucket_tables(empty, 4)] == [True]


def test_a_build_that_fails_midway_leaves_the_previous_training_sets(small_history, settings, tmp_path,
                                                                    monkeypatch):
    """Files are moved into place only once every bucket is written: a failure in a later
    bucket (injected after the real first one) leaves the earlier sets whole and no partial file."""
    import slipcast.features.pipeline as pipeline

    per_bucket = len(small_history.events) // 7 + 1
    bucketed = settings.features.model_copy(update={"bucket_events": per_bucket})
    write_training_sets(small_history, bucketed, tmp_path, "before")
    real, calls = pipeline.build_training_sets, []

    def fails_on_the_second_bucket(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_training_sets", fails_on_the_second_bucket)
    with pytest.raises(RuntimeError, match="disk full"):
        write_training_sets(small_history, bucketed, tmp_path, "after")
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["milestone.parquet", "ticket.parquet"]
    for target in ("milestone", "ticket"):
        frame, fingerprint = read_training_set(tmp_path / f"{target}.parquet")
        assert fingerprint == "before" and len(frame) > 100


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50), st.integers(1, 64))
def test_a_projects_bucket_is_the_crc32_of_its_utf8_key_modulo_the_buckets(keys, buckets):
    """The rule both engines bucket by (Spark calls this same function, ``spark_engine``):
    whatever the order or repetition of the keys, each row's bucket is its own key's."""
    import zlib

    got = project_buckets(pd.Series(keys, dtype=object), buckets)
    assert list(got) == [zlib.crc32(k.encode("utf-8")) % buckets for k in keys]
    assert ((got >= 0) & (got < buckets)).all()
