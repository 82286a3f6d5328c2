"""Where a sync keeps what it fetched: a folder beside the store, its files replaced whole, named
by one rule from tracker data and never outside the folder; and how a sync reports the records
it would not keep (docs/architecture.md, "What a tracker can make Slipcast do")."""

from __future__ import annotations

import hashlib
import json
import os
import string
from pathlib import Path

from slipcast.ingest.connectors.http import ConnectorError

NAME_CHARS = frozenset(string.ascii_letters + string.digits + "._-")  # kept as they are in a file name
MAX_STEM = 200  # longer encoded names are a hash (file systems allow 255 bytes)
SHOWN_CHARS = 80


def sync_folder(store: Path) -> Path:
    """Where a store's fetched records live: a folder beside it (``<store>.sync``)."""
    return store.parent / f"{store.name}.sync"


def file_stem(text: str) -> str:
    """The one rule for a file name made of tracker text: every character but ``A-Za-z0-9._-``
    percent-encoded (as UTF-8), a leading ``.`` too, so no name is hidden, ``.``, ``..`` or holds
    a ``/``; one that would be longer than ``MAX_STEM`` (or empty) is ``%%`` and the text's
    SHA-256 instead (no encoded name starts so)."""
    encoded = "".join(c if c in NAME_CHARS else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    if not encoded or len(encoded) > MAX_STEM:
        return "%%" + hashlib.sha256(text.encode()).hexdigest()
    return encoded


def inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused unless it resolves to a path inside ``folder``."""
    root = folder.resolve()
    path = (folder / name).resolve()
    if root not in path.parents:
        raise ConnectorError(f"refused to write {shown(name)}: outside the sync folder {folder}")
    return path


def write_whole(folder: Path, name: str, payload) -> None:
    """Write ``payload`` as JSON to ``name`` in ``folder`` under a temporary name, then rename it
    into place: a kill leaves the old file or the new one, never part of either."""
    path = inside(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


def shown(value: object) -> str:
    """Tracker data as a report or an error shows it: its ASCII repr, cut short (no control
    character or escape sequence reaches a terminal)."""
    text = ascii(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def reject(rejections: list[dict], record: str, reason: str) -> None:
    """Count a record a sync does not keep (never written, never asked about), once."""
    entry = {"record": record, "reason": reason}
    if entry not in rejections:
        rejections.append(entry)


def rejection_lines(rejections: list[dict], first: int = 10) -> list[str]:
    """A sync report's lines on the records it rejected: how many, and the first few with why."""
    if not rejections:
        return []
    lines = [f"  {len(rejections)} rejected (never written nor asked about):"]
    lines += [f"    {r['record']}: {r['reason']}" for r in rejections[:first]]
    if len(rejections) > first:
        lines.append(f"    ... {len(rejections) - first} more")
    return lines
