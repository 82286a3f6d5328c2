"""Benchmark stages, each run in its own process so its peak memory is its own.

Each prints one JSON line of figures. ``benchmarks.run`` calls them in order and prints the
table; run one alone with ``python -m benchmarks.stages STAGE [ARGS]``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.settings import REPO_ROOT, get_settings

WORK = REPO_ROOT / "work" / "bench"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def frame_mb(*frames: pd.DataFrame) -> float:
    return sum(f.memory_usage(deep=True).sum() for f in frames) / 2**20


def stage_import() -> dict:
    """Duraspace Jira JSON import throughput, against plain json.load of the same files."""
    from features.importers import run_import

    src = REPO_ROOT.parent / "shared" / "data" / "jira-duraspace"
    if not src.is_dir():
        return {"skipped": f"{src} absent"}
    started = time.perf_counter()
    for path in sorted(src.glob("*.json")):
        json.loads(path.read_bytes().decode("utf-8", "replace"))
    parse_only = time.perf_counter() - started
    started = time.perf_counter()
    report = run_import("jira-json", src, WORK / "duraspace", get_settings())
    seconds = time.perf_counter() - started
    records = sum(report.read.values())
    return {"records": records, "seconds": round(seconds, 2), "records_per_s": round(records / seconds),
            "vs_json_load": round(seconds / parse_only, 1), "peak_mb": round(peak_mb())}


def stage_generate(tickets: int, projects: int) -> dict:
    from features.synthetic import SimulationConfig, generate
    from features.tables import write_tables

    started = time.perf_counter()
    tables = generate(SimulationConfig(projects=projects, tickets=tickets, seed=1))
    seconds = time.perf_counter() - started
    write_tables(tables, WORK / "history")
    return {"tickets": len(tables.tickets), "events": len(tables.events), "milestones": len(tables.milestones),
            "seconds": round(seconds, 1), "tickets_per_s": round(len(tables.tickets) / seconds),
            "events_per_s": round(len(tables.events) / seconds), "peak_mb": round(peak_mb())}


def stage_features() -> dict:
    """Training sets from the generated history, against one sorted group-by pass over events."""
    from features.pipeline import build_training_sets, write_training_set
    from features.tables import read_tables

    tables = read_tables(WORK / "history")
    data_mb = frame_mb(*(f for _, f in tables.items()))
    base_peak = peak_mb()
    started = time.perf_counter()
    ev = tables.events.sort_values(["ticket_id", "at"])
    ev.groupby("ticket_id", sort=False)["at"].agg(["min", "max", "count"])
    reference = time.perf_counter() - started
    del ev
    started = time.perf_counter()
    sets = build_training_sets(tables, get_settings().features)
    seconds = time.perf_counter() - started
    for target, frame in sets.items():
        write_training_set(frame, WORK / "features", target)
    return {"events": len(tables.events), "tickets": len(tables.tickets), "data_mb": round(data_mb),
            "milestone_rows": len(sets["milestone"]), "ticket_rows": len(sets["ticket"]),
            "seconds": round(seconds, 1), "sorted_groupby_pass_s": round(reference, 2),
            "ratio_to_pass": round(seconds / reference, 1), "peak_mb": round(peak_mb()),
            "peak_over_data": round(peak_mb() / max(data_mb, 1), 1), "peak_before_mb": round(base_peak)}


def stage_train(rows: int) -> dict:
    """Full backtest of every candidate plus the final fit on ``rows`` milestone snapshots."""
    from features.pipeline import feature_columns, read_training_set
    from training.backtest import fit_candidate, labelled_rows, run_backtest

    frame, _ = read_training_set(WORK / "features" / "milestone.parquet")
    milestones = frame["milestone_id"].drop_duplicates().sample(frac=1.0, random_state=0)
    per = frame.groupby("milestone_id").size().reindex(milestones).cumsum()
    frame = frame[frame["milestone_id"].isin(per[per <= rows].index)]
    settings = get_settings()
    started = time.perf_counter()
    features = feature_columns("milestone")
    bt = run_backtest(frame, "milestone", features, settings.training.candidates, settings.training)
    chosen = bt.ranking()[0]
    fit_candidate(chosen, bt.frame, np.arange(len(bt.frame)), features, settings.training)
    seconds = time.perf_counter() - started
    return {"snapshots": len(frame), "labelled": len(labelled_rows(frame)), "seconds": round(seconds, 1),
            "peak_mb": round(peak_mb()), "chosen": chosen,
            "brier_skill": {n: round(r.overall["brier_skill"], 3) for n, r in bt.results.items()},
            "roc_auc": {n: round(r.overall["roc_auc"], 3) for n, r in bt.results.items()}}


STAGES = {"import": stage_import, "generate": stage_generate, "features": stage_features, "train": stage_train}

if __name__ == "__main__":
    name, *args = sys.argv[1:]
    WORK.mkdir(parents=True, exist_ok=True)
    print(json.dumps(STAGES[name](*map(int, args))))
