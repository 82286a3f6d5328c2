"""The canonical tables: the contract between importers and everything after them.

Each table has a pyarrow schema, a key, the columns that may not be null and the allowed
values of its enumerations. ``validate`` checks a DataFrame against all of it and names the
table, row and column of the first problems it finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from slipcast.core.vocabulary import EventField, LinkKind, MilestoneKind, TicketStatus, values

UTC_TS = pa.timestamp("us", tz="UTC")

MILESTONE_KINDS = values(MilestoneKind)
STATUS_CATEGORIES = values(TicketStatus)
LINK_KINDS = values(LinkKind)
EVENT_FIELDS = values(EventField)


@dataclass(frozen=True)
class TableSpec:
    """Schema, key, required columns and enumerations of one canonical table."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    required: tuple[str, ...]
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return self.schema.names


MILESTONES = TableSpec(
    "milestones",
    pa.schema(
        [
            ("milestone_id", pa.string()),
            ("project", pa.string()),
            ("name", pa.string()),
            ("kind", pa.string()),
            ("start_at", UTC_TS),
            ("due_at", UTC_TS),
            ("completed_at", UTC_TS),
        ]
    ),
    key=("milestone_id",),
    required=("milestone_id", "project", "name", "kind"),
    enums={"kind": MILESTONE_KINDS},
)

TICKETS = TableSpec(
    "tickets",
    pa.schema(
        [
            ("ticket_id", pa.string()),
            ("project", pa.string()),
            ("type", pa.string()),
            ("priority", pa.string()),
            ("created_at", UTC_TS),
            ("resolved_at", UTC_TS),
            ("story_points", pa.float64()),
            ("assignee", pa.string()),
            ("status", pa.string()),
            ("milestone_id", pa.string()),
        ]
    ),
    key=("ticket_id",),
    required=("ticket_id", "project", "created_at", "status"),
    enums={"status": STATUS_CATEGORIES},
)

EVENTS = TableSpec(
    "events",
    pa.schema(
        [
            ("ticket_id", pa.string()),
            ("milestone_id", pa.string()),
            ("at", UTC_TS),
            ("field", pa.string()),
            ("from_value", pa.string()),
            ("to_value", pa.string()),
        ]
    ),
    key=(),
    required=("at", "field"),
    enums={"field": EVENT_FIELDS},
)

LINKS = TableSpec(
    "links",
    pa.schema(
        [
            ("from_ticket", pa.string()),
            ("to_ticket", pa.string()),
            ("kind", pa.string()),
            ("created_at", UTC_TS),
        ]
    ),
    key=("from_ticket", "to_ticket", "kind"),
    required=("from_ticket", "to_ticket", "kind"),
    enums={"kind": LINK_KINDS},
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (MILESTONES, TICKETS, EVENTS, LINKS)}


# the pandas dtype each arrow type conforms to: a column already of it is left as it is
CANONICAL_DTYPES = {UTC_TS: pd.DatetimeTZDtype("us", "UTC"), pa.float64(): np.dtype("float64"),
                    pa.string(): pd.StringDtype(na_value=np.nan)}


class SchemaError(ValueError):
    """A canonical table does not meet its contract."""


def empty_frame(spec: TableSpec) -> pd.DataFrame:
    """A zero-row frame with the table's columns and dtypes."""
    return spec.schema.empty_table().to_pandas()


def conform(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """The frame with exactly the table's columns, in order, with canonical dtypes.

    Timestamps become timezone-aware UTC at microsecond resolution, so that every later
    as-of join compares like with like. Missing optional columns are added as nulls.
    """
    frame = frame.copy()
    for name in spec.columns:
        if name not in frame.columns:
            frame[name] = None
    frame = frame[spec.columns]
    for f in spec.schema:
        col = frame[f.name]
        if col.dtype == CANONICAL_DTYPES.get(f.type, None):
            continue
        if pa.types.is_timestamp(f.type):
            if not isinstance(col.dtype, pd.DatetimeTZDtype):
                if col.notna().any() and pd.api.types.is_datetime64_any_dtype(col.dtype):
                    raise SchemaError(f"{spec.name}.{f.name}: timestamps must be timezone-aware")
                col = pd.to_datetime(col, utc=True)
            frame[f.name] = col.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        elif pa.types.is_floating(f.type):
            frame[f.name] = pd.to_numeric(col).astype("float64")
        else:
            frame[f.name] = col.where(col.isna(), col.astype("str")).astype("str")
    return frame


def validate(frame: pd.DataFrame, spec: TableSpec) -> None:
    """Raise SchemaError naming table, row and column when the frame breaks the contract."""
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{spec.name}: missing columns {missing}")
    problems: list[str] = []
    for f in spec.schema:
        col = frame[f.name]
        if pa.types.is_timestamp(f.type):
            if not (isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.tz) == "UTC"):
                problems.append(f"column {f.name}: dtype {col.dtype}, expected UTC timestamps")
    for name in spec.required:
        bad = frame.index[frame[name].isna()]
        if len(bad):
            problems.append(f"row {bad[0]} column {name}: null in a required column ({len(bad)} rows)")
    for name, allowed in spec.enums.items():
        col = frame[name]
        bad_mask = col.notna() & ~col.isin(allowed)
        if bad_mask.any():
            row = frame.index[bad_mask][0]
            problems.append(
                f"row {row} column {name}: {col[row]!r} not one of {list(allowed)}"
                f" ({int(bad_mask.sum())} rows)"
            )
    if spec.key:
        dup = frame.duplicated(list(spec.key), keep="first")
        if dup.any():
            row = frame.index[dup][0]
            key = tuple(frame.loc[row, list(spec.key)])
            problems.append(f"row {row}: duplicate key {dict(zip(spec.key, key))}")
    if spec is EVENTS:
        neither = frame["ticket_id"].isna() & frame["milestone_id"].isna()
        if neither.any():
            problems.append(f"row {frame.index[neither][0]}: event names neither ticket nor milestone")
    if problems:
        raise SchemaError(f"{spec.name}: " + "; ".join(problems))
