"""The Spark engine (local mode) gives exactly the pandas engine's training sets."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from slipcast.features.pipeline import build_training_sets
from slipcast.ingest.tables import read_tables, write_tables

pytest.importorskip("pyspark", reason="pyspark not installed (make setup installs it)")
if shutil.which("java") is None:
    pytest.skip("no Java runtime (.ci/run installs Debian's default-jre-headless)", allow_module_level=True)

pytestmark = pytest.mark.slow


def test_spark_equals_pandas_on_a_generated_history(small_history, settings, tmp_path):
    from slipcast.features.spark_engine import build_training_sets_spark

    write_tables(small_history, tmp_path / "tables")
    tables = read_tables(tmp_path / "tables")
    expected = build_training_sets(tables, settings.features)
    # more buckets than projects: projects land apart, so cross-team dependencies and
    # tickets moved between teams' milestones must travel to the partitions that need them
    spark_settings = settings.features.model_copy(update={"spark_partitions": 7})
    got = build_training_sets_spark(tmp_path / "tables", spark_settings)
    assert (expected["ticket"]["ticket_open_dependencies"] > 0).any()
    assert (expected["milestone"]["open_cross_team_dependencies"] > 0).any()
    for target, frame in expected.items():
        keys = ["milestone_id", "as_of"] + (["ticket_id"] if target == "ticket" else [])
        want = frame.sort_values(keys).reset_index(drop=True)
        have = got[target][list(frame.columns)].sort_values(keys).reset_index(drop=True)
        assert len(have) == len(want) > 100
        pd.testing.assert_frame_equal(have, want, check_dtype=False)
