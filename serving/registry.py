"""The MLflow client the service uses, for the configured tracking URI."""

from __future__ import annotations

from mlflow import MlflowClient


def client_for(settings) -> MlflowClient:
    """A client of the configured registry; a missing embedded database means no registry
    (it is not created here: serving never writes to the store)."""
    import mlflow

    path = settings.sqlite_path()
    if path is not None and not path.exists():
        raise ConnectionError(f"no tracking database at {path}")
    uri = settings.resolved_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)
