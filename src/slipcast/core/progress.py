"""Progress of long commands on a terminal: the stage, counts done and to do, and time left.

Shown on standard error through tqdm when it is a terminal; silent otherwise (logs, CI, pipes)
and after ``quiet()`` (the ``--quiet`` option of every command).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
_state = {"quiet": False}


def quiet(on: bool = True) -> None:
    """Show no progress in this process (``--quiet``)."""
    _state["quiet"] = on


def shown() -> bool:
    """Whether progress is shown here: standard error is a terminal and ``--quiet`` was not given."""
    return not _state["quiet"] and sys.stderr.isatty()


def progress(items: Iterable[T], stage: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """``items``, counted on the terminal under ``stage`` with the time left when ``total`` is known."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    yield from tqdm(items, desc=stage, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                    disable=True if _state["quiet"] else None)
