"""Raw Jira (jira-duraspace) end to end: our importer, point-in-time features and backtest.

Release-level slip (the milestone target) and ticket-level slip (resolved after its fix
version's release, or moved out of it) are backtested exactly as ``slipcast train`` does,
without registering anything.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from slipcast.core.settings import Settings
from slipcast.features.pipeline import build_training_sets, feature_columns
from slipcast.ingest.importers.jira_json import import_jira_json
from slipcast.ingest.tables import Tables, fingerprint, read_tables
from slipcast.training.backtest import Backtest, run_backtest
from slipcast.training.report import write_report
from slipcast.training.splits import InsufficientHistory


def evaluate_duraspace(root: Path, settings: Settings, out_dir: Path
                       ) -> tuple[dict[str, Backtest | str], dict, str, Tables]:
    """Per target its backtest (or why there is none), the import summary, the data
    fingerprint, the canonical tables; each target's report with plots is written under ``out_dir``."""
    with tempfile.TemporaryDirectory() as tmp:
        report = import_jira_json(root, Path(tmp) / "tables", settings)
        tables = read_tables(Path(tmp) / "tables")
    sets = build_training_sets(tables, settings.features)
    data_print = fingerprint(tables)
    results: dict[str, Backtest | str] = {}
    guards: dict[str, dict] = {}
    served: dict[str, dict] = {}
    for target, frame in sets.items():
        try:
            bt = run_backtest(frame, target, feature_columns(target), settings.training.candidates,
                              settings.training, data_print)
        except InsufficientHistory as exc:
            results[target] = str(exc)
            continue
        results[target] = bt
        chosen = bt.ranking()[0]
        guards[target] = bt.guard(chosen, settings.training.bootstrap_rounds, settings.training.seed)
        by_project = bt.project_guard(chosen, settings.training.bootstrap_rounds, settings.training.seed)
        served[target] = bt.served_scores(chosen, settings.training)
        write_report(bt, chosen, {"promoted": False, "reason": "evaluation only, nothing registered"},
                     Path(out_dir) / f"duraspace-{target}", settings.training.seed,
                     "slipcast eval-real", data_print, guards[target], by_project)
    summary = {"read": dict(report.read), "accepted": dict(report.accepted), "ignored": dict(report.ignored),
               "rejected": dict(report.rejected()), "snapshots": {t: len(f) for t, f in sets.items()},
               "labelled": {t: int(f["label"].notna().sum()) for t, f in sets.items()}, "guards": guards,
               "served": served}
    return results, summary, data_print, tables
