"""Alerts: webhooks told when an open milestone's risk rises, or a program's chance drops
(``serving.alerts``).

After each refresh of the live state, every subscription compares each open milestone's
forecast with what the ledger recorded before: its band rose since the last published forecast,
or its probability moved by at least ``min_points`` from one recorded within ``within_days``. A
subscription with ``program_drop_points`` does the same for each program with a forecast: its
band rose, or its chance fell by at least that much within ``within_days``.
Each alert is claimed in the ledger first (one per subscription, milestone or program, and as_of), so of the
workers that built the same state only one sends it. The event is JSON, signed with HMAC-SHA256
over ``<timestamp>.<body>`` with the secret from the subscription's environment variable
(headers ``X-Slipcast-Timestamp``, ``X-Slipcast-Signature: sha256=<hex>``, and
``X-Slipcast-Delivery``, the alert's id, for idempotency), retried with exponential backoff on
a refused connection, a timeout, 429 or 5xx, and its outcome logged in the ledger
(docs/architecture.md, "Alerts"). Deliveries run in the background (``Deliveries``: a bounded
queue and one daemon thread), so a slow or silent receiver holds up neither the service's start
nor a refresh; what a receiver answers is kept as its status alone, never its body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from slipcast.core.settings import AlertSubscription, Settings
from slipcast.live.ledger import MILESTONES, PROGRAMS, Ledger, LedgerError, Subject
from slipcast.live.records import MilestoneState, ProgramState, milestone_path, program_path

log = logging.getLogger(__name__)
ATTEMPTS = 4


def subscription_key(sub: AlertSubscription) -> str:
    return hashlib.sha256(sub.url.encode()).hexdigest()[:16]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature a receiver recomputes: HMAC-SHA256 of ``<timestamp>.<body>``, hex."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _rank(band: str | None, bands: dict[str, float]) -> int:
    order = sorted(bands, key=bands.__getitem__)
    return order.index(band) if band in order else -1


def reasons(sub: AlertSubscription, now: MilestoneState | ProgramState, earlier: list[dict], bands: dict[str, float],
            program: bool = False) -> tuple[str, dict] | None:
    """Why ``now`` (a milestone's forecast, or a program's: ``program``) deserves an alert under
    ``sub`` given its ``earlier`` live ledger records (oldest first), and the record it is
    compared with; None if it does not. Its band rose since the latest record; or a milestone's
    probability moved by at least ``min_points`` either way, or a program's chance fell by at least
    ``program_drop_points`` (its probability rose), from one recorded within ``within_days``."""
    if now.probability is None or not earlier:
        return None
    last = earlier[-1]
    if sub.band_rise and _rank(now.risk_band, bands) > _rank(last["risk_band"], bands) >= 0:
        return f"risk band rose from {last['risk_band']} to {now.risk_band}", last
    points = sub.program_drop_points if program else sub.min_points
    if points is None:
        return None
    window = [r for r in earlier if r["probability"] is not None
              and r["as_of"] >= now.as_of - timedelta(days=sub.within_days)]
    if not window:
        return None
    probability = now.probability
    if program:  # a drop only: from the highest chance (lowest probability) in the window
        far = min(window, key=lambda r: r["probability"])
        move = probability - far["probability"]
        if move >= points - 1e-9:
            return f"chance fell {move * 100:.0f} points within {sub.within_days:g} days", far
        return None
    far = max(window, key=lambda r: abs(probability - r["probability"]))
    move = probability - far["probability"]
    if abs(move) >= points - 1e-9:
        return (f"probability {'rose' if move > 0 else 'fell'} {abs(move) * 100:.0f} points within "
                f"{sub.within_days:g} days"), far
    return None


def _link(sub: AlertSubscription, path: str) -> str | None:
    """The page an event links to: the subscription's ``page_url`` and the page's own path."""
    return f"{sub.page_url.rstrip('/')}/{path}" if sub.page_url else None


def event(now: MilestoneState, reason: str, before: dict, sub: AlertSubscription) -> dict:
    """The JSON an alert about a milestone carries."""
    return {"event": "milestone.risk_changed", "reason": reason, "milestone_id": now.milestone_id,
            "project": now.project, "name": now.name, "as_of": now.as_of.isoformat(),
            "before": {"as_of": before["as_of"].isoformat(), "probability": before["probability"],
                       "risk_band": before["risk_band"]},
            "after": {"probability": now.probability, "risk_band": now.risk_band, "due_at":
                      now.due_at.isoformat() if now.due_at else None},
            "drivers": [d.model_dump() for d in now.drivers],
            "link": _link(sub, milestone_path(now.milestone_id))}


def program_event(now: ProgramState, reason: str, before: dict, sub: AlertSubscription) -> dict:
    """The JSON an alert about a program carries."""
    def when(value) -> str | None:
        return None if value is None else value.isoformat()

    return {"event": "program.risk_changed", "reason": reason, "program_id": now.program_id, "name": now.name,
            "source": now.source, "as_of": now.as_of.isoformat(),
            "before": {"as_of": before["as_of"].isoformat(), "chance": before["chance"],
                       "probability": before["probability"], "risk_band": before["risk_band"]},
            "after": {"chance": now.chance, "probability": now.probability, "risk_band": now.risk_band,
                      "target_at": when(now.target_at), "done_50": when(now.done_50), "done_85": when(now.done_85)},
            "critical_path": now.critical_path, "most_critical": now.most_critical,
            "link": _link(sub, program_path(now.program_id))}


def _retried(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError) or (
        isinstance(exc, httpx.HTTPStatusError) and (exc.response.status_code == 429 or exc.response.status_code >= 500))


def answered(status_code: int) -> str:
    """A receiver's answer as the ledger and the log keep it: its status and the status's standard
    phrase, never the body or the receiver's own phrase (a receiver that echoes the request would
    have the signature there, one that echoes its environment a token)."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = "non-standard status"
    return f"{status_code} {phrase}"


def deliver(sub: AlertSubscription, alert_id: int, payload: dict, timeout: float = 10.0) -> tuple[str, int, str]:
    """POST one signed event, retrying what a retry can mend; (status, attempts, response)."""
    secret = os.environ.get(sub.secret_env)
    if not secret:
        return "failed", 0, f"the signing secret variable {sub.secret_env} is not set"
    body = json.dumps(payload, sort_keys=True).encode()
    attempts = 0
    try:
        for attempt in Retrying(retry=retry_if_exception(_retried), stop=stop_after_attempt(ATTEMPTS),
                                wait=wait_exponential_jitter(initial=0.2, max=5), reraise=True):
            with attempt:
                attempts += 1
                stamp = str(int(time.time()))
                response = httpx.post(sub.url, content=body, timeout=timeout, headers={
                    "Content-Type": "application/json", "X-Slipcast-Timestamp": stamp,
                    "X-Slipcast-Signature": f"sha256={sign(secret, stamp, body)}",
                    "X-Slipcast-Delivery": str(alert_id)})
                response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return "failed", attempts, answered(exc.response.status_code)
    except httpx.TransportError as exc:
        return "failed", attempts, type(exc).__name__
    return "delivered", attempts, answered(response.status_code)


@dataclass(frozen=True)
class _Delivery:
    """One claimed alert waiting to be sent, and the ledger its outcome goes back to."""

    sub: AlertSubscription
    alert_id: int
    payload: dict
    ledger: Ledger
    about: Subject

    def subject(self) -> str | None:
        """The milestone or program the alert is about, as the log names it."""
        return self.payload.get(self.about.key)


def _outcome(job: _Delivery, status: str, attempts: int, response: str) -> None:
    """Log how a delivery ended in the ledger; a ledger that fails meanwhile is said in the log."""
    try:
        job.ledger.delivered(job.alert_id, status, attempts, response, job.about)
    except LedgerError as exc:
        log.warning("alert %d: its outcome (%s) not logged: %s", job.alert_id, status, exc)


class Deliveries:
    """Alert deliveries off the refresh's path: a queue of at most ``size`` alerts
    (``serving.alert_queue``) and one daemon thread that sends them in turn and logs each outcome
    in the ledger. A refresh only claims and queues, so a receiver that sleeps or never answers
    holds up neither the service's start nor a refresh. An alert claimed while the queue is full
    is dropped at once: ``dropped`` in the ledger with the reason, counted and logged."""

    def __init__(self, size: int):
        self._queue: queue.Queue[_Delivery] = queue.Queue(maxsize=size)
        self._lock = threading.Condition()
        self._unfinished = 0  # queued or under way
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = self.failed = self.dropped = 0

    def submit(self, sub: AlertSubscription, alert_id: int, payload: dict, ledger: Ledger,
               about: Subject = MILESTONES) -> bool:
        """Queue one claimed alert (about a milestone, or a program: ``about``) for delivery;
        False where the queue is full and it was dropped."""
        job = _Delivery(sub, alert_id, payload, ledger, about)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="slipcast-alerts", daemon=True)
                self._thread.start()
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.dropped += 1
            else:
                self._unfinished += 1
                return True
        reason = f"not sent: the delivery queue was full ({self._queue.maxsize} alerts waiting, serving.alert_queue)"
        log.warning("alert %d for %s dropped: %s", alert_id, job.subject(), reason)
        _outcome(job, "dropped", 0, reason)
        return False

    def _work(self) -> None:
        """Send what is queued, one at a time, until stopped."""
        while not self._stopping.is_set():
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                status, attempts, response = deliver(job.sub, job.alert_id, job.payload)
                if status == "delivered":
                    self.delivered += 1
                else:
                    self.failed += 1
                    log.warning("alert %d for %s not delivered: %s", job.alert_id, job.subject(), response)
                _outcome(job, status, attempts, response)
            except Exception as exc:  # the thread outlives any one delivery
                self.failed += 1
                log.warning("alert %d not delivered: %s", job.alert_id, type(exc).__name__)
            finally:
                with self._lock:
                    self._unfinished -= 1
                    self._lock.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait until every queued delivery has ended; False if some had not after ``timeout`` s."""
        with self._lock:
            return self._lock.wait_for(lambda: self._unfinished == 0, timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop taking deliveries off the queue (the one under way ends in its thread; alerts left
        queued stay ``pending`` in the ledger)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)


def send_alerts(states: list[MilestoneState], ledger: Ledger, settings: Settings, deliveries: Deliveries) -> int:
    """Check every subscription against every open milestone, claim what is due and queue it for
    delivery (``deliveries``: in the background); returns how many alerts this process claimed."""
    return _claim(states, MILESTONES, settings.serving.alerts, ledger, settings, deliveries)


def send_program_alerts(programs: list[ProgramState], ledger: Ledger, settings: Settings,
                        deliveries: Deliveries) -> int:
    """The same for programs with a forecast, under the subscriptions that ask for programs
    (``program_drop_points`` set); returns how many alerts this process claimed."""
    subs = [s for s in settings.serving.alerts if s.program_drop_points is not None]
    return _claim([p for p in programs if p.chance is not None], PROGRAMS, subs, ledger, settings, deliveries)


def _claim(subjects: list, about: Subject, subs: list[AlertSubscription], ledger: Ledger, settings: Settings,
           deliveries: Deliveries) -> int:
    """Claim and queue the alerts ``subs`` raise on ``subjects`` (milestones' or programs'
    forecasts of one state: ``about``)."""
    if not subs or not subjects:
        return 0
    as_of = subjects[0].as_of
    lookback = max(max(s.within_days for s in subs), 30.0)
    ids = [getattr(x, about.key) for x in subjects]
    history = ledger.compared(ids, as_of, timedelta(days=lookback), [timedelta(days=s.within_days) for s in subs],
                              about)
    program = about is PROGRAMS
    claimed = 0
    for sub in subs:
        for subject_id, now in zip(ids, subjects):
            found = reasons(sub, now, history.get(subject_id, []), settings.serving.risk_bands, program)
            if found is None:
                continue
            reason, before = found
            alert_id = ledger.claim_alert(subscription_key(sub), subject_id, now.as_of, reason, about)
            if alert_id is None:  # another worker claimed it
                continue
            payload = (program_event if program else event)(now, reason, before, sub)
            deliveries.submit(sub, alert_id, payload, ledger, about)
            claimed += 1
    return claimed
