"""Forecasts written back into the tracker: ``slipcast publish``, and ``serving.publish`` after
each refresh of the live state.

Each open milestone's served forecast goes into a block of its Jira fix version's or GitHub
milestone's description, between the lines ``[slipcast]`` and ``[/slipcast]`` (plain text: it
reads the same in Jira's plain-text version description and in GitHub's Markdown). Only that
block is Slipcast's: the description is read just before it is written and the new text is that
description with the block replaced (or appended), so text outside it, a person's edit of a
minute ago included, is never changed. A block is written only when its numbers moved: the state
changed (a number came or went), the risk band changed, or the probability moved by at least
``min_points``. Jira also gets the published numbers of each project's open versions in a project
entity property (``property_key``), which other tools read with one request (Jira Cloud has no
entity properties on versions). ``--dry-run`` prints the unified diff of each text that would
change and writes nothing. Every write is logged in the ledger (``publications``), never the
credential (docs/architecture.md, "Publishing into the tracker").
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from slipcast.core.settings import PublishSettings, Settings
from slipcast.core.vocabulary import Basis, ForecastStatus
from slipcast.features.store_history import History
from slipcast.ingest.connectors.http import origin
from slipcast.ingest.connectors.writes import Descriptions, GitHubDescriptions, JiraDescriptions
from slipcast.ingest.tables import read_tables
from slipcast.live.declarations import read_declarations
from slipcast.live.ledger import Ledger, LedgerError
from slipcast.live.portfolio import Portfolio, build_portfolio, floored
from slipcast.live.records import MilestoneState, milestone_path
from slipcast.scoring.model_store import ModelStore

log = logging.getLogger(__name__)

OPEN, CLOSE = "[slipcast]", "[/slipcast]"
_BLOCK = re.compile(r"^\[slipcast\]\r?$.*?^\[/slipcast\]\r?$", re.MULTILINE | re.DOTALL)
AS_OF_FORMAT = "%Y-%m-%d %H:%M UTC"
# what a block says where it gives no number, per state (a basis, or a status without a probability)
NO_NUMBER: dict[str, tuple[str, str]] = {
    Basis.BASE_RATE: ("base rate only", "the model has shown no skill this far from the due date (the skill guard), "
                                        "so Slipcast gives no number of its own"),
    ForecastStatus.WITHHELD: ("withheld", "at this horizon no forecast proved calibrated when tested forward, so "
                                          "none is given"),  # a status, and a basis, of the same word
    ForecastStatus.PAST_DUE: ("past due", "the due date has passed and it is not done"),
    ForecastStatus.INSUFFICIENT_HISTORY: ("insufficient history", "nothing committed yet, or too little finished work "
                                                                  "to forecast from"),
}
_LABELS = {label: str(state) for state, (label, _) in NO_NUMBER.items()}
_RISK = re.compile(r"Slip risk: (\d{1,3}) % \(band (.+), from the model\)")
_NONE = re.compile(r"Slip risk: no number \((.+?)\) - .*")
_DONE = re.compile(r"Done by: (\S+) \(50 % sure\), (\S+) \(85 % sure\)")
_AS_OF = re.compile(r"As of: (\d{4}-\d\d-\d\d \d\d:\d\d) UTC")
_PAGE = re.compile(r"Page: (\S+)")


@dataclass(frozen=True)
class Published:
    """What a block says of one milestone: its state (``model``, or why there is no number), the
    probability to the whole point, band, the 50 % and 85 % dates, the time, the page."""

    state: str
    probability: float | None
    risk_band: str | None
    when_50: date | None
    when_85: date | None
    as_of: datetime
    link: str | None

    def numbers(self) -> dict:
        """As the ledger records it."""
        return {"state": self.state, "probability": self.probability, "risk_band": self.risk_band,
                "as_of": self.as_of, **{k: None if v is None else datetime.combine(v, datetime.min.time(), UTC)
                                        for k, v in (("when_50", self.when_50), ("when_85", self.when_85))}}

    def as_json(self) -> dict:
        """As the Jira project property holds it."""
        return {k: v.isoformat() if isinstance(v, date) else v for k, v in asdict(self).items()}


def _day(value: datetime | None) -> date | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC").date()


def published(m: MilestoneState, page_url: str | None) -> Published:
    """What the block of milestone ``m`` says: a number only where the model serves it."""
    served = m.probability if m.status == ForecastStatus.OK and m.basis == Basis.MODEL else None
    state = str(m.basis if m.status == ForecastStatus.OK else m.status)
    link = f"{page_url.rstrip('/')}/{milestone_path(m.milestone_id)}" if page_url else None
    as_of = pd.Timestamp(m.as_of).tz_convert("UTC").floor("min").to_pydatetime()
    return Published(state=state, probability=None if served is None else round(served * 100) / 100,
                     risk_band=None if served is None else m.risk_band, when_50=_day(m.when_50), when_85=_day(m.when_85),
                     as_of=as_of, link=link)


def render(p: Published) -> str:
    """The block, markers included: the one format ``read_block`` reads back."""
    if p.probability is not None:
        risk = f"Slip risk: {round(p.probability * 100)} % (band {p.risk_band}, from the model)"
    else:
        label, sentence = NO_NUMBER.get(p.state, (p.state, ""))
        risk = f"Slip risk: no number ({label}) - {sentence}"
    done = [d.isoformat() if d else "-" for d in (p.when_50, p.when_85)]
    lines = [OPEN, risk, f"Done by: {done[0]} (50 % sure), {done[1]} (85 % sure)",
             f"As of: {p.as_of.strftime(AS_OF_FORMAT)}"]
    if p.link:
        lines.append(f"Page: {p.link}")
    return "\n".join(lines + [CLOSE])


def read_block(text: str) -> Published | None:
    """What the first block in ``text`` says; None where there is none, or it is not one
    ``render`` wrote (a person edited it): such a block is written anew."""
    found = _BLOCK.search(text)
    if found is None:
        return None
    lines = [line.rstrip("\r") for line in found.group(0).splitlines()[1:-1]]
    if len(lines) not in (3, 4):
        return None
    risk, none, done, as_of = (_RISK.fullmatch(lines[0]), _NONE.fullmatch(lines[0]), _DONE.fullmatch(lines[1]),
                               _AS_OF.fullmatch(lines[2]))
    state = str(Basis.MODEL) if risk else _LABELS.get(none.group(1)) if none else None
    page = _PAGE.fullmatch(lines[3]) if len(lines) == 4 else None
    if state is None or done is None or as_of is None or (len(lines) == 4 and page is None):
        return None
    try:
        days = [None if d == "-" else date.fromisoformat(d) for d in done.groups()]
        at = datetime.strptime(as_of.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    except ValueError:
        return None
    return Published(state=state, probability=int(risk.group(1)) / 100 if risk else None,
                     risk_band=risk.group(2) if risk else None, when_50=days[0], when_85=days[1], as_of=at,
                     link=page.group(1) if page else None)


def with_block(text: str, block: str) -> str:
    """``text`` with its first block replaced by ``block``, or ``block`` appended after a blank
    line; every character outside the block as it was."""
    found = _BLOCK.search(text)
    if found is not None:
        return text[:found.start()] + block + text[found.end():]
    kept = text.rstrip("\n")
    return f"{kept}\n\n{block}" if kept else block


def moved(old: Published | None, new: Published, min_points: float) -> str | None:
    """What moved enough to write the block again, in words; None where nothing did."""
    if old is None:
        return "no block yet" if new.probability is None else f"no block yet; {_shown(new)}"
    if old.state != new.state:
        return f"{_shown(old)} -> {_shown(new)}"
    if old.probability is None or new.probability is None:
        return None
    if old.risk_band != new.risk_band:
        return f"band {old.risk_band} -> {new.risk_band} ({_shown(old)} -> {_shown(new)})"
    if abs(new.probability - old.probability) >= min_points - 1e-9:
        return f"{_shown(old)} -> {_shown(new)}"
    return None


def _shown(p: Published) -> str:
    return f"{round(p.probability * 100)} % {p.risk_band}" if p.probability is not None else p.state


def unified(before: str, after: str, name: str) -> str:
    """The unified diff (difflib) of a text before and after."""
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), f"{name} (now)",
                                          f"{name} (published)", lineterm=""))


@dataclass
class PublishReport:
    """What one publish wrote (or, dry, would write), left as it was, and skipped, and why."""

    tracker: str
    site: str
    dry_run: bool
    min_points: float
    open: int = 0
    written: list[str] = field(default_factory=list)  # targets whose description was (would be) written
    properties: list[str] = field(default_factory=list)  # Jira project properties written
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> milestones
    diffs: list[str] = field(default_factory=list)

    def format(self) -> str:
        would = "would write" if self.dry_run else "wrote"
        lines = [f"{'dry run, ' if self.dry_run else ''}{self.tracker} {self.site}: {self.open} open milestones; "
                 f"{would} {len(self.written)} descriptions"
                 + (f" and {len(self.properties)} project properties" if self.tracker == "jira" else "")
                 + f"; {self.unchanged} unchanged (band the same, moved less than {self.min_points * 100:g} points)"]
        lines += [f"  skipped {n}: {reason}" for reason, n in sorted(self.skipped.items())]
        lines += self.diffs
        return "\n".join(lines)


def descriptions(options: PublishSettings, settings: Settings) -> Descriptions:
    """The tracker ``options`` name, its credential read from the environment."""
    if options.tracker == "jira":
        return JiraDescriptions(options.url, options.flavour, settings.sync)
    return GitHubDescriptions(options.repo or "", options.url, settings.sync)


def publish(state: Portfolio, tracker: Descriptions, options: PublishSettings, ledger: Ledger | None = None,
            dry_run: bool = False) -> PublishReport:
    """Write each open milestone's forecast of ``state`` into ``tracker`` where it moved (dry:
    collect the diffs instead), then (Jira) each project's property; log each write in ``ledger``."""
    report = PublishReport(tracker.tracker, tracker.site, dry_run, options.min_points, open=len(state.milestones))
    shown_now: dict[str, dict[str, dict]] = {}  # project -> version -> what its block says after this publish
    for m in state.milestones:
        target = tracker.target(m.milestone_id, m.project)
        if target is None:
            report.skipped[f"not a {tracker.tracker} {'fix version' if tracker.tracker == 'jira' else 'milestone'} "
                           f"of the target ({m.kind})"] += 1
            continue
        new = published(m, options.page_url)
        current = tracker.description(target)  # read just before writing: a person's edit of a minute ago is kept
        old = read_block(current)
        why = moved(old, new, options.min_points)
        if why is None:
            report.unchanged += 1
            shown_now.setdefault(m.project, {})[target] = (old or new).as_json()
            continue
        text = with_block(current, render(new))
        too_long = tracker.too_long(text)
        if too_long:
            report.skipped[f"the description would be {too_long}"] += 1
            continue
        shown_now.setdefault(m.project, {})[target] = new.as_json()
        report.written.append(tracker.shown(target))
        if dry_run:
            report.diffs.append(unified(current, text, f"{tracker.shown(target)} ({m.milestone_id})"))
            continue
        tracker.describe(target, text)
        if ledger is not None:
            ledger.record_publication(tracker.tracker, tracker.site, tracker.shown(target), f"description: {why}",
                                      m.milestone_id, new.numbers())
    if isinstance(tracker, JiraDescriptions):
        _project_properties(tracker, shown_now, options, ledger, report)
    return report


def _project_properties(tracker: JiraDescriptions, shown_now: dict[str, dict[str, dict]], options: PublishSettings,
                        ledger: Ledger | None, report: PublishReport) -> None:
    """Each project's property: its open versions' numbers as their blocks now say, written
    where that differs from what the property holds."""
    for project, versions in sorted(shown_now.items()):
        value = {"format": 1, "versions": dict(sorted(versions.items()))}
        current = tracker.project_property(project, options.property_key)
        if current == value:
            continue
        name = f"project {project} property {options.property_key}"
        report.properties.append(name)
        text = json.dumps(value, indent=2, sort_keys=True)
        if report.dry_run:
            report.diffs.append(unified("" if current is None else json.dumps(current, indent=2, sort_keys=True), text,
                                        name))
            continue
        tracker.set_project_property(project, options.property_key, value, len(text.encode()))
        if ledger is not None:
            held = (current or {}).get("versions", {}) if isinstance(current, dict) else {}
            changed = sorted(v for v in versions if held.get(v) != versions[v])
            ledger.record_publication(tracker.tracker, tracker.site, name,
                                      "property: versions " + ", ".join(changed or ["(removed)"]))


def state_now(settings: Settings, store: str | Path, now: datetime) -> Portfolio:
    """The live state of ``store`` as the service would serve it at ``now`` (its as_of rounded
    to the refresh period), built as a refresh builds it, by the champion."""
    models = ModelStore(settings, targets=("milestone",))
    models.refresh()
    model = models.get("milestone")
    if model is None:
        raise LookupError(f"no milestone model to forecast with: {models.errors.get('milestone')}")
    declared = read_declarations(settings)
    history = History(read_tables(store), settings.features)
    return build_portfolio(history, floored(now, settings.serving.refresh_seconds), {"milestone": model}, settings,
                           "publish", declared.programs, declared.dependencies)


def publish_store(settings: Settings, store: str | Path, now: datetime, options: PublishSettings,
                  dry_run: bool = False) -> PublishReport:
    """``slipcast publish``: the store's live state now, published into the tracker. The ledger
    (where one is configured) is opened first, and not at all on a dry run, which writes nothing."""
    ledger = Ledger(settings.resolved_uri(settings.serving.ledger_url)) \
        if settings.serving.ledger_url and not dry_run else None
    tracker = descriptions(options, settings)
    try:
        return publish(state_now(settings, store, now), tracker, options, ledger, dry_run)
    finally:
        tracker.close()
        if ledger is not None:
            ledger.close()


class Publisher:
    """``serving.publish``: each new live state published in the background, one at a time (a
    state that comes while the last is still being published is left: the next refresh brings a
    newer one). A publish that fails is logged and recorded in the ledger; it never fails the
    refresh."""

    def __init__(self, settings: Settings, options: PublishSettings):
        self.settings, self.options = settings, options
        self.report: PublishReport | None = None
        self.error: str | None = None
        self.failures = 0
        self._thread: threading.Thread | None = None

    def submit(self, state: Portfolio, ledger: Ledger | None) -> bool:
        """Publish ``state`` in the background; False where the last publish is still running."""
        if self._thread is not None and self._thread.is_alive():
            log.info("the last publish into the tracker is still running: state %s not published", state.version)
            return False
        self._thread = threading.Thread(target=self._run, args=(state, ledger), name="slipcast-publish", daemon=True)
        self._thread.start()
        return True

    def _run(self, state: Portfolio, ledger: Ledger | None) -> None:
        try:
            tracker = descriptions(self.options, self.settings)
            try:
                self.report = publish(state, tracker, self.options, ledger)
            finally:
                tracker.close()
            self.error = None
        except Exception as exc:  # never the refresh's problem: said, and recorded
            self.error = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            log.warning("forecasts not published into %s: %s", self.options.tracker, self.error)
            if ledger is not None:
                try:
                    ledger.record_publication(self.options.tracker, origin(self.options.url), "(publish)",
                                              "failed", error=self.error)
                except LedgerError as failed:
                    log.warning("the failed publish is not recorded either: %s", failed)

    def wait(self, timeout: float | None = None) -> None:
        """Until the publish in the background (if any) ended."""
        if self._thread is not None:
            self._thread.join(timeout)
