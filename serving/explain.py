"""The drivers of a forecast: how much each feature's value moves this probability.

For each feature, the forecast is recomputed with that feature set to its typical value in
the training data; the difference is the feature's effect on this forecast. It works for any
model, rides along in the forecast's own prediction, and reads the way a program manager asks:
"what is unusual about this milestone, and how much does it matter?"
"""

from __future__ import annotations

import numpy as np

from slipcast.serving.model_store import LoadedModel
from slipcast.serving.schemas import Driver


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value) if isinstance(value, (int, float, np.floating)) else str(value)


def plain_columns(inputs: dict[str, np.ndarray]) -> dict[str, list]:
    """Model inputs as JSON-ready Python values, column by column (NaN as None)."""
    out = {}
    for name, column in inputs.items():
        values = np.asarray(column)
        if values.dtype.kind == "f":  # as objects, numbers are Python floats
            plain = values.astype(object)
            plain[np.isnan(values)] = None
            out[name] = plain.tolist()
        else:
            out[name] = [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]
    return out


def typical_rows(loaded: LoadedModel, inputs: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """For each of ``rows`` and each feature j, the row with feature j at its typical value
    (row i * k + j of the result): scored with the forecasts themselves, in one prediction."""
    reference = loaded.metadata["reference"]
    k = len(loaded.features)
    columns = {}
    for j, name in enumerate(loaded.features):
        column = np.repeat(inputs[name][rows], k)
        typical = reference.get(name)
        column[j::k] = np.nan if typical is None and column.dtype.kind == "f" else typical
        columns[name] = column
    return columns


def drivers(loaded: LoadedModel, inputs: dict[str, np.ndarray], rows: np.ndarray, probabilities: np.ndarray,
            typical: np.ndarray, top: int) -> list[list[Driver]]:
    """The ``top`` drivers of each of ``rows``, largest effect first: ``probabilities`` are
    theirs, ``typical`` the predictions of ``typical_rows``."""
    features = loaded.features
    reference = loaded.metadata["reference"]
    effects = probabilities[:, None] - typical.reshape(len(rows), len(features))
    out = []
    for i, row in enumerate(rows):
        order = np.argsort(-np.abs(effects[i]), kind="stable")[:top]
        out.append([
            Driver(feature=features[j], value=_plain(inputs[features[j]][row]),
                   reference=_plain(reference.get(features[j])), effect=round(float(effects[i, j]), 4),
                   direction="raises risk" if effects[i, j] >= 0 else "lowers risk")
            for j in order if abs(effects[i, j]) > 0
        ])
    return out
