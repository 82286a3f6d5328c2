"""Canonical tables in, training sets out: one row per (milestone or ticket, as_of) + label."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from slipcast.core.contracts import (
    TARGETS,
    TRAINING_SET_FINAL_STATE_KEY,
    TRAINING_SET_FINGERPRINT_KEY,
    TRAINING_SET_TARGET_KEY,
)
from slipcast.core.progress import progress
from slipcast.core.settings import FeatureSettings
from slipcast.features.buckets import bucket_count, bucket_tables
from slipcast.features.milestone_features import (
    MILESTONE_FEATURES,
    TICKET_FEATURES,
    milestone_features,
)
from slipcast.features.snapshots import Snapshots, labels, schedule, scope_rows
from slipcast.features.timeline import (
    Timelines,
    build_timelines,
    last_of_each,
    pick,
    take,
    timestamps,
)
from slipcast.ingest.tables import Tables, fingerprint

ID_COLUMNS = {"milestone": ["milestone_id", "project", "as_of"],
              "ticket": ["ticket_id", "milestone_id", "project", "as_of"]}
LABEL_COLUMNS = ["label", "label_known_at"]
T = TypeVar("T")
ENGINE_SETTINGS = {"engine", "bucket_events", "spark_master", "spark_partitions", "spark_conf"}


def feature_columns(target: str) -> list[str]:
    """The model inputs of a target, in order."""
    return list(MILESTONE_FEATURES if target == "milestone" else TICKET_FEATURES)


def milestone_projects(milestone: np.ndarray, tl: Timelines):
    """The project of each milestone code."""
    return take(tl.projects.array, pick(tl.milestone_project, milestone, -1))


def milestone_outcomes(snaps: Snapshots, label: np.ndarray, known_at: np.ndarray, tl: Timelines) -> pd.DataFrame:
    """Each milestone's outcome (its latest labelled snapshot), when it became known, and its code."""
    labelled = np.flatnonzero(~np.isnan(label))
    last = labelled[last_of_each(snaps.milestone[labelled])]  # snapshots run by milestone, then as_of
    return pd.DataFrame({"project": milestone_projects(snaps.milestone[last], tl), "known_at": timestamps(known_at[last]),
                         "slipped": label[last], "milestone": snaps.milestone[last]})


def build_training_sets(tables: Tables, settings: FeatureSettings,
                        data_end: pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    """Milestone and ticket training sets, every feature computed as of its row's time.

    ``data_end`` (default: the last event of ``tables``) is when the export was taken: no
    snapshot after it, no label known after it. A partition of a larger history (one project,
    see ``features.spark_engine``) passes the whole history's.
    """
    tl = build_timelines(tables, data_end)
    snaps = schedule(tl, settings.span_fractions, settings.every_n_days)
    scope = scope_rows(snaps, tl)
    label, known_at, ticket_slip = labels(snaps, scope, tl, settings.grace_days)
    outcomes = milestone_outcomes(snaps, label, known_at, tl)
    feats, tickets = milestone_features(tl, snaps, settings, outcomes, scope)

    # a snapshot with nothing committed cannot slip and says nothing: dropped
    keep = np.flatnonzero(np.bincount(scope.snap, minlength=len(snaps)) > 0)
    milestone = pd.DataFrame({
        "milestone_id": take(tl.milestones.array, snaps.milestone[keep]),
        "project": milestone_projects(snaps.milestone[keep], tl), "as_of": timestamps(snaps.as_of[keep]),
        **{name: feats[name][keep] for name in MILESTONE_FEATURES},
        "label": label[keep], "label_known_at": timestamps(known_at[keep])})

    snap = tickets["snap"]
    ticket = pd.DataFrame({
        "ticket_id": tickets["ticket_id"], "milestone_id": take(tl.milestones.array, snaps.milestone[snap]),
        "project": milestone_projects(snaps.milestone[snap], tl), "as_of": timestamps(snaps.as_of[snap]),
        **{name: tickets[name] for name in TICKET_FEATURES},
        "label": np.where(np.isnan(label[snap]), np.nan, ticket_slip[tickets["row"]]),
        "label_known_at": timestamps(known_at[snap])})
    return {target: frame[ID_COLUMNS[target] + feature_columns(target) + LABEL_COLUMNS]
            for target, frame in (("milestone", milestone), ("ticket", ticket))}


def training_set_fingerprint(tables: Tables, settings: FeatureSettings) -> str:
    """Hash of the canonical tables and the as-of schedule that produced a training set."""
    # where the features run (engine, Spark settings) does not change them: not in the hash
    schedule_spec = json.dumps(settings.model_dump(exclude=ENGINE_SETTINGS), sort_keys=True, default=str)
    return hashlib.sha256((fingerprint(tables) + schedule_spec).encode()).hexdigest()[:16]


def _stamped(table: pa.Table, target: str, data_fingerprint: str | None, final_state: bool = False) -> pa.Table:
    """``table`` with the target, the data fingerprint and, for a history of final states only,
    that mark, in its schema's metadata."""
    meta = dict(table.schema.metadata or {})
    meta[TRAINING_SET_TARGET_KEY] = target.encode()
    meta[TRAINING_SET_FINGERPRINT_KEY] = (data_fingerprint or "").encode()
    if final_state:
        meta[TRAINING_SET_FINAL_STATE_KEY] = b"final-state"
    return table.replace_schema_metadata(meta)


def write_training_set(frame: pd.DataFrame, out_dir: Path, target: str,
                       data_fingerprint: str | None = None, final_state: bool = False) -> Path:
    """Write one target's training set as Parquet, the fingerprint (and the final-state mark:
    ``_stamped``) in its metadata."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{target}.parquet"
    pq.write_table(_stamped(pa.Table.from_pandas(frame, preserve_index=False), target, data_fingerprint, final_state),
                   path)
    return path


class WrittenSet(NamedTuple):
    """A training set written to ``path``: its rows, labelled rows and slipped rows."""

    path: Path
    rows: int
    labelled: int
    slipped: int


def label_counts(frame: pd.DataFrame) -> np.ndarray:
    """A training set's rows, labelled rows and slipped rows."""
    return np.array([len(frame), frame["label"].notna().sum(), (frame["label"] == 1).sum()], dtype=np.int64)


def write_training_sets(tables: Tables, settings: FeatureSettings, out_dir: Path,
                        data_fingerprint: str | None = None, final_state: bool = False) -> dict[str, WrittenSet]:
    """Both targets' training sets built and written one bucket of whole projects at a time
    (``features.buckets``, ``settings.bucket_events`` events each), so peak memory follows the
    largest bucket, not the history. The rows are ``build_training_sets``' rows, bucket after
    bucket. The next bucket is cut, and the last one written, in worker threads while a bucket's
    features are computed (pyarrow and numpy release the GIL for most of that work). Each file
    is written beside its place and moved there once complete: a failed or killed build leaves
    the previous training sets as they were."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial: dict[str, Path] = {target: out_dir / f".{target}.parquet.partial" for target in TARGETS}
    data_end = tables.events["at"].max() if len(tables.events) else None
    buckets = bucket_count(len(tables.events), settings.bucket_events)
    writers: dict[str, pq.ParquetWriter] = {}
    counts: dict[str, np.ndarray] = {target: np.zeros(3, dtype=np.int64) for target in TARGETS}

    def write(sets: dict[str, pd.DataFrame]) -> None:
        for target, frame in sets.items():
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if target not in writers:
                table = _stamped(table, target, data_fingerprint, final_state)
                writers[target] = pq.ParquetWriter(partial[target], table.schema)
            if not table.schema.equals(writers[target].schema, check_metadata=False):
                table = table.cast(writers[target].schema)
            writers[target].write_table(table)
            counts[target] += label_counts(frame)

    written, complete = None, False
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="slipcast-writer") as writer:
            for part in progress(_ahead(bucket_tables(tables, buckets)), "building features", total=buckets,
                                 unit="bucket"):
                sets = build_training_sets(part, settings, data_end)
                if written is not None:
                    written.result()  # one bucket's rows waiting at most: memory stays bounded
                written = writer.submit(write, sets)
            if written is not None:
                written.result()
        complete = True
    finally:
        for w in writers.values():
            w.close()
        if not complete:
            for path in partial.values():
                path.unlink(missing_ok=True)
    for target in writers:
        partial[target].replace(out_dir / f"{target}.parquet")
    return {target: WrittenSet(out_dir / f"{target}.parquet", *map(int, counts[target])) for target in writers}


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """``items``, the next one produced in a worker thread while the caller works on this one."""
    with ThreadPoolExecutor(1, thread_name_prefix="slipcast-buckets") as pool:
        following = pool.submit(next, items, None)
        while (item := following.result()) is not None:
            following = pool.submit(next, items, None)
            yield item


def is_final_state(path: Path) -> bool:
    """Whether a training set was built from an export that holds no history (``_stamped``)."""
    return TRAINING_SET_FINAL_STATE_KEY in (pq.read_schema(path).metadata or {})


def read_training_set(path: Path) -> tuple[pd.DataFrame, str]:
    """A training set and the data fingerprint it was built from."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    return table.to_pandas(), meta.get(TRAINING_SET_FINGERPRINT_KEY, b"").decode()
