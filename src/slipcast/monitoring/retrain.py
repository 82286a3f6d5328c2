"""``slipcast retrain``: features from the store, training with the champion guard, and the new
champion's history backfilled, in one command a scheduler runs; ``--if-needed`` only where the
monitor says a threshold broke (docs/architecture.md, "Monitoring")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from slipcast.core.settings import Settings
from slipcast.features.pipeline import (
    build_training_sets,
    read_training_set,
    training_set_fingerprint,
    write_training_set,
)
from slipcast.ingest.tables import read_tables
from slipcast.live.backfill import backfill
from slipcast.monitoring.monitor import monitor
from slipcast.training.run import train


@dataclass
class RetrainReport:
    ran: bool
    reason: str
    trained: dict = field(default_factory=dict)  # target -> version, decision
    backfilled: int = 0

    def format(self) -> str:
        if not self.ran:
            return f"retrain not needed: {self.reason}"
        lines = [f"retrained: {self.reason}"]
        lines += [f"  {t}: v{r['version']} {'promoted' if r['decision']['promoted'] else 'kept champion'} - "
                  f"{r['decision']['reason']}" for t, r in self.trained.items()]
        if self.backfilled:
            lines.append(f"  backfilled {self.backfilled} daily forecasts with the new champion")
        return "\n".join(lines)


def retrain(settings: Settings, store: str | Path, now: datetime, if_needed: bool = False) -> RetrainReport:
    """Rebuild the training sets from ``store``, train every target (a challenger that does not
    beat the champion on the same folds is never promoted) and, where a new milestone champion
    was promoted, backfill its history. With ``if_needed``, first run the monitor against the
    current training rows and stop unless one of its thresholds broke."""
    features = settings.resolve(settings.work_dir) / "features"
    reason = "asked to"
    if if_needed:
        current = features / "milestone.parquet"
        rows = read_training_set(current)[0] if current.exists() else None
        judged = monitor(settings, store, now, rows)
        if not judged.breaches:
            return RetrainReport(False, "no monitoring threshold broken"
                                 + (f" ({'; '.join(judged.notes)})" if judged.notes else ""))
        reason = "; ".join(judged.breaches)
    tables = read_tables(store)
    fingerprint = training_set_fingerprint(tables, settings.features)
    for target, frame in build_training_sets(tables, settings.features).items():
        write_training_set(frame, features, target, fingerprint)
    trained = train(settings, features_dir=features)
    report = RetrainReport(True, reason, {t: {"version": r["version"], "decision": r["decision"]}
                                          for t, r in trained.items()})
    if settings.serving.ledger_url and trained.get("milestone", {}).get("decision", {}).get("promoted"):
        report.backfilled = backfill(settings, store, now).recorded
    return report
