"""MLflow: where runs go, what each run logs, and the guarded ``champion`` alias."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from slipcast.settings import REPO_ROOT

CHAMPION = "champion"


def configure(settings) -> MlflowClient:
    """Point MLflow at the configured store and return a client for it."""
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    uri = settings.resolved_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


def experiment_id(client: MlflowClient, settings, target: str) -> str:
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


def model_name(settings, target: str) -> str:
    return settings.training.model_prefix + target


def current_champion(client: MlflowClient, name: str):
    """The model version holding the champion alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def code_version() -> str:
    """The git commit of the code (with '-dirty' when uncommitted changes exist)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def trusted_types(model) -> list[str]:
    """The types skops must trust to load this model: exactly those it contains."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))
