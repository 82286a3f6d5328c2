"""The service's view of the MLflow registry, with the tracking URI passed explicitly.

The service never sets MLflow's process-wide tracking URI: its refresher runs in a
background thread, and global state changed there would redirect anything else in the process.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from slipcast.core.contracts import METADATA_ARTIFACT, MODEL_HASH_TAG, ModelMetadata
from slipcast.core.model_format import MODEL_FILE, Classifier, ModelRefused, load_model_dir, sha256_file
from slipcast.core.settings import Settings


def registry_uri(settings: Settings) -> str:
    """The configured registry; a missing embedded database means no registry (serving never
    creates or writes to the store)."""
    path = settings.sqlite_path()
    if path is not None and not path.exists():
        raise ConnectionError(f"no tracking database at {path}")
    return settings.resolved_uri()


def client_for(settings: Settings) -> MlflowClient:
    uri = registry_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _artifacts_of(client: MlflowClient, version) -> str:
    """Where a registered model version's folder is (its logged model's, for ``models:/m-...``)."""
    source = version.source
    if source.startswith("models:/m-"):
        source = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    return source


def model_file_hash(settings: Settings, version) -> str | None:
    """The SHA-256 of a registered model version's model file as it is now (None where it cannot be
    fetched): what tells a repaired file from the one that was refused."""
    client = client_for(settings)
    with tempfile.TemporaryDirectory(prefix="slipcast-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=f"{_artifacts_of(client, version)}/{MODEL_FILE}",
                                                        dst_path=tmp, tracking_uri=registry_uri(settings))
        except Exception:  # no such file, or an artifact store that does not answer: nothing to hash
            return None
        return sha256_file(Path(local))


def download_model(settings: Settings, version) -> tuple[Classifier, ModelMetadata]:
    """A registered model ``version`` (an MLflow ``ModelVersion``), loaded once its file matches
    the SHA-256 that training recorded as its tag, and the Slipcast metadata its run logged.

    The version's artifacts are located through this client (a ``models:/`` URI would be
    resolved against MLflow's global tracking URI, which serving leaves alone).
    """
    client = client_for(settings)
    uri = registry_uri(settings)
    source = _artifacts_of(client, version)
    with tempfile.TemporaryDirectory(prefix="slipcast-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=uri)
        try:
            model = load_model_dir(Path(local), version.tags.get(MODEL_HASH_TAG))
        except ModelRefused as exc:  # name the version, not the scratch folder it was checked in
            raise ModelRefused(str(exc).replace(str(local), f"{version.name} v{version.version}")) from None
        meta = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=METADATA_ARTIFACT,
                                                   dst_path=tmp, tracking_uri=uri)
        return model, json.loads(Path(meta).read_text())
