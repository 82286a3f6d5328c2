"""When a milestone will be done: the served model's chance of being done by each of a grid of
days, asked by moving its due date there now, as the what-if endpoint does.

"When" (``portfolio.when_done``) reads its dates off these chances, and a program's Monte Carlo
(``live.programs``) draws completion dates from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np

from slipcast.features.store_history import History
from slipcast.scoring.forecast import guard
from slipcast.scoring.model_store import LoadedModel


def done_chances(history: History, milestones: Sequence[str], as_of: datetime, model: LoadedModel,
                 days) -> np.ndarray:
    """For each milestone (rows) and day after ``as_of`` (columns; ``days`` one grid for all, or
    a grid per milestone), the chance it is done by then: one minus the served probability of
    slipping with its due date moved there at as_of (all milestones and days in one prediction;
    where the moved date falls in a guarded horizon, the base rate, as the service would say). A
    later day never gets a lower chance than an earlier one (the running maximum over each grid,
    which runs in time order)."""
    n = len(milestones)
    days = np.broadcast_to(np.asarray(days, dtype=np.float64), (n, np.shape(days)[-1]))
    if not n:
        return np.zeros(days.shape)
    k = days.shape[1]
    dues = [as_of + timedelta(days=float(d)) for d in days.ravel()]
    who, feats, _ = history.features(np.repeat(np.asarray(milestones, dtype=object), k), [as_of] * (n * k), dues)
    p = guard(model, feats["span_elapsed"], who["project"]).served(model.predict(model.frame(feats)))
    return np.maximum.accumulate((1 - p).reshape(n, k), axis=1)
