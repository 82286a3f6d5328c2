"""A daemon thread that calls one function every so often until stopped: the model store's
champion polling, the live state's refreshes and the service's syncs run on it."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Every:
    """Calls ``step`` every ``seconds`` in a daemon thread named ``name``, from ``start`` until
    ``stop`` (a step in progress finishes; the thread is given five seconds to), and at once when
    woken (``wake``)."""

    def __init__(self, name: str):
        self.name = name
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, seconds: float, step: Callable[[], object]) -> None:
        if self._thread is not None:
            return

        def loop():
            while True:
                self._wake.wait(seconds)
                if self._stop.is_set():
                    return
                self._wake.clear()
                step()

        self._thread = threading.Thread(target=loop, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Run the step now (after the one in progress), not at the end of the period."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
