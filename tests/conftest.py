"""Shared fixtures: settings, a small simulated history, the real data folders, a trained store;
and the fast lane's rule (``make test-fast`` runs what is not marked ``slow``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipcast.core.settings import get_settings
from slipcast.ingest.simulator import SimulationConfig, generate
from tests.helpers import SHARED_DATA, configured

TRAINING_FIXTURES = {"trained"}  # each trains models in a real MLflow store: never in the fast lane


def pytest_collection_modifyitems(items):
    """A test that uses a trained store is slow, whether or not its module says so."""
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
def small_history():
    """A few hundred milestones of simulated history: realistic and quick."""
    return generate(SimulationConfig(projects=4, tickets=1500, seed=7))


@pytest.fixture(scope="session")
def duraspace_dir() -> Path:
    path = SHARED_DATA / "jira-duraspace"
    if not path.is_dir():
        pytest.skip(f"real data absent: {path} (see ../shared/data/README.md)")
    return path


TRAIN_CANDIDATES = ["base_rate", "monte_carlo", "logistic", "gradient_boosting"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, small_history, settings):
    """A real MLflow store with both targets trained once on the small history."""
    from slipcast.features.pipeline import (
        build_training_sets,
        training_set_fingerprint,
        write_training_set,
    )
    from slipcast.training.run import train

    root = tmp_path_factory.mktemp("store")
    s = configured(settings, root)
    sets = build_training_sets(small_history, s.features)
    fp = training_set_fingerprint(small_history, s.features)
    for target, frame in sets.items():
        write_training_set(frame, root / "features", target, fp)
    result = train(s, features_dir=root / "features", candidates=TRAIN_CANDIDATES)
    return {"settings": s, "result": result, "sets": sets, "root": root, "tables": small_history}
