"""The one model format: every candidate Slipcast trains rebuilds from the types it trusts, and
a model folder is refused without the hash training recorded, with another, or holding a type
nobody trusts (docs/architecture.md, "How a model is trusted")."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
import skops.io

from slipcast.core.model_format import MODEL_FILE, TRUSTED_TYPES, ModelRefused, load_model_dir, untrusted_types
from slipcast.features.pipeline import build_training_sets, feature_columns
from slipcast.training.calibration import METHODS, Recipe, _fit
from slipcast.training.candidates import BASELINES, MODELS, make_candidate
from slipcast.training.fitting import available_features, split_columns
from slipcast.training.tracking import model_requirements


class Planted:
    """A type no list trusts: skops must not rebuild it, whatever hash it comes with."""

    def predict_proba(self, X):
        return np.zeros((len(X), 2))


@pytest.fixture(scope="module")
def rows(small_history, settings):
    frame = build_training_sets(small_history, settings.features)["milestone"]
    frame = frame[frame["label"].notna()].sort_values("as_of").tail(600).reset_index(drop=True)  # enough to fit
    features = feature_columns("milestone")
    return frame[features], frame["label"].to_numpy().astype(int), frame["as_of"].to_numpy()


def _fitted(name, X, y, settings):
    numeric, categorical = split_columns(X, available_features(X, list(X.columns)))
    quick = settings.training.model_copy(update={"max_iter": 20})
    return make_candidate(name, numeric, categorical, quick).fit(X, y)


@pytest.mark.slow  # fits every candidate, calibrated four ways
@pytest.mark.parametrize("name", BASELINES + MODELS)
def test_every_candidate_needs_no_type_beyond_the_trusted_ones(rows, settings, name):
    X, y, when = rows
    half = len(y) // 2
    models = [_fitted(name, X.iloc[:half], y[:half], settings)]
    if name in MODELS:  # calibrated by each method, with equal and with recency weights
        models += [_fit(models[0], Recipe(method, half_life), X.iloc[half:], y[half:], when[half:])
                   for method in METHODS for half_life in (None, 0.25)]
    for model in models:
        assert untrusted_types(model) == []
        rebuilt = skops.io.loads(skops.io.dumps(model), trusted=list(TRUSTED_TYPES))
        np.testing.assert_allclose(rebuilt.predict_proba(X.iloc[:50]), model.predict_proba(X.iloc[:50]))


@pytest.fixture(scope="module")
def model_folder(rows, settings, tmp_path_factory):
    """A logistic model saved as training saves it (an MLflow folder holding a skops file)."""
    X, y, _ = rows
    folder = tmp_path_factory.mktemp("saved") / "model"
    mlflow.sklearn.save_model(_fitted("logistic", X, y, settings), str(folder), serialization_format="skops",
                              skops_trusted_types=list(TRUSTED_TYPES), pip_requirements=model_requirements())
    return folder


@pytest.fixture()
def saved(model_folder, tmp_path):
    """A copy of the saved model that a test may break, and its file's SHA-256."""
    folder = Path(shutil.copytree(model_folder, tmp_path / "model"))
    return folder, hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()


def test_a_model_with_its_recorded_hash_loads(saved, rows):
    folder, digest = saved
    assert load_model_dir(folder, digest).predict_proba(rows[0].iloc[:3]).shape == (3, 2)


@pytest.mark.parametrize("recorded", [None, ""])
def test_a_model_with_no_recorded_hash_is_refused(saved, recorded):
    folder, _ = saved
    with pytest.raises(ModelRefused, match="no recorded SHA-256"):
        load_model_dir(folder, recorded)


def test_a_model_whose_file_changed_is_refused(saved):
    folder, digest = saved
    with open(folder / MODEL_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelRefused, match="does not match"):
        load_model_dir(folder, digest)


def test_a_planted_type_is_refused_even_with_a_matching_hash(saved):
    folder, _ = saved
    (folder / MODEL_FILE).write_bytes(skops.io.dumps(Planted()))
    digest = hashlib.sha256((folder / MODEL_FILE).read_bytes()).hexdigest()
    assert untrusted_types(Planted()) != []
    with pytest.raises(ModelRefused, match="does not trust"):
        load_model_dir(folder, digest)
