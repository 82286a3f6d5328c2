"""An export without history (a Jira dump with no changelog) is named, not trusted: the import
and `doctor` say its labels and features are not point in time, and `train` refuses it unless
told to accept final states, when the model says so in MLflow and in every answer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from slipcast.ingest.exports import render
from slipcast.ingest.simulator import SimulationConfig, generate


def _slipcast(*args, env=None):
    return subprocess.run([sys.executable, "-m", "slipcast.cli", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    """The same simulated history exported with changelogs, and as a dump without them."""
    root = tmp_path_factory.mktemp("final")
    history = generate(SimulationConfig(projects=3, tickets=900, seed=5))
    render(history, "jira-json", root / "with", [])
    render(history, "jira-json", root / "without", [])
    for path in (root / "without").rglob("*.json"):  # what a dump of issues without expand=changelog holds
        payload = json.loads(path.read_text())
        issues = payload["issues"] if isinstance(payload, dict) and "issues" in payload else None
        for issue in issues or ([payload] if isinstance(payload, dict) and "fields" in payload else []):
            issue.pop("changelog", None)
        path.write_text(json.dumps(payload))
    for name in ("with", "without"):
        done = _slipcast("import", "jira-json", str(root / name), "--out", str(root / f"{name}-tables"))
        assert done.returncode == 0, done.stderr
    return root


def test_the_import_and_doctor_name_an_export_without_history(dumps):
    summary = json.loads((dumps / "without-tables" / "summary.json").read_text())
    assert summary["history"]["changed_after_creation"] == 0 and not summary["history"]["point_in_time"]
    assert any("holds no history" in w for w in summary["warnings"])
    kept = json.loads((dumps / "with-tables" / "summary.json").read_text())["history"]
    assert kept["point_in_time"] and kept["changed_after_creation"] > kept["tickets"] / 2
    doctor = _slipcast("doctor", str(dumps / "without-tables"))
    assert "not point in time" in doctor.stdout and "0 of" in doctor.stdout, doctor.stdout


def test_train_refuses_final_states_unless_accepted(dumps, tmp_path):
    features = _slipcast("features", "--data", str(dumps / "without-tables"), "--out", str(tmp_path / "features"))
    assert features.returncode == 0 and "holds no history" in features.stderr
    refused = _slipcast("train", "--features", str(tmp_path / "features"))
    assert refused.returncode == 2 and "--accept-final-state" in refused.stderr
    assert "Traceback" not in refused.stderr
    kept = _slipcast("features", "--data", str(dumps / "with-tables"), "--out", str(tmp_path / "kept"))
    assert kept.returncode == 0 and "holds no history" not in kept.stderr


@pytest.mark.slow
def test_a_model_trained_on_final_states_says_so_in_mlflow_and_every_answer(dumps, tmp_path):
    import os

    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from slipcast.core.settings import get_settings
    from slipcast.serving.app import create_app
    from tests.helpers import busiest_time, configured

    s = configured(get_settings(), tmp_path)
    env = {**os.environ, "SLIPCAST_HOME": str(tmp_path), "SLIPCAST_TRACKING_URI": s.tracking_uri,
           "SLIPCAST_ARTIFACT_LOCATION": s.artifact_location, "SLIPCAST_MODELS_DIR": str(s.models_dir),
           "SLIPCAST_TRAINING__FOLDS": "2", "SLIPCAST_TRAINING__BOOTSTRAP_ROUNDS": "20",
           "SLIPCAST_TRAINING__MIN_TRAIN_ROWS": "40", "SLIPCAST_TRAINING__MIN_TRAIN_POSITIVES": "3"}
    env.pop("MLFLOW_TRACKING_URI", None)
    # a dump without history has no slip left to learn from (every ticket sat in its final milestone):
    # the history with changelogs, its training sets marked as final states, stands in for one that has
    from slipcast.features.pipeline import read_training_set, write_training_set

    assert _slipcast("features", "--data", str(dumps / "with-tables"), "--out", str(tmp_path / "kept")).returncode == 0
    for target in ("milestone", "ticket"):
        frame, fingerprint = read_training_set(tmp_path / "kept" / f"{target}.parquet")
        write_training_set(frame, tmp_path / "f", target, fingerprint, final_state=True)
    done = _slipcast("train", "--features", str(tmp_path / "f"), "--target", "milestone", "--candidate", "base_rate",
                     "--candidate", "logistic", "--accept-final-state", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    client = MlflowClient(s.tracking_uri)
    run = client.search_runs([e.experiment_id for e in client.search_experiments()])[0]
    assert run.data.tags["point_in_time"] == "false"
    served = s.model_copy(update={"serving": s.serving.model_copy(update={
        "store": str(dumps / "with-tables"), "ledger_url": None})})
    from slipcast.ingest.tables import read_tables

    now = busiest_time(read_tables(dumps / "with-tables")).to_pydatetime()
    with TestClient(create_app(served, clock=lambda: now)) as c:
        items = c.get("/v1/milestones", params={"limit": 500}).json()["items"]
        assert c.get("/v1/model").json()["model"]["version"]
    assert items and all("not point in time" in (m["message"] or "") for m in items)


def test_an_azure_boards_csv_is_named_as_without_history_and_doctor_says_where_releases_came_from(tmp_path):
    """The query's CSV holds no revisions: the import says so, and so does `doctor`, which also says
    the releases were read from Target Dates; the synced JSON of the same project has a history."""
    for fmt in ("azure-devops-csv", "azure-devops"):
        done = _slipcast("generate", "--projects", "3", "--tickets", "300", "--format", fmt, "--out",
                         str(tmp_path / fmt))
        assert done.returncode == 0, done.stderr
        done = _slipcast("import", fmt, str(tmp_path / fmt), "--out", str(tmp_path / f"{fmt}-tables"))
        assert done.returncode == 0, done.stderr
        doctor = _slipcast("doctor", str(tmp_path / f"{fmt}-tables"))
        assert doctor.returncode == 0, doctor.stderr
        assert "releases: read from Target Dates" in doctor.stdout, doctor.stdout
        assert ("not point in time" in doctor.stdout) == (fmt == "azure-devops-csv"), doctor.stdout
        if fmt == "azure-devops-csv":
            assert "carries no history" in done.stdout
