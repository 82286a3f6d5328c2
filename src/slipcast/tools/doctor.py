"""``slipcast doctor DIR``: what a tracker's canonical tables can and cannot support, before
any training: the data each feature family needs, milestones with due dates, labels per target,
statuses and link types and how the import placed them (from its ``summary.json``), the programs
and the dependencies between milestones found at the data's end, and why a forecast would be
thin."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.core.contracts import TARGETS
from slipcast.core.settings import Settings
from slipcast.features.pipeline import build_training_sets, feature_columns
from slipcast.features.programs import dependency_graph
from slipcast.features.store_history import History
from slipcast.ingest.importers.report import FINAL_STATE_ONLY, export_history
from slipcast.ingest.tables import Tables, read_tables
from slipcast.live.programs import programs_of

SHOWN = 10  # programs and cycles named at most


def _share(mask) -> str:
    return f"{100 * float(np.mean(mask)):.0f} %" if len(mask) else "n/a"


def diagnose(data_dir: Path, settings: Settings) -> tuple[list[str], list[str]]:
    """Lines describing the data, and the reasons a forecast from it would be thin (empty when
    nothing stands in the way of training)."""
    data_dir = Path(data_dir)
    tables = read_tables(data_dir)
    ms, tk, ev, lk = tables.frames()
    lines = [f"{data_dir}: {len(tk)} tickets in {tk['project'].nunique()} projects, {len(ms)} milestones "
             f"({', '.join(f'{n} {k}s' for k, n in ms['kind'].value_counts().items()) or 'none'})"]
    dated = ms["due_at"].notna()
    replanned = ev[(ev["field"] == "due_at") & ev["from_value"].notna()]["milestone_id"].nunique()
    lines += [f"  due dates: {int(dated.sum())} of {len(ms)} milestones; start dates {_share(ms['start_at'].notna())}; "
              f"due-date history (replans) for {replanned}",
              f"  story points on {_share(tk['story_points'].notna())} of tickets; priorities "
              f"{_share(tk['priority'].notna())}; assignees {_share(tk['assignee'].notna())}; types "
              f"{_share(tk['type'].notna())}",
              f"  links: {len(lk)} ({', '.join(f'{n} {k}' for k, n in lk['kind'].value_counts().items()) or 'none'}); "
              f"status changes: {int((ev['field'] == 'status').sum())}; milestone moves: "
              f"{int((ev['field'] == 'milestone').sum())}"]
    lines += programs_found(tables, settings)
    summary_path = data_dir / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        mappings = summary.get("mappings", {})
        for what, how in (summary.get("modelled") or {}).items():
            lines.append(f"  {what}: read from {how}")
        for what, used in mappings.items():
            if used:
                placed = ", ".join(f"{name!r} -> {cat}" for name, cat in sorted(used.items()))
                lines.append(f"  {what} names seen and where the import placed them: {placed}")
    thin = []
    history = export_history(data_dir)
    if history is not None:
        lines.append(f"  history: {history['changed_after_creation']} of {history['tickets']} tickets have a change "
                     "recorded after their creation")
        if not history["point_in_time"]:
            thin.append(f"not point in time: {FINAL_STATE_ONLY}")
    if not dated.any():
        thin.append("no milestone has a due date: nothing can slip, so there is nothing to forecast")
    sets = build_training_sets(tables, settings.features)
    t = settings.training
    for target in TARGETS:
        frame = sets[target]
        labels = frame["label"].dropna()
        slipped, on_time = int((labels == 1).sum()), int((labels == 0).sum())
        features = feature_columns(target)
        missing = [c for c in features if frame[c].isna().all()]
        constant = [c for c in features if c not in missing and frame[c].nunique(dropna=True) <= 1]
        lines.append(f"  {target}: {len(frame)} snapshots, {len(labels)} labelled ({slipped} slipped, {on_time} on "
                     f"time), {len(frame) - len(labels)} open")
        if missing:
            lines.append(f"    not available in this data: {', '.join(missing)}")
        if constant:
            lines.append(f"    the same value everywhere (says nothing): {', '.join(constant)}")
        if len(labels) < t.min_train_rows or min(slipped, on_time) < t.min_train_positives:
            thin.append(f"{target}: {len(labels)} labelled snapshots with {min(slipped, on_time)} of the rarer "
                        f"outcome; training needs {t.min_train_rows} with {t.min_train_positives} of each")
        if len(features) and len(missing) + len(constant) > len(features) / 2:
            thin.append(f"{target}: {len(missing) + len(constant)} of {len(features)} features carry no information")
    if not len(ev):
        thin.append("no events: the history of each ticket is unknown")
    return lines, thin


def _counted(counts: Counter) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"


def programs_found(tables: Tables, settings: Settings) -> list[str]:
    """Lines on the programs (by source, with the settings' declarations) and the dependencies
    between milestones (by source; cycles; blockers outside the store) at the data's end."""
    history = History(tables, settings.features)
    end = pd.Timestamp(history.tl.data_end, unit="us", tz="UTC")
    programs = programs_of(history, end.to_pydatetime(), settings)
    graph = dependency_graph(history.tl, history.tl.data_end, settings.programs.dependencies)
    lines = [f"  programs at the data's end ({end.date()}): {len(programs)} ({_counted(Counter(p.source for p in programs))})"
             + "".join(f"; {p.program_id} ({p.source}, {len(p.milestones)} milestones)" for p in programs[:SHOWN])
             + ("; ..." if len(programs) > SHOWN else "")]
    external = [e for e in graph.edges if e.external]
    lines.append(f"  dependencies between milestones: {len(graph.edges)} ({_counted(Counter(e.source for e in graph.edges))}); "
                 f"{len(external)} on a blocker outside the store (assumed done on time); {len(graph.cycles)} "
                 f"{'cycle' if len(graph.cycles) == 1 else 'cycles'}"
                 + "".join(f"; cycle: {', '.join(c)}" for c in graph.cycles[:SHOWN]))
    return lines
