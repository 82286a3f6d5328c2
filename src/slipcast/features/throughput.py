"""Team throughput before an as-of time, and the Monte Carlo forecast practitioners use."""

from __future__ import annotations

import numpy as np

from slipcast.features.timeline import DAY_US, NAT, Timelines, pick, shifted

WEEK_US = 7 * DAY_US


def weekly_throughput(project: np.ndarray, as_of: np.ndarray, tl: Timelines, weeks: int) -> np.ndarray:
    """Tickets the project finished in each of the ``weeks`` weeks before as_of: (n, weeks)."""
    cum = np.stack([tl.done.get("cum_done", tl.done.find(project, shifted(as_of, -WEEK_US * k)), 0.0)
                    for k in range(weeks + 1)], axis=1)  # column k: cumulative count k weeks back
    return cum[:, :-1] - cum[:, 1:]


def history_weeks(project: np.ndarray, as_of: np.ndarray, tl: Timelines, cap: int) -> np.ndarray:
    """Weeks between the project's first finished ticket and as_of (0 where none), capped at
    ``cap`` so that it does not depend on how far back a client's history reaches."""
    first = pick(tl.done.first_at(len(tl.projects)), project, NAT)
    known = (first != NAT) & (as_of != NAT)
    weeks = np.where(known, (as_of - first) / 1e6 / 86400 / 7, 0.0)
    return np.clip(weeks, 0, cap)


def monte_carlo_on_time(weekly: np.ndarray, remaining: np.ndarray, days_left: np.ndarray,
                        runs: int, seed: int, max_weeks: int, max_cells: int = 200_000) -> np.ndarray:
    """P(finish ``remaining`` tickets in ``days_left``), resampling past weeks' throughput.

    The simulation looks ``max_weeks`` ahead at most: for a milestone due later it is the
    chance of finishing within that horizon (a lower bound), so that one far-off due date
    cannot make a batch cost years of simulated weeks.

    Each run draws one past week per future week (the last one pro rata). The draws are common
    random numbers: the same for every row, generated week by week from ``seed``, so a row's
    value depends on its own history only, never on which rows share the batch. NaN where
    there is no throughput history at all.

    A run's whole weeks sum to the row's past weeks weighted by how often the run drew each:
    one matrix product for all rows and runs of a week count, not a gather of every drawn week.
    Whole weeks are counts, so that sum is exact; the last week's share is added in float64.
    """
    n, w = weekly.shape
    out = np.full(n, np.nan)
    unknown = np.isnan(days_left)
    weeks_left = np.where(unknown, 0.0, np.clip(days_left / 7.0, 0, max_weeks))
    horizon = int(np.ceil(weeks_left.max())) if n else 0
    if horizon == 0:
        return np.where(unknown, np.nan, np.where(remaining <= 0, 1.0, 0.0))
    picks = (np.random.default_rng(seed).random((horizon, runs)).T * w).astype(np.intp)  # (runs, horizon)
    drawn = np.stack([(picks == week).cumsum(axis=1) for week in range(w)]).astype(np.float64)  # (w, runs, horizon)
    # rows simulate only the weeks they need: grouped by that count (a far-off due date in a
    # batch does not make every row simulate its weeks); the first weeks' draws are the same
    need = np.ceil(weeks_left).astype(np.intp)
    for weeks in np.unique(need[need > 0]):
        rows = np.flatnonzero(need == weeks)
        # (w, runs): how often each run drew each past week in its whole weeks
        times = np.ascontiguousarray(drawn[:, :, weeks - 2]) if weeks > 1 else np.zeros((w, runs))
        last = picks[:, weeks - 1]
        share = weeks_left[rows] - (weeks - 1)
        chunk = max(1, max_cells // runs)
        for lo in range(0, len(rows), chunk):
            part = rows[lo:lo + chunk]
            past = weekly[part]
            finished = past @ times
            finished += past[:, last] * share[lo:lo + chunk, None]
            out[part] = np.count_nonzero(finished >= remaining[part, None], axis=1) / runs
    out[need == 0] = np.where(remaining[need == 0] <= 0, 1.0, 0.0)
    out[weekly.sum(axis=1) <= 0] = np.nan
    out[remaining <= 0] = 1.0
    out[unknown] = np.nan
    return out
