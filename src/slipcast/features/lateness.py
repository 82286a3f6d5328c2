"""How milestones slip together: the correlation a program's Monte Carlo draws with.

Two milestones slip together more often than their own chances say when they share a team or a
period (a release crunch, an outage, the holidays). Both are read from the history's finished
milestones, known by as_of: each outcome is a latent normal crossing its team's slip rate (a
Gaussian copula), and the latent correlation of two milestones is ``team`` for one team's
consecutive milestones and ``period`` times the overlap of their spans for two teams'. Both are
fitted by maximum likelihood on the pairs' joint outcomes (docs/architecture.md, "Programs").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri, owens_t

from slipcast.features.timeline import NAT, Timelines, micros

RHO_GRID = np.linspace(0.0, 0.95, 20)
PRIOR_OUTCOMES = 5.0  # a team's slip rate is shrunk toward everyone's by this many outcomes
RECENT_DAYS = 365  # pairs are read from milestones whose outcomes became known in the last year
MIN_OVERLAP = 0.2  # two teams' milestones form a pair where their spans overlap at least this much


@dataclass(frozen=True)
class CoSlip:
    """The fitted latent correlations and the pairs each was fitted on."""

    team: float
    period: float
    team_pairs: int
    period_pairs: int


def overlap(start_a, end_a, start_b, end_b) -> np.ndarray:
    """How much two spans overlap: their common length over the geometric mean of their lengths
    (1 for one span, 0 for disjoint ones). As the inner product of two normalised indicators it
    makes a valid correlation matrix over any set of spans."""
    common = np.maximum(0.0, np.minimum(end_a, end_b) - np.maximum(start_a, start_b))
    return common / np.sqrt(np.maximum(end_a - start_a, 1e-9) * np.maximum(end_b - start_b, 1e-9))


def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """P(X <= h, Y <= k) for standard normals of correlation ``rho`` (Owen's T, vectorised)."""
    h = np.where(h == 0, 1e-12, h)
    k = np.where(k == 0, 1e-12, k)
    root = np.sqrt(1.0 - rho**2)
    a_h, a_k = (k - rho * h) / (h * root), (h - rho * k) / (k * root)
    beta = np.where(h * k > 0, 0.0, 0.5)
    return 0.5 * ndtr(h) + 0.5 * ndtr(k) - owens_t(h, a_h) - owens_t(k, a_k) - beta


def fit_correlation(p_a: np.ndarray, p_b: np.ndarray, slip_a: np.ndarray, slip_b: np.ndarray,
                    weight: np.ndarray, cap: float) -> float:
    """The latent correlation (times ``weight`` per pair) that makes pairs of outcomes with slip
    chances ``p_a``, ``p_b`` most likely, on a grid from 0 to ``cap``; 0 with no pairs."""
    if not len(p_a):
        return 0.0
    h, k = ndtri(1 - p_a), ndtri(1 - p_b)  # on time below the threshold
    grid = RHO_GRID[RHO_GRID <= cap]
    rho = np.minimum(grid[:, None] * weight[None, :], 0.999)
    both_on_time = bivariate_normal_cdf(h[None, :], k[None, :], rho)
    on_a, on_b = ndtr(h)[None, :], ndtr(k)[None, :]
    cell = np.where(slip_a == 1, np.where(slip_b == 1, 1 - on_a - on_b + both_on_time, on_b - both_on_time),
                    np.where(slip_b == 1, on_a - both_on_time, both_on_time))
    loglik = np.log(np.clip(cell, 1e-12, None)).sum(axis=1)
    return float(grid[int(np.argmax(loglik))])


def co_slip(tl: Timelines, outcomes: pd.DataFrame, t: int, cap: float, max_pairs: int = 5_000,
            seed: int = 0) -> CoSlip:
    """The team and period correlations from the outcomes known by ``t`` (µs) in the last
    ``RECENT_DAYS``; at most ``max_pairs`` pairs of two teams' milestones, drawn with ``seed``."""
    known_at = micros(outcomes["known_at"])
    recent = (known_at <= t) & (known_at > t - RECENT_DAYS * 86_400_000_000)
    frame = outcomes[recent]
    if "milestone" not in frame or frame.empty:
        return CoSlip(0.0, 0.0, 0, 0)
    m = frame["milestone"].to_numpy(np.int64)
    start = tl.milestone_start[m]
    end = tl.due.get("due", tl.due.find(m, known_at[recent]), NAT)
    ok = (start != NAT) & (end != NAT) & (end > start)
    frame, m, start, end = frame[ok], m[ok], start[ok].astype(np.float64), end[ok].astype(np.float64)
    slipped = frame["slipped"].to_numpy(np.float64)
    project = tl.milestone_project[m]
    everyone = float(slipped.mean()) if len(slipped) else 0.5
    counts = pd.Series(slipped).groupby(project).agg(["sum", "size"])
    rate = (counts["sum"] + PRIOR_OUTCOMES * everyone) / (counts["size"] + PRIOR_OUTCOMES)
    p = np.clip(rate.reindex(project).to_numpy(), 0.02, 0.98)

    order = np.lexsort((start, project))
    same = np.flatnonzero(project[order][1:] == project[order][:-1])
    a, b = order[same], order[same + 1]
    team = fit_correlation(p[a], p[b], slipped[a], slipped[b], np.ones(len(a)), cap)

    rng = np.random.default_rng(seed)
    n = len(m)
    i, j = (rng.integers(0, n, size=10 * max_pairs) if n else np.zeros(0, int) for _ in range(2))
    w = overlap(start[i], end[i], start[j], end[j])
    pair = (project[i] != project[j]) & (w >= MIN_OVERLAP) & (i < j)
    i, j, w = i[pair][:max_pairs], j[pair][:max_pairs], w[pair][:max_pairs]
    period = fit_correlation(p[i], p[j], slipped[i], slipped[j], w, cap)
    if team + period > cap:  # the copula needs team + period <= 1; both scaled down to the cap
        team, period = team * cap / (team + period), period * cap / (team + period)
    return CoSlip(team, period, len(a), len(i))
