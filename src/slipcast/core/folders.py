"""Folders replaced whole without a moment of loss: the new content is written into a hidden
sibling, the old folder is moved aside, the new one renamed into place, and the old removed.
A kill leaves at most those siblings, which ``recover`` cleans up on the next write, putting the
old folder back where the kill fell between the two renames (docs/architecture.md, "Imports").
Used for canonical table folders and for the exported champion."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

TMP, OLD = "slipcast-tmp", "slipcast-old"  # what a sibling holds: the new content, or the old folder


def _sibling(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.{kind}-{secrets.token_hex(4)}"


def recover(out: Path) -> None:
    """Clean up after a replacement that was killed: remove its temporary siblings, and put the
    previous folder back where the kill fell between moving it aside and moving the new one in."""
    out = Path(out)
    for tmp in sorted(out.parent.glob(f".{out.name}.{TMP}-*")):
        shutil.rmtree(tmp, ignore_errors=True)
    for old in sorted(out.parent.glob(f".{out.name}.{OLD}-*")):
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(out)


def new_sibling(out: Path) -> Path:
    """An empty hidden folder beside ``out`` to write its new content into (after ``recover``)."""
    path = _sibling(Path(out), TMP)
    path.mkdir()  # the process umask applies: as readable as any other folder
    return path


def swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` (if any) with the folder ``new``, its sibling: old aside, new in, old removed."""
    if out.exists():
        old = _sibling(out, OLD)
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old)
    else:
        new.rename(out)
