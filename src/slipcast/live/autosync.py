"""The service keeping its store current: sync, monitor and retrain on a schedule, one worker per run.

With ``serving.sync`` (``slipcast serve --sync jira|github ...``) every worker ticks every
``interval_seconds`` in a daemon thread (``core.background.Every``). Each tick claims the run of
the ``sync`` job for the tick's slot (its time floored to the interval) in the ledger's ``runs``
table (``Ledger.claim_run``: the insert that wins runs it; the others skip, on one machine or
several sharing the ledger). The winner syncs the store incrementally through the one table of
trackers (``ingest.connectors.trackers``), in the live state's child process of low priority,
wakes the live state to rebuild from the new store at once, and runs ``slipcast monitor``; from
``retrain_hour`` (UTC) on, the first tick of the day claims ``retrain --if-needed``. The monitor and
the retrain run as child commands: they belong to the monitoring layer, which reads training,
and what serves forecasts never imports training (docs/architecture.md, "A service that keeps
itself current"). A run that fails is logged (its error scrubbed of paths; connectors never put
a credential in theirs) and recorded; the sync and the monitor are tried again at the next tick
(a new slot), a failed retrain's slot is claimed again, and nothing a run does stops the service.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slipcast.core.background import Every
from slipcast.core.contracts import live_figures
from slipcast.core.progress import quiet
from slipcast.core.settings import Settings, TrackerSettings
from slipcast.ingest.connectors.trackers import problem, summary, sync_tracker
from slipcast.live.ledger import Ledger, LedgerError
from slipcast.live.state import LiveState, floored
from slipcast.scoring.model_store import public_message

log = logging.getLogger(__name__)
JOBS = ("sync", "monitor", "retrain")


def synced(tracker: TrackerSettings, store: str, settings: Settings) -> dict:
    """One incremental sync of ``store`` from ``tracker``, in numbers (``trackers.summary``)."""
    quiet()  # no progress bars from a service
    return summary(tracker, sync_tracker(tracker, Path(store), settings))


def retrain_slot(now: datetime, hour: int | None) -> datetime | None:
    """The day's retrain slot where it is due at ``now``: today at ``hour`` (UTC) once that has
    come, None before it (or with no hour: never)."""
    if hour is None:
        return None
    slot = now.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return slot if now >= slot else None


def sync_problem(settings: Settings) -> str | None:
    """Why the service cannot keep its store current as ``serving.sync`` asks (None where it can,
    or is not asked to): ``slipcast serve`` refuses to start on it, a service says it in ``/readyz``."""
    sync = settings.serving.sync
    if sync is None or not sync.enabled:
        return None
    if not settings.serving.store or "://" in settings.serving.store:
        return "a sync needs a store folder (--store DIR, or serving.store)"
    if not settings.serving.ledger_url:
        return "a sync needs the ledger (serving.ledger_url), through which one worker claims each run"
    return problem(sync)


class AutoSync:
    """The service's scheduled runs (``serving.sync``) for ``live``'s store, claimed in its ledger."""

    def __init__(self, settings: Settings, live: LiveState):
        self.settings = settings
        self.config = settings.serving.sync
        self.live = live
        self.ledger: Ledger | None = None
        self.problem = sync_problem(settings)
        self.error: str | None = None  # why the last tick could not reach the ledger
        self.last: dict[str, dict] = {}  # per job, its latest run as the ledger holds it
        self.synced_at: datetime | None = None  # when the store last synced, whichever worker synced it
        self.ran = 0  # syncs this worker claimed and ran
        self._ticks = Every("slipcast-autosync")
        self._running: int | None = None  # the run this worker is running now
        self._child: subprocess.Popen | None = None  # and the command it runs for it

    @property
    def asked(self) -> bool:
        """Whether the settings ask the service to sync (``serving.sync``, enabled)."""
        return self.config is not None and self.config.enabled

    @property
    def worker(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def start(self) -> None:
        """Tick now, then every ``interval_seconds``; nothing where the service does not sync."""
        if not self.asked or self.problem is not None or self.config is None or self._ticks.running:
            return
        self._ticks.start(self.config.interval_seconds, self.tick)
        self._ticks.wake()

    def stop(self) -> None:
        """Stop ticking; a run in progress is cut short (its command killed) and recorded as failed,
        so that its job is free for the next tick of any worker, not held until the timeout."""
        child, running = self._child, self._running
        if child is not None:
            child.kill()
        if running is not None and self.ledger is not None:
            try:
                self.ledger.finish_run(running, "failed", error="cut short: the service stopped")
            except LedgerError as exc:
                log.warning("run %d not recorded as cut short: %s", running, public_message(str(exc), self.settings))
        self._ticks.stop()
        if self.ledger is not None:
            self.ledger.close()

    def tick(self, now: datetime | None = None) -> None:
        """One tick at ``now`` (default: the clock's): the slot's sync and monitor, the day's
        retrain, where this worker claims them; then what the ledger says of the latest runs.
        Never raises: a failure is logged and the next tick tries again."""
        try:
            if self.ledger is None:
                assert self.live.ledger_url is not None
                self.ledger = Ledger(self.live.ledger_url)
            now = now or datetime.now(UTC)
            self._sync(self.ledger, now)
            self._retrain(self.ledger, now)
            self.last = self.ledger.last_runs(JOBS)
            done = self.ledger.last_runs(["sync"], status="ok").get("sync")
            self.synced_at = done["finished_at"] if done else None
        except LedgerError as exc:
            error = public_message(str(exc), self.settings)
            if error != self.error:
                log.warning("scheduled sync not claimed: %s (tried again at the next tick)", error)
            self.error = error
            if self.ledger is not None:
                self.ledger.close()
                self.ledger = None
            return
        except Exception:  # a step that fails in a way no run records: the service goes on
            log.exception("scheduled sync tick failed (tried again at the next tick)")
            return
        self.error = None

    def _claim(self, ledger: Ledger, job: str, slot: datetime) -> int | None:
        assert self.config is not None
        self._running = ledger.claim_run(job, slot, self.worker, timedelta(seconds=self.config.run_timeout_seconds))
        return self._running

    def _finished(self, ledger: Ledger, run_id: int, summary: dict) -> None:
        self._running = None
        ledger.finish_run(run_id, "ok", summary)

    def _failed(self, ledger: Ledger, run_id: int, job: str, error: str) -> None:
        self._running = None
        error = public_message(error, self.settings)
        log.warning("scheduled %s failed: %s (tried again at the next tick)", job, error)
        ledger.finish_run(run_id, "failed", error=error)

    def _sync(self, ledger: Ledger, now: datetime) -> None:
        """The slot's sync, then the monitor, where this worker claims them."""
        assert self.config is not None and self.live.store is not None
        slot = floored(now, self.config.interval_seconds)
        run_id = self._claim(ledger, "sync", slot)
        if run_id is None:
            return
        self.ran += 1
        try:
            counts = self.live.run(synced, self.config, self.live.store, self.settings)
        except Exception as exc:  # a tracker down, a store that cannot be written: recorded, tried next tick
            return self._failed(ledger, run_id, "sync", f"{type(exc).__name__}: {exc}")
        self._finished(ledger, run_id, counts)
        log.info("synced the store from %s: %d records, %d requests", self.config.tracker, counts["records"],
                 counts["requests"])
        self.live.wake()
        monitor_id = self._claim(ledger, "monitor", slot)
        if monitor_id is not None:
            self._command(ledger, monitor_id, "monitor", ["monitor"], ok=(0, 1))

    def _retrain(self, ledger: Ledger, now: datetime) -> None:
        """The day's ``retrain --if-needed``, where it is due and this worker claims it."""
        assert self.config is not None
        slot = retrain_slot(now, self.config.retrain_hour)
        run_id = None if slot is None else self._claim(ledger, "retrain", slot)
        if run_id is not None:
            self._command(ledger, run_id, "retrain", ["retrain", "--if-needed"], ok=(0,))

    def _command(self, ledger: Ledger, run_id: int, job: str, args: list[str], ok: tuple[int, ...]) -> None:
        """``slipcast <args> --store STORE`` as a child process (of the service's build niceness),
        recorded as the run ``run_id``: its exit code and first line, the monitor's figures, and
        where it exits otherwise than ``ok``, the last line it wrote on standard error."""
        assert self.config is not None and self.live.store is not None
        command = [sys.executable, "-m", "slipcast.cli", *args, "--store", self.live.store, "--quiet"]
        try:
            self._child = child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if self.settings.serving.build_niceness:
                os.setpriority(os.PRIO_PROCESS, child.pid, self.settings.serving.build_niceness)
            try:
                out, err = child.communicate(timeout=self.config.run_timeout_seconds)
            except subprocess.TimeoutExpired:
                child.kill()
                child.communicate()
                raise
            finally:
                self._child = None
        except (OSError, subprocess.SubprocessError) as exc:
            return self._failed(ledger, run_id, job, f"{type(exc).__name__}: {exc}")
        said = out.strip().splitlines()
        done = {"exit": child.returncode, "said": said[0][:300] if said else ""}
        if job == "monitor":
            figures = live_figures(self.settings.resolve(self.settings.monitoring.report_dir)) or {}
            done |= {k: figures.get(k) for k in ("as_of", "published", "with_outcome", "breaches")}
        if child.returncode not in ok:
            lines = [line for line in err.strip().splitlines() if line.strip()]
            return self._failed(ledger, run_id, job, lines[-1] if lines else f"exited {child.returncode}")
        self._finished(ledger, run_id, done)

    def status(self) -> dict:
        """How the store is kept current: ``state`` ``off`` (not asked to, or ``error`` says why
        it cannot), ``waiting`` (no run yet), ``ok`` or ``failing`` (the latest sync failed, or
        the ledger cannot be reached); the tracker and interval, when the store last synced and
        the latest run of each job."""
        if not self.asked or self.problem is not None or self.config is None:
            return {"state": "off", "error": self.problem}
        last_sync = self.last.get("sync")
        failing = self.error is not None or (last_sync is not None and last_sync["status"] == "failed")
        state = "failing" if failing else "ok" if self.synced_at else "waiting"
        return {"state": state, "tracker": str(self.config.tracker), "interval_seconds": self.config.interval_seconds,
                "synced_at": self.synced_at, "error": self.error or (last_sync or {}).get("error"),
                "runs": {job: {k: run[k] for k in ("slot", "status", "worker", "started_at", "finished_at", "summary",
                                                  "error")} for job, run in self.last.items()}}
