"""Where a sync keeps what it fetched: a folder beside the store, its files replaced whole."""

from __future__ import annotations

import json
import os
from pathlib import Path


def sync_folder(store: Path) -> Path:
    """Where a store's fetched records live: a folder beside it (``<store>.sync``)."""
    return store.parent / f"{store.name}.sync"


def write_whole(path: Path, payload) -> None:
    """Write ``payload`` as JSON to ``path`` under a temporary name, then rename it into place:
    a kill leaves the old file or the new one, never part of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)
