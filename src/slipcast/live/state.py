"""The current live state of the store, refreshed in the background.

``slipcast serve --store DIR`` (or ``serving.store``) serves every open milestone of the canonical
tables that ``slipcast import`` and ``slipcast sync`` write (``live.portfolio``). ``LiveState``
rebuilds that in a background thread when the store or a champion changes, and at least every
``serving.refresh_seconds`` (time moves on even when nothing else does), and swaps the new
``Portfolio`` in with one assignment: a request reads whichever is current, never waits for a
refresh and never sees half of one (docs/architecture.md, "Live state"). Each state is built once
for all the service's workers (``live.shared``), from the store's history, itself coded once
per version of the store and shared apart, in a child process of low priority where
``serving.build_niceness`` is set (``live.builder``). The programs and dependencies declared
through the API (``live.declarations``) are read at each refresh and watched like the store: a
declaration triggers a refresh. Each new state's forecasts, of milestones and programs, go to the
ledger (``live.ledger``), and the alerts they raise to their webhooks (``serving.alerts``),
delivered in the background, and with ``serving.publish`` into the tracker's descriptions
(``live.publish``), in the background too: a failed publish is logged and recorded, never fails
the refresh. A ledger that cannot be opened or written is reported
(``ledger_status``, the log) and skipped, and tried again at the next refresh: forecasts are
served all the same (docs/architecture.md, "Forecast ledger").
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from slipcast import __version__
from slipcast.core.background import Every
from slipcast.core.contracts import TARGETS
from slipcast.core.settings import Settings
from slipcast.features.store_history import History
from slipcast.ingest.tables import store_signature
from slipcast.live.alerts import Deliveries, send_alerts, send_program_alerts
from slipcast.live.builder import Builder, build_into, history_into
from slipcast.live.declarations import DeclarationsError, read_declarations
from slipcast.live.ledger import Ledger, LedgerError
from slipcast.live.metrics import Metrics
from slipcast.live.portfolio import Portfolio, floored
from slipcast.live.publish import Publisher
from slipcast.live.shared import built_once, shared_path
from slipcast.scoring.forecast import model_ref
from slipcast.scoring.model_store import LoadedModel, ModelStore, public_message

log = logging.getLogger(__name__)
T = TypeVar("T")


def _versions(models: Mapping[str, LoadedModel | None] | ModelStore) -> tuple:
    """The versions of the models serving each target (None where none is loaded)."""
    return tuple(getattr(models.get(t), "version", None) for t in TARGETS)


class LiveState:
    """The current ``Portfolio`` of the store at ``settings.serving.store``, refreshed in the
    background: when the store or a served model changes, and every ``refresh_seconds``."""

    def __init__(self, settings: Settings, models: ModelStore, clock, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self.models = models
        self.clock = clock
        self.store = settings.store_location(settings.serving.store) if settings.serving.store else None
        self.ledger_url = settings.resolved_uri(settings.serving.ledger_url) \
            if settings.serving.ledger_url and self.store is not None else None
        self.ledger: Ledger | None = None  # opened at start, and again after it failed (``_open_ledger``)
        self.ledger_error: str | None = None
        self.alerts = Deliveries(settings.serving.alert_queue)
        options = settings.serving.publish  # opt-in: each new state into the tracker, in the background
        self.publisher = Publisher(settings, options) if options is not None else None
        self.shared = settings.resolve(settings.work_dir) / "live"  # states and histories built once for every worker
        # what every shared file is also named by: Slipcast's release and the settings, fixed for this state
        self._made_by = f"{__version__}|{settings.model_dump_json(warnings=False)}"
        self.error: str | None = None
        self.refreshes = 0
        self.built = 0  # of those, the states this process built (the others it read as another worker built them)
        self.recorded = 0  # forecasts this process added to the ledger
        self.alerted = 0  # alerts this process sent
        niceness = settings.serving.build_niceness
        self.builder = None if niceness is None else Builder(settings, niceness)
        self._current: Portfolio | None = None
        self._history: tuple[str, History, Path] | None = None  # the store's signature, its history coded, its file
        self._watching = Every("slipcast-live-state")
        self._seen: tuple = ()  # the inputs and the time of the last refresh the watcher made
        self._last = datetime.min.replace(tzinfo=UTC)

    def get(self) -> Portfolio | None:
        return self._current

    def refresh(self) -> bool:
        """Rebuild the state now; False (and ``error`` says why) where it cannot be, the last good
        state serving on."""
        store = self.store
        if store is None:
            return False
        try:
            signature = store_signature(store)
            # the models as they are now, should one be swapped meanwhile
            models: dict[str, LoadedModel | None] = {t: self.models.get(t) for t in TARGETS}
            if models["milestone"] is None:
                raise LookupError("no milestone model loaded yet")
            versions = _versions(models)
            declared = read_declarations(self.settings)
            as_of = floored(self.clock(), self.settings.serving.refresh_seconds)
            version = hashlib.sha256(f"{signature}|{versions}|{as_of.isoformat()}|{declared.fingerprint()}"
                                     .encode()).hexdigest()[:16]
            history, saved = self._history_of(store, signature)
            state, built = built_once(self.shared / "states", self._key(version, models), lambda path: self.run(
                build_into, path, saved, store, signature, as_of, version, models, self.settings, declared))
            # neither in the file: this process's own model (the same, by the key), the history shared apart
            state.model, state.history = models["milestone"], history
            self.built += built
            self._current = state
            if self.metrics is not None:
                self.metrics.live_states.labels("built" if built else "read").inc()
                self.metrics.publish(state.milestones)
            self._record(state)
            if self.publisher is not None:
                self.publisher.submit(state, self.ledger)
        except Exception as exc:  # keep serving the last good state whatever went wrong
            error = f"{type(exc).__name__}: {exc}"
            if error != self.error:  # once per new error, not once per try
                log.warning("live state not refreshed: %s", error)
            self.error = error
            return False
        self.error = None
        self.refreshes += 1
        return True

    def _open_ledger(self) -> Ledger | None:
        """The ledger, opened now where it is not open yet (at start, and after a failure)."""
        if self.ledger is None and self.ledger_url is not None:
            try:
                self.ledger = Ledger(self.ledger_url)
            except LedgerError as exc:
                self._ledger_failed(exc)
        return self.ledger

    def _ledger_failed(self, exc: LedgerError) -> None:
        """Say once why the ledger cannot be used, and let it go: the next refresh opens it anew."""
        error = public_message(str(exc), self.settings)
        if error != self.ledger_error:
            log.warning("%s; forecasts are served but not recorded, nor alerts sent, until it can be used "
                        "(tried again at every refresh)", error)
        self.ledger_error = error
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    def _record(self, state: Portfolio) -> None:
        """The state's forecasts into the ledger, and the alerts they raise claimed and queued; a
        ledger that fails is reported and skipped (``ledger_status``)."""
        ledger = self._open_ledger()
        if ledger is None:
            return
        try:
            self.recorded += ledger.record(state.published, [m.project for m in state.milestones],
                                           [m.due_at for m in state.milestones])
            forecast = [p for p in state.programs if p.chance is not None]
            self.recorded += ledger.record_programs([p.program_id for p in forecast], [p.point() for p in forecast],
                                                    model_ref(state.model), self.settings.programs.draws)
            self.alerted += send_alerts(state.milestones, ledger, self.settings, self.alerts)
            self.alerted += send_program_alerts(state.programs, ledger, self.settings, self.alerts)
        except LedgerError as exc:
            self._ledger_failed(exc)
            return
        if self.ledger_error is not None:
            log.info("ledger usable again: forecasts are recorded")
            self.ledger_error = None

    def ledger_status(self) -> dict:
        """How the ledger stands: ``state`` ``ok``, ``failing`` (``error`` says why: forecasts are
        served, not recorded) or ``off`` (no ledger configured, or no store to record)."""
        if self.ledger_url is None:
            return {"state": "off", "error": None}
        if self.ledger_error is not None:
            return {"state": "failing", "error": self.ledger_error}
        return {"state": "ok", "error": None}

    def _key(self, version: str, models: Mapping[str, LoadedModel | None]) -> str:
        """What a state shared among workers is named by: its version, and all else it is built
        from (Slipcast's release, the settings, the served models' metadata), so that only an
        equal state is shared."""
        described = json.dumps([getattr(models[t], "metadata", None) for t in TARGETS], sort_keys=True, default=str)
        parts = f"{version}|{self._made_by}|{described}"
        return hashlib.sha256(parts.encode()).hexdigest()[:32]

    def _history_of(self, store: str, signature: str) -> tuple[History, Path]:
        """The store's history as of ``signature`` and the file it is shared in: coded once for
        every worker, like a state, and shared apart from the states, which are built from it as
        long as the store is unchanged."""
        if self._history is None or self._history[0] != signature:
            folder = self.shared / "histories"
            key = hashlib.sha256(f"{store}|{signature}|{self._made_by}".encode()).hexdigest()[:32]
            history, _ = built_once(folder, key,
                                    lambda path: self.run(history_into, path, store, signature, self.settings))
            self._history = (signature, history, shared_path(folder, key))
        return self._history[1], self._history[2]

    def run(self, function: Callable[..., T], *args) -> T:
        """``function(*args)``: in the child process of low priority where there is one, else here
        (the states' builds, and the service's syncs: ``live.autosync``)."""
        if self.builder is None:
            return function(*args)
        return self.builder.run(function, *args)

    def _inputs(self) -> tuple[str, tuple, str]:
        """What a refresh depends on besides the time: the store's signature, the models serving and
        the API's declarations (``live.declarations``: a declaration triggers a refresh)."""
        assert self.store is not None
        return store_signature(self.store), _versions(self.models), read_declarations(self.settings).fingerprint()

    def start(self) -> None:
        """Refresh now, then whenever the store or a model changes (checked every
        ``serving.reload_seconds``) or ``serving.refresh_seconds`` have passed."""
        if self.store is None or self._watching.running:
            return
        if self.builder is not None:
            self.builder.start()
        self._open_ledger()
        self.refresh()
        try:
            self._seen = self._inputs()
        except (OSError, DeclarationsError):  # a refresh says why, and the next look tries again
            self._seen = ()
        self._last = self.clock()
        self._watching.start(max(self.settings.serving.reload_seconds, 0.2), self._check)

    def wake(self) -> None:
        """Look at the inputs now, not at the end of the period (a sync just replaced the store)."""
        self._watching.wake()

    def _check(self) -> None:
        """One look: refresh if the inputs changed, nothing serves yet, or the period has passed."""
        try:
            now = self._inputs()
        except (OSError, DeclarationsError) as exc:  # the store is being replaced: look again next time
            self.error = str(exc)
            return
        due = (self.clock() - self._last).total_seconds() >= self.settings.serving.refresh_seconds
        if (now != self._seen or self._current is None or due) and self.refresh():
            self._seen, self._last = now, self.clock()

    def stop(self) -> None:
        self._watching.stop()
        self.alerts.stop()
        if self.builder is not None:
            self.builder.close()
        if self.ledger is not None:
            self.ledger.close()
