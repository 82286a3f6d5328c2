"""Folders replaced whole without a moment of loss: the new content is written into a hidden
sibling, then exchanged with the old folder in one step (Linux ``renameat2`` with
``RENAME_EXCHANGE``), so that the path names the old folder or the new one at every moment, and
the old content, now in the sibling, is removed. Where the system cannot exchange (another
kernel, a file system without it) the old folder is moved aside and the new one renamed in: the
path is missing between the two renames. A kill leaves at most those siblings, which
``recover`` cleans up on the next write, putting the old folder back where the kill fell between
the two renames (docs/architecture.md, "Imports"). Used for canonical table folders and for the
exported champion."""

from __future__ import annotations

import ctypes
import errno
import os
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


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_CANNOT_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _exchange(a: Path, b: Path) -> bool:
    """Swap what the paths ``a`` and ``b`` name in one step; False where the system cannot."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _CANNOT_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` (if any) with the folder ``new``, its sibling, in one step where the system
    can exchange them (else: old aside, new in); the old content is then removed."""
    if not out.exists():
        new.rename(out)
    elif _exchange(new, out):
        shutil.rmtree(new)  # ``new`` holds the old content now
    else:
        old = _sibling(out, OLD)
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old)
