"""The names and shapes that training writes and serving reads, defined once.

Targets, registered model names, the champion alias, the model metadata, the keys that carry a
training set's fingerprint, the code version and the past-outcomes frame: training, serving,
the tools and the tests all take them from here (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypedDict

import numpy as np
import pandas as pd

Target = Literal["milestone", "ticket"]
TARGETS: tuple[Target, ...] = ("milestone", "ticket")

CHAMPION_ALIAS = "champion"
MODEL_HASH_TAG = "sha256"  # model version tag: SHA-256 of the model file, set by training
METADATA_ARTIFACT = "slipcast/metadata.json"  # a run's artifact beside its logged model
METADATA_FILE = "slipcast.json"  # the same metadata inside an exported model folder

TRAINING_SET_TARGET_KEY = b"slipcast.target"  # Parquet schema metadata of a training set
TRAINING_SET_FINGERPRINT_KEY = b"slipcast.fingerprint"
# set (to b"final-state") on a training set built from an export that holds no history: its labels
# and features are the tickets' final states, not point in time (docs/guide.md, "Your own data")
TRAINING_SET_FINAL_STATE_KEY = b"slipcast.final_state"

# the values an import or a request may hold: times from EARLIEST up to (not including) LATEST
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2201, 1, 1, tzinfo=UTC)
YEARS = "the years 1900-2200"
MAX_STORY_POINTS = 10_000.0

# horizon buckets: the share of a milestone's planned span elapsed at as_of (lower bound inclusive)
HORIZONS = ((0.0, 0.3, "early (0-30%)"), (0.3, 0.6, "middle (30-60%)"), (0.6, 1.01, "late (60-100%)"))


def horizon_of(span_elapsed: float) -> str | None:
    """The horizon bucket a share of the span falls in (None for a missing share)."""
    return next((name for lo, hi, name in HORIZONS if lo <= span_elapsed < hi), None)


def horizons_of(span_elapsed) -> list[str | None]:
    """``horizon_of`` of many shares at once."""
    shares = np.asarray(span_elapsed, dtype=np.float64)
    names = np.array([name for *_, name in HORIZONS] + [None], dtype=object)
    which = np.searchsorted([hi for _, hi, _ in HORIZONS], shares, side="right")
    which[np.isnan(shares) | (shares < HORIZONS[0][0])] = len(HORIZONS)
    return list(names[which])


class FeatureSpec(TypedDict):
    name: str
    type: Literal["number", "category"]


class ModelMetadata(TypedDict, total=False):
    """What serving knows of a model beyond the model itself (written by training)."""

    target: Target
    features: list[FeatureSpec]
    reference: dict[str, float | str | None]  # typical training values drivers are measured against
    typical: dict[str, float | str | None]  # a real typical training row factors are measured against
    packages: dict[str, str]
    model_name: str
    model_version: str
    run_id: str
    candidate: str
    data_fingerprint: str
    code_version: str
    backtest_id: str
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    trained_at: str
    sha256: str  # of the model file
    guard: dict[str, dict]  # horizon -> skill, interval, guarded: where the base rate is served instead
    project_guard: dict[str, dict[str, dict]]  # project -> its own cells, overriding the pooled ones
    base_rate_served: float  # what a guarded forecast serves
    base_rate_basis: str  # which base rate that is: "recent" or "whole history" (chosen by backtest)
    point_in_time: bool  # False: trained on an export of final states only (``TRAINING_SET_FINAL_STATE_KEY``)
    withheld: dict[str, dict]  # horizon -> why no probability is served there (``training.backtest.withheld``)


def served_base_rate(metadata) -> tuple[float, str]:
    """The base rate a guarded forecast serves, and which it is; a model trained before the
    choice existed served the recent rate (``recent_base_rate``)."""
    if "base_rate_served" in metadata:
        return float(metadata["base_rate_served"]), str(metadata["base_rate_basis"])
    return float(metadata["recent_base_rate"]), "recent"


def registered_model_name(prefix: str, target: str) -> str:
    """The registry name of a target's model (``training.model_prefix`` + target)."""
    return prefix + target


def code_version() -> str:
    """The git commit of the code (``-dirty`` with uncommitted changes), or the package version
    when the code is not a git checkout (an installed wheel)."""
    from slipcast import __version__

    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return __version__


def past_outcomes(training_set: pd.DataFrame) -> pd.DataFrame:
    """Each milestone's outcome in a milestone training set (its latest labelled row): the
    ``project``, when the outcome became ``known_at``, and whether it ``slipped``: the frame a
    forecast request's ``past_milestones`` carries."""
    last = training_set.dropna(subset=["label"]).sort_values("as_of").groupby("milestone_id").tail(1)
    return pd.DataFrame({"project": last["project"], "known_at": last["label_known_at"],
                         "slipped": last["label"]}).reset_index(drop=True)


MONITOR_FILE = "monitor.json"  # what `slipcast monitor` writes in monitoring.report_dir, and the service reads


def live_figures(folder: Path) -> dict | None:
    """The summary of the last ``slipcast monitor`` run written to ``folder`` (None before the
    first): when it ran, how many published forecasts have outcomes, their live Brier, skill,
    ECE and AUC (overall and per project), and the thresholds broken; ``GET /v1/model``,
    ``GET /v1/projects`` and the page show it."""
    path = Path(folder) / MONITOR_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    overall = data.get("overall") or {}
    figures = ("n", "brier", "brier_skill", "ece", "roc_auc")
    return {"as_of": data["as_of"], "published": data["published"], "with_outcome": data["with_outcome"],
            "pending": data["pending"], "breaches": data["breaches"],
            "live": {k: overall.get(k) for k in figures} if overall else None,
            "projects": {p: {k: s.get(k) for k in figures} for p, s in data.get("by", {}).get("project", {}).items()}}
