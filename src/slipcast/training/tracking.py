"""MLflow: where runs go, how a model is registered (one format, its hash recorded), the champion."""

from __future__ import annotations

import fcntl
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from slipcast.core.contracts import CHAMPION_ALIAS, MODEL_HASH_TAG, registered_model_name
from slipcast.core.model_format import MODEL_FILE, TRUSTED_TYPES, sha256_file, untrusted_types
from slipcast.core.progress import shown
from slipcast.core.settings import Settings


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and return a client for it. MLflow's own progress bars
    (artifact downloads) follow ours: shown on a terminal only, never with ``--quiet``."""
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = str(shown()).lower()
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    uri = settings.resolved_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def experiment_id(client: MlflowClient, settings: Settings, target: str) -> str:
    """The experiment of a target, created with the configured artifact root if new."""
    name = settings.training.experiment_prefix + target
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if settings.artifact_location:
        path = settings.resolve(Path(settings.artifact_location))
        path.mkdir(parents=True, exist_ok=True)
        location = path.as_uri()
    return client.create_experiment(name, artifact_location=location)


def model_name(settings: Settings, target: str) -> str:
    """The registered model name of a target."""
    return registered_model_name(settings.training.model_prefix, target)


def current_champion(client: MlflowClient, name: str):
    """The model version holding the champion alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def model_requirements() -> list[str]:
    """What loading a logged model needs, pinned to the versions that trained it: stated rather
    than inferred, which would import the model in a subprocess at every training."""
    return [f"{package}=={version(package)}" for package in ("scikit-learn", "skops", "numpy", "scipy", "pandas")]


def log_model(client: MlflowClient, name: str, model, X: pd.DataFrame, scratch: Path) -> tuple[str, Path, str]:
    """Log and register ``model`` in the one model format (``slipcast.core.model_format``) and
    record its file's SHA-256 as a model version tag. Returns the version, the logged model
    folder as downloaded into ``scratch`` (the export copies it) and the SHA-256.

    A model holding types that serving would refuse fails here, before anything is registered.
    """
    refused = untrusted_types(model)
    if refused:
        raise TypeError(f"the model holds types the serving side does not trust: {refused} "
                        "(slipcast.core.model_format.TRUSTED_TYPES)")
    info = mlflow.sklearn.log_model(
        model, name="model", registered_model_name=name, serialization_format="skops",
        signature=infer_signature(X.head(200), model.predict_proba(X.head(200))),
        input_example=X.head(3), skops_trusted_types=list(TRUSTED_TYPES), pip_requirements=model_requirements())
    version = str(info.registered_model_version)
    folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(scratch)))
    digest = sha256_file(folder / MODEL_FILE)
    client.set_model_version_tag(name, version, MODEL_HASH_TAG, digest)
    return version, folder, digest


HEARTBEAT_TAG = "slipcast.heartbeat"  # a run's last sign of life, set at every stage of training


def heartbeat(client: MlflowClient, run_id: str, now: datetime | None = None) -> None:
    """Record that the run is alive (``reap_stale_runs`` leaves it alone while this is recent)."""
    client.set_tag(run_id, HEARTBEAT_TAG, (now or datetime.now(UTC)).isoformat())


def reap_stale_runs(client: MlflowClient, experiment_id: str, stale_minutes: float,
                    now: datetime | None = None) -> list[str]:
    """Mark this user's runs that a killed training left RUNNING as FAILED, and their pending
    logged models too (docs/architecture.md, "The champion"): a run is stale when its last
    heartbeat (or its start, without one) is older than ``stale_minutes``. Returns their ids."""
    now = now or datetime.now(UTC)
    user = getpass.getuser()
    reaped = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'"):
        if run.data.tags.get("mlflow.user", user) != user:
            continue
        beat = run.data.tags.get(HEARTBEAT_TAG)
        last = datetime.fromisoformat(beat) if beat else datetime.fromtimestamp(run.info.start_time / 1000, UTC)
        if now - last > timedelta(minutes=stale_minutes):
            client.set_tag(run.info.run_id, "slipcast.failed_reason",
                           f"no heartbeat since {last.isoformat()}: the training was killed")
            client.set_terminated(run.info.run_id, "FAILED")
            reaped.append(run.info.run_id)
    if reaped:
        for model in client.search_logged_models([experiment_id]):
            if model.source_run_id in reaped and model.status == LoggedModelStatus.PENDING:
                client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    return reaped


@contextmanager
def champion_lock(settings: Settings, name: str) -> Iterator[None]:
    """Held while a run re-reads the champion and moves the alias, so that of two trainings
    that decide at once only one moves it after seeing the other's result. With the embedded
    store it is an exclusive lock on a file beside the SQLite database (any number of processes
    on this machine); with a tracking server the re-read right before the move narrows the race
    to that instant (docs/architecture.md, "The champion")."""
    path = settings.sqlite_path()
    if path is None:
        yield
        return
    lock = path.with_name(f".{path.name}.{name}.champion.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
