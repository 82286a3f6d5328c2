"""The one model format: an MLflow scikit-learn model folder whose model is a skops file.

The registry holds it and ``models/<target>/`` holds a copy of the same folder; both are loaded
by ``load_model_dir``. skops rebuilds only types it trusts: scikit-learn's own plus the few
listed in ``TRUSTED_TYPES``, fixed here in code (never read from the artifact, which could
widen it), so a planted file cannot run code. The model file's SHA-256, recorded by training
as a model version tag and in the export's metadata, is checked before loading
(docs/architecture.md, "How a model is trusted").
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np

MODEL_FILE = "model.skops"  # inside an MLflow sklearn model folder saved with serialization_format="skops"

# Types beyond skops's defaults that Slipcast's candidates hold (tests/core/test_model_format.py fits
# every candidate with both calibration methods and checks that they need no others).
TRUSTED_TYPES = (
    "functools.partial",
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.frozen._frozen.FrozenEstimator",
    "sklearn.model_selection._split.KFold",
    "sklearn.utils.validation.check_array",
)


class Classifier(Protocol):
    """What serving needs of a loaded model: scikit-learn's probability interface."""

    def predict_proba(self, X) -> np.ndarray: ...


class ModelRefused(RuntimeError):
    """A model artifact that must not serve (wrong hash, untrusted content, unloadable)."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def untrusted_types(model) -> list[str]:
    """Types in ``model`` that ``load_model_dir`` would refuse: those neither skops nor
    ``TRUSTED_TYPES`` trusts. Training refuses to log a model for which this is not empty."""
    import skops.io

    return sorted(set(skops.io.get_untrusted_types(data=skops.io.dumps(model))) - set(TRUSTED_TYPES))


def load_model_dir(folder: Path, sha256: str | None) -> Classifier:
    """The model in an MLflow model ``folder``, once its file's SHA-256 equals ``sha256``,
    rebuilt by skops trusting only its defaults and ``TRUSTED_TYPES``. Raises ModelRefused."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    path = Path(folder) / MODEL_FILE
    if not path.exists():
        raise ModelRefused(f"{folder}: no {MODEL_FILE} (not a Slipcast model folder)")
    if not sha256:
        raise ModelRefused(f"{path}: no recorded SHA-256 to check it against; refused")
    data = path.read_bytes()  # hashed and rebuilt from the same bytes: nothing can swap the file between
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelRefused(f"{path}: SHA-256 {digest[:12]}... does not match the recorded "
                           f"{sha256[:12]}...: corrupted or replaced artifact refused")
    try:
        return skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise ModelRefused(f"{path}: holds types Slipcast does not trust: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # any failure to rebuild means the artifact is unusable
        raise ModelRefused(f"{path}: cannot be loaded: {exc}") from exc
