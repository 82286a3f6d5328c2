"""A value built once per machine and shared by the service's worker processes through a file.

Every worker of ``slipcast serve --workers N`` refreshes the live state from the same store and
models at the same moments, and would build the same ``Portfolio`` N times, each build holding
its worker's interpreter for seconds while requests wait (docs/architecture.md, "Live state").
``built_once`` lets the first worker to ask build it and write it to a file in the service's own
work folder; the others wait for that file (on a lock, without holding the interpreter) and read
it, which costs a few hundredths of a second where the build costs seconds. The build writes
the file itself, so that it can run in another process (``live.builder``).
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
KEEP = 2  # files kept in the folder: the newest build, and the one before it for a worker still on it
SUFFIX = ".pickle"


def built_once(folder: Path, key: str, build: Callable[[Path], None]) -> tuple[Any, bool]:
    """The value named ``key``: read from ``folder`` where another process has built it, else
    built now (under the folder's lock, so that the others wait for it rather than build it
    too) by ``build(path)``, which pickles it to ``path`` (``dump``). Returns it and whether this
    call built it.

    The folder belongs to the service (``work_dir``): its files are read back with ``pickle``,
    as written. Where the folder cannot be used or written (its disk is full, say), the value is
    built in a folder of this process's own and served unshared, as with one worker; where a
    file in it cannot be read, it is built anew."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / "build.lock", "a")  # held across the build, closed by the with below
    except OSError as exc:
        return _unshared(key, build, exc), True
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits, interpreter released, while another process builds
        path = shared_path(folder, key)
        if path.exists():
            try:
                return load(path), False
            except Exception as exc:  # a file cut short or from another version of Slipcast: build anew
                log.warning("rebuilding %s: %s", path.name, exc)
        partial = path.with_suffix(".partial")
        try:
            build(partial)
            os.replace(partial, path)  # whole or not at all
        except OSError as exc:  # a build that failed for another reason fails again, and says why
            return _unshared(key, build, exc), True
        finally:
            partial.unlink(missing_ok=True)
        for old in sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
            old.unlink(missing_ok=True)
        return load(path), True


def _unshared(key: str, build: Callable[[Path], None], why: OSError) -> Any:
    """The value built by ``build`` in a temporary folder of this process's own, and read back."""
    log.warning("building %s unshared: %s", key, why)
    with tempfile.TemporaryDirectory() as own:
        path = Path(own) / f"{key}{SUFFIX}"
        build(path)
        return load(path)


def shared_path(folder: Path, key: str) -> Path:
    """Where ``built_once`` keeps the value named ``key``."""
    return folder / f"{key}{SUFFIX}"


def dump(value: object, path: Path) -> None:
    """``value`` pickled to ``path``, as ``built_once`` reads it."""
    with path.open("wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)


def load(path: Path):
    """What ``dump`` wrote to ``path``."""
    with path.open("rb") as f:
        return pickle.load(f)
