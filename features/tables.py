"""Reading and writing the canonical tables as a folder of Parquet files.

Writes are atomic: tables go to a temporary sibling folder that replaces the target only
once everything is written, so a failed import never leaves a half-written folder.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.schema import EVENTS, LINKS, MILESTONES, TABLES, TICKETS, SchemaError, conform, validate


Table = pd.DataFrame | dict[str, np.ndarray]  # a frame, or (a request's state) columns by name


@dataclass
class Tables:
    """The four canonical tables of one tracker history.

    Read, written and imported as DataFrames. A request's current state (``features.online``)
    holds each table as a dict of arrays instead: the feature code reads columns by name, so it
    takes either, and a request never pays for frames it does not need.
    """

    milestones: Table
    tickets: Table
    events: Table
    links: Table

    def items(self):
        return (("milestones", self.milestones), ("tickets", self.tickets),
                ("events", self.events), ("links", self.links))

    def counts(self) -> dict[str, int]:
        return {name: len(frame) for name, frame in self.items()}


def make_tables(milestones, tickets, events, links) -> Tables:
    """Conform and validate four frames into canonical tables; events sorted by time."""
    tables = Tables(
        milestones=conform(milestones, MILESTONES),
        tickets=conform(tickets, TICKETS),
        events=conform(events, EVENTS)
        .sort_values(["at", "ticket_id", "milestone_id"], kind="stable", na_position="first")
        .reset_index(drop=True),
        links=conform(links, LINKS),
    )
    for name, frame in tables.items():
        validate(frame, TABLES[name])
    return tables


def write_tables(tables: Tables, out_dir: Path, extra_files: dict[str, str] | None = None) -> Path:
    """Validate and write the tables (and any extra text files) to ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, frame in tables.items():
            spec = TABLES[name]
            validate(frame, spec)
            table = pa.Table.from_pandas(frame, schema=spec.schema, preserve_index=False)
            pq.write_table(table, tmp / f"{name}.parquet")
        for filename, text in (extra_files or {}).items():
            (tmp / filename).write_text(text)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_tables(data_dir: Path) -> Tables:
    """Read and validate the four canonical tables from ``data_dir``."""
    data_dir = Path(data_dir)
    frames = {}
    for name, spec in TABLES.items():
        path = data_dir / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: canonical table missing (run `slipcast import` first)")
        table = pq.read_table(path)
        if not table.schema.equals(spec.schema, check_metadata=False):
            raise SchemaError(f"{path}: schema {table.schema} differs from canonical {spec.schema}")
        frames[name] = table.to_pandas()
        validate(frames[name], spec)
    return Tables(**frames)


def fingerprint(tables: Tables) -> str:
    """A content hash of the canonical tables (order of rows included)."""
    digest = hashlib.sha256()
    for name, frame in tables.items():
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()[:16]


__all__ = ["Tables", "make_tables", "write_tables", "read_tables", "fingerprint",
           "MILESTONES", "TICKETS", "EVENTS", "LINKS"]
