"""The drivers of a forecast: how much each feature's value moves this probability.

For each feature, the forecast is recomputed with that feature set to its typical value in
the training data; the difference is the feature's effect on this forecast. It works for any
model, rides along in the forecast's own prediction, and reads the way a program manager asks:
"what is unusual about this milestone, and how much does it matter?"
"""

from __future__ import annotations

import numpy as np

from slipcast.core.vocabulary import Direction
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.records import Driver


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


def typical_rows(loaded: LoadedModel, inputs: dict[str, np.ndarray], rows: np.ndarray
                 ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """For each of ``rows`` and each feature whose value there is not already its typical one,
    the row with that feature at its typical value, scored with the forecasts themselves in one
    prediction; and which (row, feature) pairs those are (``varied``, in the rows' order, then the
    features'). A pair left out would score the forecast itself: its effect is 0."""
    reference = loaded.metadata["reference"]
    names = loaded.features
    varied = np.column_stack([_differs(inputs[name][rows], reference.get(name)) for name in names]) \
        if len(rows) else np.zeros((0, len(names)), dtype=bool)
    at, feature = np.nonzero(varied)
    columns = {}
    for j, name in enumerate(names):
        column = inputs[name][rows[at]]
        typical = reference.get(name)
        column[feature == j] = np.nan if typical is None and column.dtype.kind == "f" else typical
        columns[name] = column
    return columns, varied


def _differs(values: np.ndarray, typical) -> np.ndarray:
    """Which ``values`` are not ``typical`` (a missing value is the typical one where that is missing)."""
    if values.dtype.kind == "f":
        if typical is None or (isinstance(typical, float) and np.isnan(typical)):
            return ~np.isnan(values)
        return values != typical
    return np.array([v != typical for v in values.tolist()], dtype=bool)


def drivers(loaded: LoadedModel, inputs: dict[str, np.ndarray], rows: np.ndarray, probabilities: np.ndarray,
            typical: np.ndarray, varied: np.ndarray, top: int) -> list[list[Driver]]:
    """The ``top`` drivers of each of ``rows``, largest effect first: ``probabilities`` are
    theirs, ``typical`` the predictions of the rows ``typical_rows`` made for the pairs ``varied``."""
    features = loaded.features
    reference = loaded.metadata["reference"]
    effects = np.zeros(varied.shape)
    at, feature = np.nonzero(varied)  # the order typical_rows made them in
    effects[at, feature] = probabilities[at] - typical
    out = []
    for i, row in enumerate(rows):
        order = np.argsort(-np.abs(effects[i]), kind="stable")[:top]
        out.append([
            Driver(feature=features[j], value=_plain(inputs[features[j]][row]),
                   reference=_plain(reference.get(features[j])), effect=round(float(effects[i, j]), 4),
                   direction=Direction.RAISES if effects[i, j] >= 0 else Direction.LOWERS)
            for j in order if abs(effects[i, j]) > 0
        ])
    return out
