"""Beyond one machine: an MLflow tracking server on PostgreSQL, trained and registered
against, and a service of several workers that all serve its champion and follow a promotion.

.ci/run starts PostgreSQL on loopback and names it in SLIPCAST_TEST_POSTGRES.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from mlflow import MlflowClient

from slipcast.core.contracts import MODEL_HASH_TAG
from slipcast.features.pipeline import (
    build_training_sets,
    training_set_fingerprint,
    write_training_set,
)
from slipcast.scoring.model_store import ModelStore
from slipcast.tools.service import free_port, running_service, wait_until_up
from slipcast.training.run import train
from tests.helpers import configured

POSTGRES = os.environ.get("SLIPCAST_TEST_POSTGRES")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not POSTGRES, reason="SLIPCAST_TEST_POSTGRES unset (.ci/run starts PostgreSQL)")]


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """``mlflow server`` on a fresh PostgreSQL database, artifacts proxied from a local folder."""
    import psycopg

    name = f"slipcast_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(POSTGRES, autocommit=True)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    root = tmp_path_factory.mktemp("server")
    port = free_port()
    backend = POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    wait_until_up(f"{url}/health", proc, 180, lambda: (root / "server.log").read_text()[-3000:])
    try:
        yield {"url": url, "root": root, "backend": backend}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _versions_by_worker(base: str, rounds: int) -> dict[int, str]:
    """The champion version each worker reports, over fresh connections (each may land on
    any worker)."""
    seen = {}
    for _ in range(rounds):
        body = httpx.get(f"{base}/readyz", timeout=10, headers={"Connection": "close"}).json()
        seen[body["worker"]] = body["models"]["milestone"]
    return seen


def test_train_register_and_serve_through_postgres_with_workers(tracking_server, small_history, settings,
                                                                 tmp_path):
    s = configured(settings, tmp_path).model_copy(update={"tracking_uri": tracking_server["url"],
                                                          "artifact_location": None})
    sets = build_training_sets(small_history, s.features)
    write_training_set(sets["milestone"], tmp_path / "features", "milestone",
                       training_set_fingerprint(small_history, s.features))
    result = train(s, features_dir=tmp_path / "features", targets=["milestone"],
                   candidates=["base_rate", "logistic"])
    assert result["milestone"]["decision"]["promoted"], result["milestone"]["decision"]

    # the registry lives in PostgreSQL: its tables hold the run and the alias
    import psycopg

    with psycopg.connect(tracking_server["backend"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM registered_model_aliases WHERE alias = 'champion'")
        assert cur.fetchall() == [(1,)]

    store = ModelStore(s)
    store.refresh()
    loaded = store.get("milestone")
    assert loaded.source == "registry" and loaded.version == "1"

    env = {"SLIPCAST_TRACKING_URI": tracking_server["url"], "SLIPCAST_MODELS_DIR": str(tmp_path / "no-export"),
           "SLIPCAST_SERVING__RELOAD_SECONDS": "1", "SLIPCAST_SERVING__MODEL_SOURCE": "registry"}
    with running_service(free_port(), env, workers=2) as base:
        deadline = time.monotonic() + 60
        seen = _versions_by_worker(base, 40)
        while len(seen) < 2 and time.monotonic() < deadline:  # a worker may still be loading
            seen.update(_versions_by_worker(base, 20))
        assert len(seen) == 2 and set(seen.values()) == {"1"}, seen

        client = MlflowClient(tracking_server["url"])
        name = f"{s.training.model_prefix}milestone"
        current = client.get_model_version_by_alias(name, "champion")
        promoted = client.create_model_version(name, source=current.source, run_id=current.run_id,
                                               model_id=current.source.rsplit("/", 1)[-1])
        # as training does: the model file's hash recorded on the version (serving refuses a version without)
        client.set_model_version_tag(name, promoted.version, MODEL_HASH_TAG, current.tags[MODEL_HASH_TAG])
        client.set_registered_model_alias(name, "champion", promoted.version)

        while time.monotonic() < deadline:
            seen.update(_versions_by_worker(base, 20))
            if set(seen.values()) == {promoted.version}:
                break
            time.sleep(0.5)
        assert len(seen) == 2 and set(seen.values()) == {promoted.version}, seen
        info = httpx.get(f"{base}/v1/model", timeout=10).json()
        assert info["model"] == {**info["model"], "version": promoted.version, "source": "registry"}

        # /metrics from any worker counts every worker's requests
        asked = sum(1 for _ in range(10) if httpx.get(f"{base}/healthz", headers={"Connection": "close"}).is_success)
        text = httpx.get(f"{base}/metrics", timeout=10).text
        healthz = [line for line in text.splitlines()
                   if line.startswith('slipcast_requests_total{') and 'path="/healthz"' in line]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in healthz) == asked
