"""Which model serves, in an explicit order, and what readiness and /v1/model say about it."""

import shutil
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from slipcast.core.contracts import MODEL_HASH_TAG
from slipcast.core.model_format import MODEL_FILE
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
    served = store.get("milestone")  # the export that serves answers the training rows with probabilities
    assert served is not None and served.version == status["serving"]["version"]
    rows = frame.head(20)
    p = served.predict(served.frame(rows))
    assert len(p) == len(rows) == 20 and ((p >= 0) & (p <= 1)).all()


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


def _model_file(client: MlflowClient, name: str, version: str) -> Path:
    """Where the registry keeps a version's model file (a local artifact store)."""
    source = client.get_model_version(name, version).source
    if source.startswith("models:/m-"):
        source = client.get_logged_model(source.removeprefix("models:/")).artifact_location
    return Path(urlparse(source).path if source.startswith("file:") else source) / MODEL_FILE


def test_a_refused_champion_is_tried_again_when_its_file_is_repaired(store_copy, tmp_path):
    """The sequence of issue 33: serve v1; v2's file corrupted and the alias moved to 2: refused,
    with its reason in /readyz; the alias back to 1, then to 2 again: still refused, and said; the
    file repaired and the alias moved to 2: v2 serves without a restart."""
    settings, client = store_copy
    name = "slipcast-milestone"
    v1 = client.get_model_version(name, "1")
    copied = shutil.copytree(_model_file(client, name, "1").parent, tmp_path / "v2-model")  # v2: v1's files, apart
    v2 = str(client.create_model_version(name, str(copied), v1.run_id, tags={MODEL_HASH_TAG: v1.tags[MODEL_HASH_TAG]})
             .version)
    path = _model_file(client, name, v2)
    good = path.read_bytes()
    app = create_app(settings)
    try:
        with TestClient(app) as c:
            models = app.state.store

            def alias_to(version: str) -> dict:
                client.set_registered_model_alias(name, "champion", version)
                models.refresh()
                return c.get("/readyz").json()["state"]["milestone"]

            assert alias_to("1")["state"] == "ok"
            path.write_bytes(good[: len(good) // 2])  # v2's file corrupted
            for _ in range(2):  # refused, and the reason stays said at the next reload
                refused = alias_to(v2)
                assert refused["state"] == "fallback" and refused["serving"]["version"] == "1", refused
                assert refused["error"] and f"v{v2} refused" in refused["error"] and "SHA-256" in refused["error"]
            assert alias_to("1") == {**refused, "state": "ok", "champion_version": "1", "error": None}
            again = alias_to(v2)  # the same broken file again: refused with its reason, not null
            assert again["state"] == "fallback" and again["error"] == refused["error"]
            assert c.get("/v1/model").json()["load"]["error"] == refused["error"]
            alias_to("1")
            path.write_bytes(good)  # repaired
            served = alias_to(v2)
            assert served == {"state": "ok", "serving": {"source": "registry", "version": v2},
                              "champion_version": v2, "error": None}
    finally:
        path.write_bytes(good)
