"""The champion's metadata, and its export to ``models/<target>/``.

The export is a copy of the very model folder the registry holds (an MLflow model whose model
is a skops file), with the metadata beside it in ``slipcast.json``: feature names and types,
reference values for explaining forecasts, package versions, the data fingerprint, backtest
metrics, the MLflow run and version, and the model file's SHA-256, which the service checks
before it trusts the model (``slipcast.core.model_format``).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import pandas as pd

from slipcast.core.contracts import METADATA_FILE, ModelMetadata, Target
from slipcast.core.folders import new_sibling, recover, swap_in

PACKAGES = ("scikit-learn", "pandas", "numpy", "skops", "mlflow")


def reference_values(frame: pd.DataFrame, features: list[str]) -> dict[str, float | str | None]:
    """Typical values (median, or most common category) that drivers are measured against."""
    out: dict[str, float | str | None] = {}
    for col in features:
        if pd.api.types.is_numeric_dtype(frame[col]):
            med = frame[col].median()
            out[col] = None if pd.isna(med) else float(med)
        else:
            mode = frame[col].mode()
            out[col] = None if mode.empty else str(mode.iloc[0])
    return out


def typical_row(frame: pd.DataFrame, features: list[str]) -> dict[str, float | str | None]:
    """A real training row whose numbers sit nearest their medians (in percentiles, summed over
    the numeric features; a missing value counts as far as the median can be): the typical
    milestone that factors are measured against. One row, so its values go together (a
    typical share done beside a typical count left), as per-feature medians need not."""
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(frame[c])]
    if frame.empty:
        return reference_values(frame, features)
    distance = (frame[numeric].rank(pct=True) - 0.5).abs().fillna(0.5).sum(axis=1)
    row = frame.loc[distance.idxmin()]
    return {c: (None if pd.isna(row[c]) else (float(row[c]) if c in numeric else str(row[c]))) for c in features}


def model_metadata(target: Target, features: list[str], frame: pd.DataFrame, extra: dict) -> ModelMetadata:
    """What serving needs to know about a model beyond the model itself."""
    return {
        "target": target,
        "features": [{"name": c, "type": "number" if pd.api.types.is_numeric_dtype(frame[c]) else "category"}
                     for c in features],
        "reference": reference_values(frame, features),
        "typical": typical_row(frame, features),
        "packages": {p: version(p) for p in PACKAGES},
        **extra,
    }


def export_model(model_dir: Path, models_dir: Path, target: str, metadata: ModelMetadata) -> Path:
    """Copy the model folder ``model_dir`` to ``models_dir/<target>/`` with ``slipcast.json``
    beside the model; the previous export is replaced only once the new one is complete."""
    out = Path(models_dir) / target
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out)
    tmp = new_sibling(out)
    try:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        meta = {**metadata, "exported_at": datetime.now(UTC).isoformat()}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str))
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
