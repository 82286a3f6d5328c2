"""The feature pipeline on Apache Spark: ``build_training_sets`` mapped over projects.

Nothing here computes a feature. Spark reads the canonical Parquet tables, gives every row the
partitions that need it, and ``groupBy("_part").applyInPandas`` runs the pandas
``build_training_sets`` on each partition: a bucket of whole projects (one pandas call per
bucket, not per project, so its fixed cost is paid a few times, not thousands), bucketed by the
pandas engine's rule (``features.buckets``, docs/architecture.md "Buckets of projects"). The
data's end is the whole history's, so a partition schedules and labels exactly as one pandas
run does.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa

from slipcast.core.contracts import TARGETS
from slipcast.core.settings import FeatureSettings
from slipcast.features.buckets import project_buckets
from slipcast.features.milestone_features import (
    CATEGORICAL,
    MILESTONE_FEATURES,
    TICKET_FEATURES,
)
from slipcast.features.pipeline import (
    ID_COLUMNS,
    LABEL_COLUMNS,
    build_training_sets,
)
from slipcast.ingest.schema import TABLES, UTC_TS
from slipcast.ingest.tables import make_tables

TABLE_NAMES = ("milestones", "tickets", "events", "links")


def spark_session(master: str, conf: dict[str, str], app_name: str = "slipcast-features"):
    """A Spark session in UTC with Arrow transfers (the only time zone the tables use), plus
    ``conf``. Python workers run this interpreter unless PYSPARK_PYTHON names another."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def output_schema() -> pa.Schema:
    """The rows every partition returns: both targets' columns and ``_target``."""
    columns = ["_target", "ticket_id"] + ID_COLUMNS["milestone"]
    columns += [c for c in dict.fromkeys(MILESTONE_FEATURES + TICKET_FEATURES) if c not in columns]
    fields = [pa.field(c, UTC_TS if c == "as_of" else pa.string() if c in CATEGORICAL or c in
                       ("_target", "ticket_id", "milestone_id", "project") else pa.float64()) for c in columns]
    fields += [pa.field("label", pa.float64()), pa.field("label_known_at", UTC_TS)]
    return pa.schema(fields)


def _partitioned(spark_tables: dict, partitions: int):
    """One long frame: every table's rows, tagged ``_table``, once per partition ``_part`` that
    needs them. A partition is a bucket of whole projects, by the pandas engine's own function
    (``buckets.project_buckets``, run by Spark as a vectorised UDF): one rule, one home."""
    from pyspark.sql import functions as F

    @F.pandas_udf("long")  # type: ignore[call-overload]
    def project_bucket(projects: pd.Series) -> pd.Series:
        return pd.Series(project_buckets(projects, partitions), index=projects.index)

    def bucket(col: str):
        return project_bucket(F.col(col)).alias("_part")

    ms, tk, ev, lk = (spark_tables[n] for n in TABLE_NAMES)
    owner = ms.select("milestone_id", bucket("project"))
    moves = ev.filter(F.col("field") == "milestone").select(
        "ticket_id", F.explode(F.array("from_value", "to_value")).alias("milestone_id"))
    members = moves.unionByName(tk.select("ticket_id", "milestone_id")).join(owner, "milestone_id")
    first = tk.select("ticket_id", bucket("project")).unionByName(
        members.select("ticket_id", "_part")).distinct()
    pairs = lk.select(F.col("from_ticket").alias("a"), F.col("to_ticket").alias("b"))
    pairs = pairs.unionByName(pairs.select(F.col("b").alias("a"), F.col("a").alias("b")))
    neighbours = pairs.join(first.withColumnRenamed("ticket_id", "a"), "a").select(
        F.col("b").alias("ticket_id"), "_part")
    keys = first.unionByName(neighbours).distinct()
    parts = [
        ms.withColumn("_part", bucket("project")).withColumn("_table", F.lit("milestones")),
        tk.join(keys, "ticket_id").withColumn("_table", F.lit("tickets")),
        ev.filter(F.col("ticket_id").isNotNull()).join(keys, "ticket_id").withColumn("_table", F.lit("events")),
        ev.filter(F.col("ticket_id").isNull()).join(owner, "milestone_id").withColumn("_table", F.lit("events")),
        lk.join(first.withColumnRenamed("ticket_id", "from_ticket"), "from_ticket")
        .unionByName(lk.join(first.withColumnRenamed("ticket_id", "to_ticket"), "to_ticket"))
        .distinct().withColumn("_table", F.lit("links")),
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part, allowMissingColumns=True)
    return out


def _utc(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """Timestamps as UTC-aware microseconds (Spark hands them over naive, in its UTC session)."""
    for col in columns:
        if col in frame.columns:
            times = pd.to_datetime(frame[col])
            times = times.dt.tz_convert("UTC") if times.dt.tz is not None else times.dt.tz_localize("UTC")
            frame[col] = times.astype("datetime64[us, UTC]")
    return frame


def partition_features(rows: pd.DataFrame, settings: FeatureSettings, data_end: pd.Timestamp) -> pd.DataFrame:
    """``build_training_sets`` on one partition's rows; both targets in one frame."""
    frames = {}
    for name in TABLE_NAMES:
        spec = TABLES[name]
        part = rows[rows["_table"] == name]
        if name == "events":
            part = part.sort_values("_row", kind="stable")
        frames[name] = _utc(part[list(spec.columns)].reset_index(drop=True),
                            [f.name for f in spec.schema if pa.types.is_timestamp(f.type)])
    sets = build_training_sets(make_tables(**frames), settings, data_end)
    schema = output_schema()
    out = pd.concat([f.assign(_target=t) for t, f in sets.items()], ignore_index=True)
    out = out.reindex(columns=schema.names)
    for f in schema:  # what Spark's Arrow writer takes: naive UTC times, plain object strings
        if pa.types.is_timestamp(f.type):
            out[f.name] = out[f.name].dt.tz_convert("UTC").dt.tz_localize(None)
        elif pa.types.is_string(f.type):
            out[f.name] = out[f.name].astype(object).where(out[f.name].notna(), None)
    return out


def build_training_sets_spark(data_dir: Path, settings: FeatureSettings) -> dict[str, pd.DataFrame]:
    """The training sets of the canonical tables in ``data_dir``, computed per bucket of
    projects on Spark (``settings.spark_master``, ``settings.spark_partitions``); equal to
    ``build_training_sets`` on the same tables."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    spark = spark_session(settings.spark_master, settings.spark_conf)
    spark.conf.set("spark.sql.shuffle.partitions", str(settings.spark_partitions))
    tables = {name: spark.read.parquet(str(Path(data_dir) / f"{name}.parquet")) for name in TABLE_NAMES}
    # events at the same instant keep the export's order, as they do in one pandas run
    tables["events"] = tables["events"].withColumn("_row", F.monotonically_increasing_id())
    end = tables["events"].agg(F.max("at")).first()[0]
    data_end = pd.Timestamp(end, tz="UTC").as_unit("us") if end is not None else None
    schema = output_schema()
    result = _partitioned(tables, settings.spark_partitions).groupBy("_part").applyInPandas(
        lambda rows: partition_features(rows, settings, data_end), from_arrow_schema(schema))
    # written by the executors, read back with pyarrow: the rows never pass through the driver's heap
    with tempfile.TemporaryDirectory(prefix="slipcast-spark-") as tmp:
        result.write.parquet(f"{tmp}/sets")
        frame = _utc(pd.read_parquet(f"{tmp}/sets"), ("as_of", "label_known_at"))
    out: dict[str, pd.DataFrame] = {}
    for target in TARGETS:
        keys = ID_COLUMNS[target]
        columns = keys + (MILESTONE_FEATURES if target == "milestone" else TICKET_FEATURES) + LABEL_COLUMNS
        part = frame.loc[frame["_target"] == target, columns]
        out[target] = part.sort_values(["milestone_id", "as_of"] + (["ticket_id"] if target == "ticket" else []),
                                       kind="stable").reset_index(drop=True)
    return out
