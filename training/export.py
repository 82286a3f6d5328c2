"""Export of a champion to ``models/``: a joblib file and a metadata JSON beside it.

The metadata carries what serving needs without a tracking server: feature names and types,
reference values for explaining forecasts, package versions, the data fingerprint, backtest
metrics, the MLflow run and version, and the SHA-256 of the joblib file, which the service
checks before it trusts the model.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import joblib
import pandas as pd

PACKAGES = ("scikit-learn", "pandas", "numpy", "joblib", "mlflow")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reference_values(frame: pd.DataFrame, features: list[str]) -> dict:
    """Typical values (median, or most common category) that drivers are measured against."""
    out = {}
    for col in features:
        if pd.api.types.is_numeric_dtype(frame[col]):
            med = frame[col].median()
            out[col] = None if pd.isna(med) else float(med)
        else:
            mode = frame[col].mode()
            out[col] = None if mode.empty else str(mode.iloc[0])
    return out


def model_metadata(target: str, features: list[str], frame: pd.DataFrame, extra: dict) -> dict:
    """What serving needs to know about a model beyond the model itself."""
    return {
        "target": target,
        "features": [{"name": c, "type": "number" if pd.api.types.is_numeric_dtype(frame[c]) else "category"}
                     for c in features],
        "reference": reference_values(frame, features),
        "packages": {p: version(p) for p in PACKAGES},
        **extra,
    }


def export_model(model, models_dir: Path, target: str, metadata: dict) -> Path:
    """Write ``<target>.joblib`` and ``<target>.json`` (metadata + SHA-256) atomically."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    model_path = models_dir / f"{target}.joblib"
    meta_path = models_dir / f"{target}.json"
    tmp_model = model_path.with_suffix(".joblib.tmp")
    joblib.dump(model, tmp_model)
    meta = {**metadata, "exported_at": datetime.now(timezone.utc).isoformat(), "sha256": sha256_file(tmp_model)}
    tmp_meta = meta_path.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp_model, model_path)
    os.replace(tmp_meta, meta_path)
    return meta_path
