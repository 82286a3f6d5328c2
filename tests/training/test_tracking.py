"""Training registers only what serving can trust: a model holding a type the one model format
does not trust is refused before anything reaches the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from slipcast.training.tracking import configure, log_model
from tests.helpers import configured


def _doubled(X):
    """A function of the test's own: a type no list trusts."""
    return X * 2


@pytest.mark.slow  # a real MLflow registry
def test_training_refuses_to_register_a_model_with_an_untrusted_type(settings, tmp_path):
    client = configure(configured(settings, tmp_path))
    X = pd.DataFrame({"x": np.linspace(0, 1, 40)})
    y = (X["x"] > 0.5).astype(int)
    planted = Pipeline([("f", FunctionTransformer(_doubled)), ("m", LogisticRegression())]).fit(X, y)
    with pytest.raises(TypeError, match="does not trust"):
        log_model(client, "slipcast-milestone", planted, X, tmp_path / "scratch")
    assert client.search_model_versions("name='slipcast-milestone'") == []
    assert client.search_registered_models() == []
