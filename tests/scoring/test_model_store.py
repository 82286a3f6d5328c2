"""Which model serves, in an explicit order, and what readiness and /v1/model say about it."""

import shutil
import sqlite3

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from slipcast.core.contracts import MODEL_HASH_TAG
from slipcast.scoring.model_store import ModelStore
from slipcast.serving.app import create_app


@pytest.fixture()
def store_copy(trained, tmp_path):
    """The trained store's database and export, copied so that a test may break them."""
    s = trained["settings"]
    db = tmp_path / "mlflow.db"
    shutil.copy(s.sqlite_path(), db)
    shutil.copytree(s.models_dir, tmp_path / "models")
    local = s.model_copy(update={"tracking_uri": f"sqlite:///{db}", "models_dir": tmp_path / "models"})
    return local, MlflowClient(local.resolved_uri(), local.resolved_uri())


def _break_champion(client: MlflowClient, name: str = "slipcast-milestone") -> str:
    """The champion's file no longer matches the hash training recorded for it."""
    version = str(client.get_model_version_by_alias(name, "champion").version)
    client.set_model_version_tag(name, version, MODEL_HASH_TAG, "0" * 64)
    return version


def _lose_champion_files(db, name: str = "slipcast-milestone") -> str:
    """The champion's files can no longer be fetched (its artifact store moved away)."""
    with sqlite3.connect(db) as conn:
        (version,) = conn.execute("SELECT version FROM registered_model_aliases WHERE name = ? AND alias = 'champion'",
                                  (name,)).fetchone()
        conn.execute("UPDATE model_versions SET source = 'file:///nonexistent/model' WHERE name = ? AND version = ?",
                     (name, version))
    return str(version)


def test_a_champion_that_fails_to_load_is_reported_and_its_verified_export_serves(store_copy):
    settings, client = store_copy
    version = _lose_champion_files(settings.sqlite_path())
    with TestClient(create_app(settings)) as c:
        ready = c.get("/readyz").json()
        info = c.get("/v1/model").json()
        answer = c.get("/v1/model?target=ticket").json()
    state = ready["state"]["milestone"]
    assert ready["status"] == "ready" and state["state"] == "fallback"
    assert state["serving"] == {"source": "export", "version": version} and state["champion_version"] == version
    assert "cannot be loaded" in state["error"] and "serving its export" in state["error"]
    assert info["load"]["state"] == "fallback" and info["model"]["source"] == "export"
    assert answer["load"]["state"] == "ok" and answer["model"]["source"] == "registry"
    assert "/tmp" not in str(ready) and str(settings.home) not in str(ready)  # no absolute paths in responses


def test_an_export_the_registry_does_not_vouch_for_is_not_served_in_its_place(store_copy):
    settings, client = store_copy
    _break_champion(client)  # the export's hash no longer matches the registry's record
    with TestClient(create_app(settings)) as c:
        ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.json()["state"]["milestone"]["state"] == "missing"
    assert "does not match" in ready.json()["errors"]["milestone"]


def test_after_a_restart_a_refused_new_champion_leaves_the_previous_export_serving(store_copy, trained):
    settings, client = store_copy
    frame = trained["sets"]["milestone"]
    from slipcast.training.run import train  # a second version, promoted, then broken

    out = train(settings.model_copy(update={"models_dir": settings.models_dir.parent / "unused"}),
                features_dir=trained["root"] / "features", targets=["milestone"], candidates=["base_rate"])
    new = out["milestone"]["version"]
    client.set_registered_model_alias("slipcast-milestone", "champion", new)
    _break_champion(client)
    store = ModelStore(settings)
    store.refresh()  # a fresh process: nothing served before
    status = store.status("milestone")
    assert status["state"] == "fallback" and status["champion_version"] == new
    assert status["serving"]["source"] == "export" and status["serving"]["version"] != new
    assert store.get("milestone") is not None and len(frame)


def test_a_registry_that_stops_answering_keeps_the_model_that_serves(store_copy, tmp_path):
    settings, _ = store_copy
    store = ModelStore(settings)
    store.refresh()
    serving = store.get("milestone")
    assert serving.source == "registry"
    (tmp_path / "mlflow.db").rename(tmp_path / "gone.db")  # the registry is unreachable now
    for _ in range(3):
        store.refresh()
        assert store.get("milestone") is serving  # no swap to the export and back
    assert store.status("milestone")["state"] == "fallback" and "unreachable" in store.errors["milestone"]
