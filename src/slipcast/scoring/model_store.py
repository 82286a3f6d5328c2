"""The champion models the service answers with, and how they are (re)loaded.

The registry (``models:/<name>@champion``) is asked first; where it cannot be reached or
holds no champion, the export in ``models/<target>/`` is used. Both are the same model format,
loaded by the same code once the model file's SHA-256 matches the one training recorded
(``slipcast.core.model_format``).
A model that fails to load, fails its hash or fails a trial prediction is refused and the
last good one keeps serving. A background thread repeats this every ``reload_seconds``, so a
new champion is picked up without a restart; requests hold the model they started with, so
a swap never fails one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from slipcast.core.background import Every
from slipcast.core.contracts import (
    CHAMPION_ALIAS,
    METADATA_FILE,
    MODEL_HASH_TAG,
    TARGETS,
    ModelMetadata,
    registered_model_name,
)
from slipcast.core.model_format import Classifier, ModelRefused, load_model_dir
from slipcast.core.settings import Settings

# a down tracking server must not stall the service for minutes of retries
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model with its metadata."""

    target: str
    model: Classifier
    metadata: ModelMetadata
    source: str  # "registry" or "export"
    version: str
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def features(self) -> list[str]:
        return [f["name"] for f in self.metadata["features"]]

    def inputs(self, features) -> dict[str, np.ndarray]:
        """The model's input columns from ``features`` (a frame or columns by name), in order
        and with the dtypes it was trained on: numbers as float64, categories as objects."""
        return {f["name"]: np.asarray(features[f["name"]], dtype=np.float64 if f["type"] == "number" else object)
                for f in self.metadata["features"]}

    def frame(self, features) -> pd.DataFrame:
        """The model's inputs as the frame it predicts on."""
        return pd.DataFrame(self.inputs(features))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(X)[:, 1]


def _trial(loaded: LoadedModel) -> LoadedModel:
    """Refuse a model that cannot score its own reference row."""
    row = pd.DataFrame([{f: loaded.metadata["reference"].get(f) for f in loaded.features}])
    try:
        p = loaded.predict(loaded.frame(row))
    except Exception as exc:  # any failure here means the artifact is unusable
        raise ModelRefused(f"{loaded.target} v{loaded.version}: trial prediction failed: {exc}") from exc
    if not (0.0 <= float(p[0]) <= 1.0):
        raise ModelRefused(f"{loaded.target} v{loaded.version}: trial prediction {p[0]} is not a probability")
    return loaded


def load_export(models_dir: Path, target: str) -> LoadedModel:
    """The exported model of ``target`` (``models_dir/<target>/``), its model file checked
    against the SHA-256 in its metadata and loaded like a registry model."""
    folder = Path(models_dir) / target
    meta_path = folder / METADATA_FILE
    if not meta_path.exists():
        raise FileNotFoundError(f"no exported {target} model in {models_dir}")
    meta = json.loads(meta_path.read_text())
    model = load_model_dir(folder, meta.get("sha256"))
    return _trial(LoadedModel(target, model, meta, "export", str(meta.get("model_version"))))


def registry_champion(settings: Settings, target: str):
    """The registry's champion model version of ``target``, or None if there is none."""
    from mlflow.exceptions import MlflowException

    from slipcast.scoring.registry import client_for

    client = client_for(settings)
    try:
        return client.get_model_version_by_alias(registered_model_name(settings.training.model_prefix, target),
                                                 CHAMPION_ALIAS)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            return None
        raise


def registry_vouches(settings: Settings, target: str, exported: dict) -> bool:
    """Whether the registry holds the export's version with the export's SHA-256."""
    from slipcast.scoring.registry import client_for

    name = registered_model_name(settings.training.model_prefix, target)
    try:
        version = client_for(settings).get_model_version(name, str(exported.get("model_version")))
    except Exception:  # no such version (an export from another registry): nothing vouches for it
        return False
    return bool(exported.get("sha256")) and version.tags.get(MODEL_HASH_TAG) == exported.get("sha256")


def load_registry(settings: Settings, target: str, version) -> LoadedModel:
    """A registered model version (checked against the SHA-256 training recorded as its tag)
    and the Slipcast metadata its run logged."""
    from slipcast.scoring.registry import download_model

    name = registered_model_name(settings.training.model_prefix, target)
    try:
        model, meta = download_model(settings, version)
    except ModelRefused:
        raise
    except Exception as exc:
        raise ModelRefused(f"{name} v{version.version}: cannot be loaded from the registry: {exc}") from exc
    return _trial(LoadedModel(target, model, meta, "registry", str(version.version)))


def public_message(message: str, settings: Settings) -> str:
    """An error as the API may show it: paths relative to ``home``, never absolute."""
    return message.replace(f"{settings.home}/", "").replace(str(settings.home), ".")


class ModelStore:
    """The current model per target, swapped atomically when a new champion appears.

    The fallback order (docs/architecture.md, "Serving"): the registry's champion; where it
    cannot be loaded, the export in ``models/`` when it is that same version with the hash the
    registry holds; else the last good model already serving; else, at start-up, the export if
    the registry vouches for its version (or cannot be reached at all). A registry that cannot
    be reached keeps the model that is serving (no swap to an older export and back).
    ``status`` says, per target, what serves, what the champion is and why they differ.
    """

    def __init__(self, settings: Settings, targets: tuple[str, ...] = TARGETS):
        self.settings = settings
        self.targets = targets
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._polling = Every("slipcast-model-refresh")
        self.errors: dict[str, str] = {}
        self.champions: dict[str, str | None] = {}  # the registry champion's version, None: none or unknown
        # why a champion was refused, per (target, version, SHA-256 of its model file then): the same file
        # is not loaded again, a repaired one (another hash) or another version is
        self._refused: dict[tuple[str, str, str | None], str] = {}

    def get(self, target: str) -> LoadedModel | None:
        return self._models.get(target)

    def status(self, target: str) -> dict:
        """What serves ``target`` and how that stands against the champion: ``state`` is
        ``ok`` (the champion serves), ``fallback`` (another model serves; ``error`` says why)
        or ``missing`` (nothing serves)."""
        loaded = self.get(target)
        champion = self.champions.get(target)
        serving = None if loaded is None else {"source": loaded.source, "version": loaded.version}
        if loaded is None:
            state = "missing"
        elif target in self.errors or (champion is not None and champion != loaded.version):
            state = "fallback"
        else:
            state = "ok"
        return {"state": state, "serving": serving, "champion_version": champion,
                "error": self.errors.get(target)}

    def _swap(self, loaded: LoadedModel) -> None:
        with self._lock:
            self._models[loaded.target] = loaded
        log.info("serving %s model %s v%s", loaded.target, loaded.source, loaded.version)

    def refresh(self) -> None:
        """Load each target's champion if it differs from the one serving."""
        for target in self.targets:
            try:
                problem = self._refresh_target(target)
            except Exception as exc:  # keep serving the last good model whatever went wrong
                problem = str(exc)
            if problem is None:
                self.errors.pop(target, None)
            else:
                shown = public_message(problem, self.settings)
                if self.errors.get(target) != shown:  # once, not at every reload
                    log.warning("%s model: %s", target, problem)
                self.errors[target] = shown

    def _export(self, target: str) -> tuple[Path, dict | None]:
        models_dir = self.settings.resolve(self.settings.models_dir)
        meta_path = models_dir / target / METADATA_FILE
        return models_dir, (json.loads(meta_path.read_text()) if meta_path.exists() else None)

    def _refresh_target(self, target: str) -> str | None:
        """Follow the fallback order once; the problem that kept the champion out, if any."""
        current = self.get(target)
        models_dir, exported = self._export(target)
        problem = None
        if self.settings.serving.model_source == "registry":
            try:
                champion = registry_champion(self.settings, target)
            except Exception as exc:
                self.champions.pop(target, None)
                if current is not None:  # keep what serves until the registry answers again
                    return f"registry unreachable ({exc}); serving the last good model"
                problem = f"registry unreachable ({exc})"
            else:
                version = None if champion is None else str(champion.version)  # None: no champion
                self.champions[target] = version
                if champion is not None:
                    if current is not None and current.source == "registry" and current.version == version:
                        return None
                    refusal = None
                    if current is not None:  # this very file refused already: keep what serves, and say why
                        from slipcast.scoring.registry import model_file_hash

                        refusal = (target, str(version), model_file_hash(self.settings, champion))
                        if refusal in self._refused:
                            return self._refused[refusal] + f"; serving the last good model (v{current.version})"
                    try:
                        self._swap(load_registry(self.settings, target, champion))
                        return None
                    except ModelRefused as exc:
                        problem = f"champion v{version} refused: {exc}"
                        if refusal is not None:
                            self._refused[refusal] = problem
                    if (exported is not None and str(exported.get("model_version")) == version
                            and exported.get("sha256") == champion.tags.get(MODEL_HASH_TAG)):
                        self._swap(load_export(models_dir, target))  # the same file the registry vouches for
                        return problem + "; serving its export (the same file, by the hash the registry holds)"
                    if current is not None:
                        return problem + f"; serving the last good model (v{current.version})"
                    if exported is not None and not registry_vouches(self.settings, target, exported):
                        raise ModelRefused(problem + f"; the export (v{exported.get('model_version')}) does not "
                                           "match the hash the registry holds for its version: not served")
                elif current is not None and current.source == "registry":
                    return None  # no champion any more: the last one keeps serving
        if exported is None:
            if current is None:
                raise FileNotFoundError((problem + "; " if problem else "")
                                        + f"no {target} champion in the registry and no export in {models_dir}")
            return problem
        if current is not None and current.source == "export" and current.metadata.get("sha256") == exported.get("sha256"):
            return problem
        self._swap(load_export(models_dir, target))
        return problem and problem + f"; serving the export (v{exported.get('model_version')})"

    def start(self) -> None:
        """Refresh now, then every ``reload_seconds`` in a background thread."""
        self.refresh()
        interval = self.settings.serving.reload_seconds
        if interval > 0:
            self._polling.start(interval, self.refresh)

    def stop(self) -> None:
        self._polling.stop()
