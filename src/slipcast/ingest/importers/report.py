"""What an import read, accepted and rejected, and why; the reconciliation rule."""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.ingest.tables import Tables, make_tables, write_tables


class ImportError_(ValueError):
    """An import that cannot produce any output; the message names file and reason."""


@dataclass
class ImportReport:
    """Counts per record kind and every rejection, with file, record, field and reason."""

    source: str
    read: Counter = field(default_factory=Counter)
    accepted: Counter = field(default_factory=Counter)
    ignored: Counter = field(default_factory=Counter)
    rejections: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)  # tracker names -> canonical, by vocabulary
    history: dict = field(default_factory=dict)  # ``recorded_history`` of the tables written
    modelled: dict[str, str] = field(default_factory=dict)  # what a tracker models more than one way (its
    # releases, say) -> which way this import read it, for ``slipcast doctor``

    def saw(self, kind: str, n: int = 1) -> None:
        self.read[kind] += n

    def accept(self, kind: str, n: int = 1) -> None:
        self.accepted[kind] += n

    def ignore(self, kind: str, n: int = 1) -> None:
        """A record read but outside the canonical model (e.g. a 'description' change)."""
        self.ignored[kind] += n

    def reject(self, kind: str, file: str, record: str, field_: str, reason: str) -> None:
        self.rejections.append(
            {"kind": kind, "file": file, "record": record, "field": field_, "reason": reason}
        )

    def rejected(self) -> Counter:
        return Counter(r["kind"] for r in self.rejections)

    def check_reconciled(self) -> None:
        """Every record read was accepted, ignored or rejected: raise if not."""
        rejected = self.rejected()
        for kind in set(self.read) | set(self.accepted) | set(rejected):
            total = self.accepted[kind] + self.ignored[kind] + rejected[kind]
            if total != self.read[kind]:
                raise AssertionError(
                    f"import does not reconcile for {kind}: read {self.read[kind]} != accepted "
                    f"{self.accepted[kind]} + ignored {self.ignored[kind]} + rejected {rejected[kind]}"
                )

    def summary(self) -> dict:
        rejected = self.rejected()
        kinds = sorted(set(self.read) | set(rejected))
        return {
            "source": self.source,
            "records": {
                k: {
                    "read": self.read[k],
                    "accepted": self.accepted[k],
                    "ignored": self.ignored[k],
                    "rejected": rejected[k],
                }
                for k in kinds
            },
            "tables": self.tables,
            "mappings": self.mappings,
            "warnings": self.warnings,
            "history": self.history,
            "modelled": self.modelled,
        }

    def format(self) -> str:
        """A human-readable summary for the console."""
        lines = [f"imported {self.source}"]
        for kind, c in self.summary()["records"].items():
            lines.append(
                f"  {kind:<10} read {c['read']:>8}  accepted {c['accepted']:>8}  "
                f"ignored {c['ignored']:>7}  rejected {c['rejected']:>6}"
            )
        lines.append("  tables: " + ", ".join(f"{k}={v}" for k, v in self.tables.items()))
        for w in self.warnings[:10]:
            lines.append(f"  warning: {w}")
        if len(self.warnings) > 10:
            lines.append(f"  ... {len(self.warnings) - 10} more warnings in summary.json")
        return "\n".join(lines)

    def rejections_csv(self) -> str:
        """The rejections as CSV; a cell a spreadsheet would run as a formula (starting with
        ``= + - @``, a tab or a carriage return) is written behind a single quote."""
        buf = io.StringIO()
        cols = ["kind", "file", "record", "field", "reason"]
        frame = pd.DataFrame(self.rejections, columns=cols).fillna("").astype(str)
        frame = frame.apply(lambda col: col.where(~col.str.match(r"[=+\-@\t\r]."), "'" + col))
        frame.to_csv(buf, index=False)
        return buf.getvalue()


FINAL_STATE_ONLY = ("this export holds no history (no change of any ticket after its creation: no changelog): every "
                    "ticket looks as if it always sat in its final milestone and status, so its labels and features "
                    "are not point in time; `slipcast train` refuses it unless --accept-final-state")


def recorded_history(tables: Tables) -> dict:
    """How much history the tables hold: tickets, and those with a change recorded after their
    creation (a status, a move between milestones, a re-estimate...). Where none has one, the
    export held final states only: ``point_in_time`` is False."""
    tickets, events = tables.tickets, tables.events
    created = np.asarray(tickets["created_at"].astype("int64"))
    whose = pd.Index(tickets["ticket_id"]).get_indexer(events["ticket_id"])
    later = (whose >= 0) & (np.asarray(events["at"].astype("int64")) > created[np.maximum(whose, 0)])
    changed = len(np.unique(whose[later]))
    return {"tickets": len(tables.tickets), "changed_after_creation": changed,
            "point_in_time": changed > 0 or len(tables.tickets) == 0}


def export_history(store: Path) -> dict | None:
    """``recorded_history`` as the import wrote it beside a store's tables (None: no import
    summary there, as for a simulated history)."""
    try:
        return json.loads((Path(store) / "summary.json").read_text()).get("history") or None
    except (OSError, ValueError):
        return None


def finish(report: ImportReport, frames: dict[str, pd.DataFrame], out: Path, force: bool = False) -> ImportReport:
    """Reconcile, build canonical tables and write them with the rejections and summary
    (never into a folder that holds the source or files of the user's: ``write_tables``)."""
    report.check_reconciled()
    if sum(report.accepted.values()) == 0:
        first = report.rejections[0] if report.rejections else None
        why = f": {first['file']} {first['record']} {first['field']}: {first['reason']}" if first else ""
        raise ImportError_(f"{report.source}: nothing could be imported{why}")
    tables: Tables = make_tables(**frames)
    report.tables = tables.counts()
    report.history = recorded_history(tables)
    if not report.history["point_in_time"]:
        report.warnings.insert(0, FINAL_STATE_ONLY)
    write_tables(
        tables,
        Path(out),
        extra_files={
            "rejections.csv": report.rejections_csv(),
            "summary.json": json.dumps(report.summary(), indent=2, default=str),
        },
        sources=(Path(report.source),),
        force=force,
    )
    return report
