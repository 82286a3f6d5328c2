"""Reading export files: bytes to text to JSON, each failure a rejection naming the file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from slipcast.core.errors import FieldError
from slipcast.ingest.importers.report import ImportError_, ImportReport

MAX_CELL = 1 << 26  # a description may be long: 64 MiB per cell, past csv's 128 KiB default


def list_files(src: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The export files under ``src`` (a file or a folder, searched recursively), sorted."""
    src = Path(src)
    if not src.exists():
        raise ImportError_(f"{src}: no such file or folder")
    if src.is_file():
        return [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ImportError_(f"{src}: no {'/'.join(suffixes)} files in this folder")
    return files


def read_text(path: Path, report: ImportReport, fallback_encoding: str) -> str | None:
    """The file's text; None (and a rejection) when empty. Non-UTF-8 files are decoded with the
    fallback encoding and reported as a warning naming the file and the first bad byte."""
    data = path.read_bytes()
    if not data.strip():
        report.saw("files")
        report.reject("files", str(path), "-", "-", "empty file")
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        try:
            text = data.decode(fallback_encoding)
        except UnicodeDecodeError:
            report.saw("files")
            report.reject("files", str(path), "-", "-",
                          f"not UTF-8 (byte {exc.start}) nor {fallback_encoding}")
            return None
        report.warnings.append(
            f"{path}: not UTF-8 (invalid byte at offset {exc.start}); decoded as {fallback_encoding}"
        )
        return text


def read_json(path: Path, report: ImportReport, fallback_encoding: str):
    """Parsed JSON of one file, or None with a rejection naming line and column."""
    text = read_text(path, report, fallback_encoding)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        report.saw("files")
        report.reject("files", str(path), "-", f"line {exc.lineno} column {exc.colno}",
                      f"invalid or truncated JSON: {exc.msg}")
        return None
    except RecursionError:
        report.saw("files")
        report.reject("files", str(path), "-", "-", "JSON nested too deeply to be a tracker export")
        return None


def csv_rows(text: str) -> tuple[list[str] | None, list[list[str]]]:
    """Header and rows of a CSV file; a FieldError naming the line csv cannot read."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CELL))
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        rows = list(reader)
    except csv.Error as exc:
        raise FieldError(f"line {reader.line_num}", f"unreadable CSV: {exc}") from None
    return ([h.strip() for h in header] if header else None), rows
