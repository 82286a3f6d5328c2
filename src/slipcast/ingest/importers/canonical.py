"""The canonical tables themselves, as CSV or Parquet, checked row by row.

``src`` is a folder with ``milestones``, ``tickets``, ``events`` and optionally ``links``
(``.csv`` or ``.parquet``). Each row that breaks the contract (a required value missing, an
unknown enumeration value, a timestamp without a zone or unreadable, a duplicate key) is
rejected with its file, row and column; the rest is imported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from slipcast.core.errors import FieldError
from slipcast.core.settings import Settings
from slipcast.ingest.importers.report import ImportError_, ImportReport, finish
from slipcast.ingest.importers.vocab import parse_points, parse_time
from slipcast.ingest.schema import TABLES, empty_frame


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def import_canonical(src, out, settings: Settings, force: bool = False) -> ImportReport:
    """Import a folder of canonical tables in CSV or Parquet, rejecting bad rows."""
    src = Path(src)
    if not src.is_dir():
        raise ImportError_(f"{src}: expected a folder with milestones/tickets/events/links files")
    report = ImportReport(source=str(src))
    frames = {}
    for name, spec in TABLES.items():
        path = next((src / f"{name}{ext}" for ext in (".parquet", ".csv") if (src / f"{name}{ext}").exists()), None)
        if path is None:
            if name == "links":
                frames[name] = empty_frame(spec)
                continue
            raise ImportError_(f"{src}: missing {name}.csv or {name}.parquet")
        try:
            raw = _read(path)
        except (ValueError, OSError, UnicodeDecodeError) as exc:
            raise ImportError_(f"{path}: unreadable: {exc}") from exc
        missing = [c for c in spec.required if c not in raw.columns]
        if missing:
            raise ImportError_(f"{path}: missing required columns {missing}")
        frames[name] = _check_rows(raw, spec, path, report, name, frames)
    return finish(report, frames, Path(out), force)


# columns that must name a row of a table read before (TABLES' order: milestones, tickets, ...)
REFERENCES = {"events": {"ticket_id": ("tickets", "ticket_id"), "milestone_id": ("milestones", "milestone_id")},
              "links": {"from_ticket": ("tickets", "ticket_id"), "to_ticket": ("tickets", "ticket_id")}}


def _check_rows(raw: pd.DataFrame, spec, path: Path, report: ImportReport, kind: str,
                read: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows, seen = [], set()
    known = {column: (table, set(read[table][key])) for column, (table, key) in REFERENCES.get(kind, {}).items()}
    records = raw.astype(object).where(raw.notna(), None).to_dict("records")
    for i, rec in enumerate(records):
        line = f"row {i + 2}" if path.suffix == ".csv" else f"row {i}"
        report.saw(kind)
        try:
            for f in spec.schema:
                value = rec.get(f.name)
                if pa.types.is_timestamp(f.type) and value is not None:
                    if isinstance(value, pd.Timestamp) and value.tzinfo is None:
                        raise FieldError((), f"naive timestamp {value} (no UTC offset)")
                    rec[f.name] = parse_time(value.isoformat() if isinstance(value, pd.Timestamp) else value)
                elif f.name == "story_points":
                    rec[f.name] = parse_points(value)
                elif pa.types.is_floating(f.type) and value is not None:
                    rec[f.name] = float(value)
        except FieldError as exc:
            report.reject(kind, str(path), line, f.name, exc.message)
            continue
        except ValueError as exc:
            report.reject(kind, str(path), line, f.name, str(exc))
            continue
        bad = next((c for c in spec.required if rec.get(c) is None), None)
        if bad:
            report.reject(kind, str(path), line, bad, "required value missing")
            continue
        bad = next(((c, rec[c]) for c, allowed in spec.enums.items()
                    if rec.get(c) is not None and rec[c] not in allowed), None)
        if bad:
            report.reject(kind, str(path), line, bad[0],
                          f"{bad[1]!r} not one of {list(spec.enums[bad[0]])}")
            continue
        if kind == "events" and rec.get("ticket_id") is None and rec.get("milestone_id") is None:
            report.reject(kind, str(path), line, "ticket_id", "event names neither ticket nor milestone")
            continue
        unknown = next(((c, rec[c], table) for c, (table, ids) in known.items()
                        if rec.get(c) is not None and rec[c] not in ids), None)
        if unknown:
            report.reject(kind, str(path), line, unknown[0], f"names {unknown[1]!r}, not in {unknown[2]}")
            continue
        key = tuple(rec.get(c) for c in spec.key)
        if spec.key and key in seen:
            report.reject(kind, str(path), line, ",".join(spec.key), f"duplicate key {key}")
            continue
        seen.add(key)
        rows.append(rec)
        report.accept(kind)
    return pd.DataFrame(rows, columns=spec.columns) if rows else empty_frame(spec)
