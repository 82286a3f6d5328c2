"""Killing a ``slipcast sync`` child at a moment its own progress names, and reading that
progress back (the kill tests of tests/ingest/test_sync.py and test_sync_github.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 0.005


def rewritten(paths, since_ns: int) -> int:
    """How many of ``paths`` were written at or after ``since_ns`` (``time.time_ns()``)."""
    return sum(1 for p in paths if Path(p).exists() and Path(p).stat().st_mtime_ns >= since_ns)


def killed_when(cmd: list[str], env: dict[str, str], ready: Callable[[], bool], delay: float = 0.0,
                limit: float = 60.0) -> int | None:
    """Run ``cmd``, wait until ``ready()`` (polled every few milliseconds), ``delay`` seconds more,
    and SIGKILL it; None when the kill landed, the child's return code when it ended first."""
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until = time.monotonic() + limit
        while child.poll() is None and not ready() and time.monotonic() < until:
            time.sleep(POLL_SECONDS)
        time.sleep(delay)
        ended = child.poll()
        child.kill()
        child.wait()
        return ended
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
