"""How the page writes a chance and a date: ``62 %``, ``2026-03-01``; nothing where there is none."""

from __future__ import annotations

from datetime import datetime


def percent(value: float | None) -> str:
    """A chance in whole percent (``62 %``), empty where there is none."""
    return "" if value is None else f"{value * 100:.0f} %"


def day(value: datetime | None) -> str:
    """A date (``2026-03-01``), empty where there is none."""
    return "" if value is None else f"{value:%Y-%m-%d}"
