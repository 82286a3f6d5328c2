"""``slipcast backfill``: the forecast history every milestone of the store would have had, day
by day from its start, scored by the current champion from what was known each day, and every
program's (the store's, the settings' and the API's declared ones, as found now) day by day from
its first milestone's start, as its history endpoint shows it; recorded in the ledger as
backfilled (never mixed up with the forecasts the service published)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.core.progress import progress
from slipcast.core.settings import Settings
from slipcast.features.store_history import History
from slipcast.features.timeline import NAT
from slipcast.ingest.tables import read_tables
from slipcast.live.declarations import read_declarations
from slipcast.live.ledger import Ledger
from slipcast.live.portfolio import daily, program_days
from slipcast.live.programs import program_history, programs_of
from slipcast.scoring.forecast import forecasts_of, model_ref
from slipcast.scoring.model_store import ModelStore

CHUNK = 5000  # (milestone, day) pairs scored per call: bounds the memory a long history needs


@dataclass
class BackfillReport:
    milestones: int
    forecasts: int
    recorded: int  # new ledger rows (a second backfill of the same model adds none)
    model: str
    programs: int = 0
    program_forecasts: int = 0
    programs_recorded: int = 0

    def format(self) -> str:
        return (f"backfilled {self.forecasts} daily forecasts of {self.milestones} milestones and "
                f"{self.program_forecasts} of {self.programs} programs with {self.model}; "
                f"{self.recorded + self.programs_recorded} new in the ledger")


def backfill(settings: Settings, store: str | Path, now: datetime) -> BackfillReport:
    """Record in the ledger, as backfilled, each milestone's daily forecasts from its start until
    it was completed (or ``now``)."""
    if not settings.serving.ledger_url:
        raise ValueError("no ledger configured (serving.ledger_url)")
    ledger = Ledger(settings.resolved_uri(settings.serving.ledger_url))  # a broken one stops it before any work
    models = ModelStore(settings, targets=("milestone",))
    models.refresh()
    model = models.get("milestone")
    if model is None:
        raise LookupError(f"no milestone model to backfill with: {models.errors.get('milestone')}")
    history = History(read_tables(store), settings.features)
    tl, end = history.tl, pd.Timestamp(now).tz_convert("UTC")  # any aware time (pydantic's UTC is another tzinfo)
    ids, as_ofs = [], []
    for code, milestone_id in enumerate(tl.milestones):
        start, completed = tl.milestone_start[code], tl.milestone_completed[code]
        if start == NAT:  # never started
            continue
        last = end if completed == NAT else min(end, pd.Timestamp(int(completed), unit="us", tz="UTC"))
        days = daily(pd.Timestamp(int(start), unit="us", tz="UTC"), last)
        ids += [milestone_id] * len(days)
        as_ofs += list(days)
    recorded = 0
    for lo in progress(range(0, len(ids), CHUNK), "backfill", unit="chunk"):
        who, feats, _ = history.features(ids[lo:lo + CHUNK], as_ofs[lo:lo + CHUNK])
        out = forecasts_of(list(who["milestone_id"]), list(who["project"]), as_ofs[lo:lo + CHUNK], feats,
                           np.zeros(0, int), model, settings)
        recorded += ledger.record(out, who["project"], [None if pd.isna(d) else d for d in who["due_at"]],
                                  backfilled=True)
    ref = model_ref(model)
    report = BackfillReport(len(set(ids)), len(ids), recorded, f"{ref.name} v{ref.version}")
    declared = read_declarations(settings)
    for program in progress(programs_of(history, end.to_pydatetime(), settings, declared.programs), "programs",
                            unit="program"):
        days = program_days(history, program, end)
        points = [p for p in program_history(history, program, days, model, settings, declared.dependencies)
                  if p.chance is not None]  # a day none of its milestones was open says nothing
        report.programs += 1
        report.program_forecasts += len(points)
        report.programs_recorded += ledger.record_programs([program.program_id] * len(points), points, ref,
                                                           settings.programs.history_draws, backfilled=True)
    return report
