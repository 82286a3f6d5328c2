"""When a milestone will be done: the served model's chance of being done by each of a grid of
days, asked by moving its due date there now, as the what-if endpoint does.

"When" (``portfolio.when_done``) reads its dates off these chances, and a program's Monte Carlo
(``live.programs``) draws completion dates from them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import numpy as np

from slipcast.features.store_history import History
from slipcast.scoring.forecast import guard
from slipcast.scoring.model_store import LoadedModel


def done_chances(history: History, milestones: Sequence[str], as_of: datetime | Sequence[datetime],
                 model: LoadedModel, days, removed: Sequence[Collection[str]] | None = None) -> np.ndarray:
    """The served chances of ``completion_curves``."""
    return completion_curves(history, milestones, as_of, model, days, removed)[0]


def completion_curves(history: History, milestones: Sequence[str], as_of: datetime | Sequence[datetime],
                      model: LoadedModel, days, removed: Sequence[Collection[str]] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """For each milestone (rows) and day after ``as_of`` (columns; ``days`` one grid for all, or
    a grid per milestone; ``as_of`` one time for all, or one per milestone), the chance it is done
    by then: one minus the served probability of slipping with its due date moved there at as_of
    (all milestones and days in one prediction; where the moved date falls in a guarded horizon,
    the base rate, as the service would say). ``removed``: per milestone, tickets taken out of its
    scope at as_of first (``History.features``), as the what-if endpoint's ``remove_tickets``. A
    later day never gets a lower chance than an earlier one (the running maximum over each grid,
    which runs in time order). Beside them, the model's own chances (before the skill guard)."""
    n = len(milestones)
    days = np.broadcast_to(np.asarray(days, dtype=np.float64), (n, np.shape(days)[-1]))
    if not n:
        return np.zeros(days.shape), np.zeros(days.shape)
    k = days.shape[1]
    times = [as_of] * n if isinstance(as_of, datetime) else list(as_of)
    at = [t for t in times for _ in range(k)]
    dues = [t + timedelta(days=float(d)) for t, d in zip(at, days.ravel())]
    cut = None if removed is None else [r for r in removed for _ in range(k)]
    who, feats, _ = history.features(np.repeat(np.asarray(milestones, dtype=object), k), at, dues, cut)
    own = model.predict(model.frame(feats))
    served = guard(model, feats["span_elapsed"], who["project"]).served(own)
    return tuple(np.maximum.accumulate((1 - p).reshape(n, k), axis=1) for p in (served, own))  # type: ignore[return-value]


def shaped(served: np.ndarray, own: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Completion chances with the served level and the model's timing: each row of the model's
    own chances scaled to the served chance at its column ``at`` (the deadline). Where the skill
    guard serves the base rate the served chances are flat, which would say the milestone is never
    more likely done later; the model's curve keeps its shape, its level is the guard's. A row
    the guard leaves alone is unchanged."""
    rows = np.arange(len(served))
    level, mine = served[rows, at], own[rows, at]
    scale = np.divide(level, mine, out=np.ones_like(level), where=mine > 0)
    out = np.where((mine > 0)[:, None], np.clip(own * scale[:, None], 0.0, 1.0), served)
    return np.maximum.accumulate(out, axis=1)
