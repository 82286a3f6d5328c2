"""The drivers of a forecast: how much each feature's value moves this probability.

For each feature, the forecast is recomputed with that feature set to its typical value in
the training data; the difference is the feature's effect on this forecast. It works for any
model, needs one batched prediction, and reads the way a program manager asks the question:
"what is unusual about this milestone, and how much does it matter?"
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.model_store import LoadedModel
from serving.schemas import Driver


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value) if isinstance(value, (int, float, np.floating)) else str(value)


def drivers(loaded: LoadedModel, X: pd.DataFrame, probabilities: np.ndarray, top: int) -> list[list[Driver]]:
    """The ``top`` drivers of each row of ``X``, largest effect first."""
    features = loaded.features
    n, k = len(X), len(features)
    if n == 0:
        return []
    reference = loaded.metadata["reference"]
    repeated = X.iloc[np.repeat(np.arange(n), k)].reset_index(drop=True)
    for j, name in enumerate(features):
        rows = np.arange(j, n * k, k)
        repeated.loc[rows, name] = reference.get(name)
    typical = loaded.predict(loaded.frame(repeated)).reshape(n, k)
    effects = probabilities[:, None] - typical
    out = []
    for i in range(n):
        order = np.argsort(-np.abs(effects[i]), kind="stable")[:top]
        out.append([
            Driver(feature=features[j], value=_plain(X.iloc[i][features[j]]), reference=_plain(reference.get(features[j])),
                   effect=round(float(effects[i, j]), 4),
                   direction="raises risk" if effects[i, j] >= 0 else "lowers risk")
            for j in order if abs(effects[i, j]) > 0
        ])
    return out
