"""Reading and writing the canonical tables as a folder of Parquet files.

A store to read is a local folder or a URI that pyarrow's filesystems open (``s3://bucket/path``,
``gs://``, ``hdfs://``, ``file://``; options such as ``endpoint_override`` as query parameters,
credentials from the environment, as pyarrow reads them), so a cluster serves from object storage.

Writes never lose data: a folder that holds anything but Slipcast's own output, or that holds
the source, is refused; tables go to a temporary sibling folder that replaces the target only
once everything is written, so a failed or killed import never leaves a half-written folder
(docs/architecture.md, "Imports").
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from slipcast.core.folders import new_sibling, recover, swap_in
from slipcast.ingest.schema import (
    EVENTS,
    LINKS,
    MILESTONES,
    TABLES,
    TICKETS,
    SchemaError,
    conform,
    validate,
)

Table: TypeAlias = pd.DataFrame | dict[str, np.ndarray]  # a frame, or (a request's state) columns by name


@dataclass
class Tables:
    """The four canonical tables of one tracker history.

    Read, written and imported as DataFrames. A request's current state (``features.now``)
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

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Milestones, tickets, events and links as DataFrames (tables read, written or imported)."""
        out = (self.milestones, self.tickets, self.events, self.links)
        if not all(isinstance(t, pd.DataFrame) for t in out):
            raise TypeError("these tables hold a request's columns, not frames")
        return out

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


def last_values(events: pd.DataFrame) -> pd.DataFrame:
    """Each ticket's fields as their last change left them (a row per ticket, a column per
    field): a value the last change cleared (a ticket that left its milestone) is missing, never
    an earlier one. Changes are taken in time order, ties in the order given."""
    return (events[events["ticket_id"].notna()].sort_values("at", kind="stable")
            .drop_duplicates(["ticket_id", "field"], keep="last")
            .set_index(["ticket_id", "field"])["to_value"].unstack())


TABLE_FILES = tuple(f"{name}.parquet" for name in TABLES)
REPORT_FILES = ("rejections.csv", "summary.json")  # what an import writes beside its tables
OUTPUT_FILES = frozenset(TABLE_FILES + REPORT_FILES)


class DestinationError(ValueError):
    """An output folder that Slipcast must not write to; the message says why."""


def check_destination(out_dir: Path, sources: tuple[Path, ...] = (), force: bool = False) -> None:
    """Refuse an output folder whose writing could lose data (docs/architecture.md, "Imports").

    A folder that is, or contains, one of ``sources`` is always refused. An existing folder that
    holds anything besides Slipcast's own output files is refused unless ``force`` is set, in
    which case only those output files are replaced.
    """
    out = Path(out_dir).resolve()
    for source in sources:
        src = Path(source).resolve()
        if src == out or out in src.parents:
            raise DestinationError(f"{out_dir}: this folder holds the source {source}; "
                                   "choose an output folder outside it")
    if out.exists() and not out.is_dir():
        raise DestinationError(f"{out_dir}: is a file, not a folder")
    if out.is_dir() and not force:
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OUTPUT_FILES)
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise DestinationError(
                f"{out_dir}: not a Slipcast table folder (it holds {shown}); choose a new or empty "
                "folder, or pass --force to replace only its table files")


def write_tables(tables: Tables, out_dir: Path, extra_files: dict[str, str] | None = None,
                 sources: tuple[Path, ...] = (), force: bool = False) -> Path:
    """Validate and write the tables (and any extra text files) to ``out_dir``.

    The destination is checked first (``check_destination``). Everything is written to a
    sibling folder; an existing table folder is then moved aside, the new one renamed into
    place, and the old one removed, so a failure or a kill never loses the previous tables.
    With ``force`` on a folder that holds other files, only Slipcast's output files in it are
    replaced (each file atomically), and nothing else there is touched.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    recover(out_dir)
    check_destination(out_dir, sources, force)
    tmp = new_sibling(out_dir)
    try:
        for name, frame in tables.items():
            spec = TABLES[name]
            validate(frame, spec)
            table = pa.Table.from_pandas(frame, schema=spec.schema, preserve_index=False)
            pq.write_table(table, tmp / f"{name}.parquet")
        for filename, text in (extra_files or {}).items():
            (tmp / filename).write_text(text)
        if out_dir.is_dir() and any(p.name not in OUTPUT_FILES for p in out_dir.iterdir()):
            written = {p.name for p in tmp.iterdir()}
            for name in written:
                os.replace(tmp / name, out_dir / name)
            for name in OUTPUT_FILES - written:
                (out_dir / name).unlink(missing_ok=True)
            tmp.rmdir()
        else:
            swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def open_store(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem a store lives on (a URI names it by its scheme) and its path there."""
    if "://" in str(location):
        return pafs.FileSystem.from_uri(str(location))
    return pafs.LocalFileSystem(), str(Path(location).resolve())


def store_signature(location: str | Path) -> str:
    """What changes when the store is rewritten: each file's name, size and modification time
    (one listing, on any filesystem)."""
    filesystem, path = open_store(location)
    infos = sorted(filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True)), key=lambda i: i.path)
    parts = [f"{i.base_name}:{i.size}:{i.mtime_ns}" for i in infos]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def read_tables(location: str | Path) -> Tables:
    """Read and validate the four canonical tables of the store at ``location`` (a folder or a URI)."""
    filesystem, root = open_store(location)
    frames = {}
    for name, spec in TABLES.items():
        path = f"{root}/{name}.parquet"
        shown = f"{str(location).rstrip('/').split('?')[0]}/{name}.parquet"  # never a URI's query (it may carry options)
        if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{shown}: canonical table missing (run `slipcast import` first)")
        frames[name] = _canonical(pq.read_table(path, filesystem=filesystem), spec.schema, shown).to_pandas()
        validate(frames[name], spec)
    return Tables(**frames)


def _same_kind(given: pa.DataType, wanted: pa.DataType) -> bool:
    """Types that hold the same values: any string type for a string; any timestamp unit in UTC
    for a UTC timestamp; any integer or float for a float."""
    if pa.types.is_string(wanted):
        return pa.types.is_string(given) or pa.types.is_large_string(given) or pa.types.is_string_view(given)
    if pa.types.is_timestamp(wanted):
        return pa.types.is_timestamp(given) and given.tz in ("UTC", "+00:00", "Etc/UTC", "Z")
    if pa.types.is_floating(wanted):
        return pa.types.is_floating(given) or pa.types.is_integer(given)
    return given.equals(wanted)


def _canonical(table: pa.Table, schema: pa.Schema, path: Path | str) -> pa.Table:
    """``table`` in the canonical ``schema``: its columns in canonical order, each cast from an
    equivalent type (what pandas or another tool writes); anything else refused naming it."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise SchemaError(f"{path}: schema differs from canonical: columns {missing} missing")
    table = table.select(schema.names)
    for f, given in zip(schema, table.schema):
        if not _same_kind(given.type, f.type):
            raise SchemaError(f"{path}: schema differs from canonical: column {f.name} is {given.type}, "
                              f"expected {f.type} or an equivalent type")
    try:
        return table.cast(schema)
    except pa.ArrowInvalid as exc:  # a timestamp finer than microseconds that would lose digits
        raise SchemaError(f"{path}: cannot be read as canonical: {exc}") from exc


def fingerprint(tables: Tables) -> str:
    """A content hash of the canonical tables (order of rows included)."""
    digest = hashlib.sha256()
    for name, frame in tables.items():
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return digest.hexdigest()[:16]


__all__ = ["Tables", "make_tables", "write_tables", "check_destination", "DestinationError", "read_tables", "fingerprint",
           "last_values",
           "MILESTONES", "TICKETS", "EVENTS", "LINKS"]
