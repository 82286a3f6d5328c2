"""Canonical tables in, training sets out: one row per (milestone or ticket, as_of) + label."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.milestone_features import MILESTONE_FEATURES, TICKET_FEATURES, milestone_features
from features.snapshots import labels, schedule, scope_rows
from features.tables import Tables, fingerprint
from features.timeline import build_timelines

TARGETS = ("milestone", "ticket")
ID_COLUMNS = {"milestone": ["milestone_id", "project", "as_of"],
              "ticket": ["ticket_id", "milestone_id", "project", "as_of"]}
LABEL_COLUMNS = ["label", "label_known_at"]
ENGINE_SETTINGS = {"engine", "spark_master", "spark_partitions", "spark_conf"}


def feature_columns(target: str) -> list[str]:
    """The model inputs of a target, in order."""
    return list(MILESTONE_FEATURES if target == "milestone" else TICKET_FEATURES)


def milestone_outcomes(snaps: pd.DataFrame, lab: pd.DataFrame, project: pd.Series) -> pd.DataFrame:
    """Each milestone's outcome (its latest labelled snapshot) and when it became known."""
    known = snaps.join(lab).assign(project=project).dropna(subset=["label"])
    last = known.sort_values("as_of").groupby("milestone_id").tail(1)
    return pd.DataFrame({"project": last["project"], "known_at": last["label_known_at"],
                         "slipped": last["label"]}).reset_index(drop=True)


def build_training_sets(tables: Tables, settings, data_end: pd.Timestamp | None = None) -> dict[str, pd.DataFrame]:
    """Milestone and ticket training sets, every feature computed as of its row's time.

    ``data_end`` (default: the last event of ``tables``) is when the export was taken: no
    snapshot after it, no label known after it. A partition of a larger history (one project,
    see ``features.spark_engine``) passes the whole history's.
    """
    tl = build_timelines(tables, data_end)
    snaps = schedule(tables, tl, settings.span_fractions, settings.every_n_days)
    scope = scope_rows(snaps, tl)
    lab, ticket_slip = labels(snaps, scope, tables, tl, settings.grace_days)
    # a snapshot with nothing committed cannot slip and says nothing: dropped
    has_scope = snaps.index.isin(scope["snap"].unique())
    project = snaps["milestone_id"].map(tables.milestones.set_index("milestone_id")["project"])
    outcomes = milestone_outcomes(snaps[has_scope], lab[has_scope], project[has_scope])
    feats, tickets = milestone_features(tables, tl, snaps, settings, outcomes, scope)

    milestone = pd.concat([snaps.assign(project=project), feats, lab], axis=1)[has_scope]
    milestone = milestone[ID_COLUMNS["milestone"] + MILESTONE_FEATURES + LABEL_COLUMNS]

    t = tickets.join(snaps[["milestone_id", "as_of"]], on="snap")
    t["project"] = t["milestone_id"].map(tables.milestones.set_index("milestone_id")["project"])
    t["label_known_at"] = t["snap"].map(lab["label_known_at"])
    known = t["snap"].map(lab["label"]).notna()
    t["label"] = ticket_slip.loc[t.index].where(known)
    ticket = t[ID_COLUMNS["ticket"] + TICKET_FEATURES + LABEL_COLUMNS]
    return {"milestone": milestone.reset_index(drop=True), "ticket": ticket.reset_index(drop=True)}


def training_set_fingerprint(tables: Tables, settings) -> str:
    """Hash of the canonical tables and the as-of schedule that produced a training set."""
    # where the features run (engine, Spark settings) does not change them: not in the hash
    schedule_spec = json.dumps(settings.model_dump(exclude=ENGINE_SETTINGS), sort_keys=True, default=str)
    return hashlib.sha256((fingerprint(tables) + schedule_spec).encode()).hexdigest()[:16]


def write_training_set(frame: pd.DataFrame, out_dir: Path, target: str,
                       data_fingerprint: str | None = None) -> Path:
    """Write one target's training set as Parquet, the fingerprint in its metadata."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"slipcast.target"] = target.encode()
    meta[b"slipcast.fingerprint"] = (data_fingerprint or "").encode()
    path = out_dir / f"{target}.parquet"
    pq.write_table(table.replace_schema_metadata(meta), path)
    return path


def read_training_set(path: Path) -> tuple[pd.DataFrame, str]:
    """A training set and the data fingerprint it was built from."""
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    return table.to_pandas(), meta.get(b"slipcast.fingerprint", b"").decode()
