"""Live states built in a child process of low priority, so that requests keep the CPU.

A refresh of the live state is seconds of Python: the store's tables read, their history coded,
every open milestone forecast (docs/architecture.md, "Live state"). Built in a serving worker, it
holds that worker's interpreter while requests wait. With ``serving.build_niceness`` set, a
``Builder`` builds it in a child process started at that niceness instead: the worker waits for
the file the child writes with its interpreter free, and where the CPU is short the operating
system gives it to the requests first, so under load the refresh takes longer, not the requests.

Either way ``history_into`` codes the store's history once per version of the store and
``build_into`` builds each state from it, keeping it (``coded``) so that a refresh for time alone
codes nothing again. The child is given the models with each build, so it forecasts with exactly
the models of the worker that asked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import TypeVar

from slipcast.core.settings import Settings
from slipcast.features.store_history import History
from slipcast.ingest.tables import read_tables
from slipcast.live.declarations import Declarations
from slipcast.live.portfolio import build_portfolio
from slipcast.live.shared import dump, load
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.runtime import limit_model_threads, tune_collector

T = TypeVar("T")
_coded: dict[str, tuple[str, History]] = {}  # store and feature settings -> the store's signature and history coded


def coded(store: str, signature: str, settings: Settings, saved: Path | None = None) -> History:
    """The history of ``store`` as of its ``signature``: as this process last coded it (with the
    same feature settings), else read from ``saved`` (as another process dumped it there), else
    coded now."""
    key = f"{store}|{settings.features.model_dump_json()}"
    known = _coded.get(key)
    if known is None or known[0] != signature:
        _coded.clear()  # one store's history at a time: a service serves one store
        history = load(saved) if saved is not None and saved.exists() else History(read_tables(store), settings.features)
        known = _coded[key] = (signature, history)
    return known[1]


def history_into(path: Path, store: str, signature: str, settings: Settings) -> None:
    """The coded history of ``store`` as of its ``signature``, pickled to ``path``."""
    dump(coded(store, signature, settings), path)


def build_into(path: Path, history: Path, store: str, signature: str, as_of: datetime, version: str,
               models: Mapping[str, LoadedModel | None], settings: Settings, declared: Declarations) -> None:
    """The ``Portfolio`` of ``store`` as of ``as_of`` by ``models`` (with the programs and
    dependencies ``declared`` through the API), pickled to ``path`` without its model and history
    (``Portfolio.__getstate__``); the history, where this process has not coded it, read from
    ``history`` (``history_into``)."""
    dump(build_portfolio(coded(store, signature, settings, history), as_of, models, settings, version,
                         declared.programs, declared.dependencies), path)


def _start_child(niceness: int, settings: Settings, parent: int) -> None:
    os.nice(niceness)
    limit_model_threads(settings)
    tune_collector(settings)
    threading.Thread(target=_exit_with, args=(parent,), name="slipcast-builder-parent", daemon=True).start()


def _exit_with(parent: int) -> None:
    """End this child once the process that started it is gone, however it went: the child holds
    its own end of the pipe it reads its builds from, so it would never see the pipe close."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


class Builder:
    """Builds states by ``build_into`` in one child process at ``niceness``, started by ``start``
    or the first build, and again after one died."""

    def __init__(self, settings: Settings, niceness: int):
        self.settings = settings
        self.niceness = niceness
        self._pool: ProcessPoolExecutor | None = None
        self._started: Future[int] | None = None

    def start(self) -> None:
        """Start the child now, without waiting: its imports take seconds, better spent when the
        service starts than in the first refresh."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_start_child,
                                             initargs=(self.niceness, self.settings, os.getpid()))
            self._started = self._pool.submit(os.getpid)

    @property
    def pid(self) -> int | None:
        """The child's process id, once it runs; None before ``start``."""
        return None if self._started is None else self._started.result()

    def run(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` (``history_into``, ``build_into``, a sync) in the child, its result
        returned; raises what it raised there."""
        self.start()
        assert self._pool is not None
        try:
            return self._pool.submit(function, *args).result()
        except BrokenProcessPool:  # the child died (out of memory, say): a new one for the next build
            self.close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._started = None, None
