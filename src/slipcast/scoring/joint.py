"""The joint forecast of a program: a Monte Carlo over its open milestones' completion dates.

Each milestone's completion date is drawn from its own distribution (the served model's chance
of being done by each day, ``live.completion``); the draws of milestones that share a team or a
period are correlated through a Gaussian copula (``features.lateness``); a dependent cannot
finish before what it waits on, plus the lag the history shows; the program lands when every
milestone is done by its deadline, and is done when its last milestone is (docs/architecture.md,
"Programs"). Days count from as_of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr


@dataclass
class Members:
    """A program's open milestones as the Monte Carlo takes them (one row per milestone).

    ``days``: each milestone's grid (days after as_of, ascending; one row each) and ``done_by``: its
    chance of being done by each of them (non-decreasing); ``window``: the days from as_of to its due date (the period
    it shares with others, at least 1); ``deadline``: the day it must be done by; ``team``: a code
    per team."""

    ids: list[str]
    days: np.ndarray
    done_by: np.ndarray
    window: np.ndarray
    deadline: np.ndarray
    team: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Draws:
    """The drawn completion days, one row per milestone and one column per draw: each
    milestone's own (``own``), and after its blockers (``finish``), with the blocker that set it
    (``binder``, -1 where its own work did)."""

    own: np.ndarray
    finish: np.ndarray
    binder: np.ndarray
    late: np.ndarray  # per milestone and draw: done after its deadline


@dataclass
class Outcome:
    """What a program's draws say: the chance it lands, the days by which it is done with 50 %
    and 85 % chance, each milestone's criticality (the share of draws in which it sets the
    program's date, itself or through what waits on it), the critical path (the chain that sets
    it most often, first blocker first) and its share of draws."""

    chance: float
    done_50: float
    done_85: float
    criticality: np.ndarray
    critical_path: list[int]
    path_share: float


def latent(members: Members, team_rho: float, period_rho: float, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Correlated standard normals (milestones x draws): a shock per day shared by every
    milestone whose window holds it (``period_rho`` times the windows' overlap), one per team
    (``team_rho``), and each milestone's own."""
    m = len(members)
    window = np.clip(np.ceil(members.window).astype(np.int64), 1, None)
    # the shocks' running sum at each distinct window length: one normal per stretch between two
    # lengths, scaled to the stretch's days (the same law as a normal per day, summed)
    lengths, which = np.unique(window, return_inverse=True)
    stretch = np.sqrt(np.diff(lengths, prepend=0))[:, None]
    shared = (np.cumsum(stretch * rng.standard_normal((len(lengths), draws)), axis=0)[which]
              / np.sqrt(window)[:, None])  # every window starts at as_of
    teams, team = np.unique(members.team, return_inverse=True)
    by_team = rng.standard_normal((len(teams), draws))[team]
    own = rng.standard_normal((m, draws))
    rest = max(0.0, 1.0 - team_rho - period_rho)
    return np.sqrt(period_rho) * shared + np.sqrt(team_rho) * by_team + np.sqrt(rest) * own


def completion_days(members: Members, u: np.ndarray) -> np.ndarray:
    """Completion days from uniforms (milestones x draws) by each milestone's distribution:
    linear between grid days, from 0 at as_of; past the grid's last day (the chance it is not
    done by then), spread evenly over as many days again."""
    out = np.empty_like(u)
    for i in range(len(members)):
        grid = np.concatenate([[0.0], members.days[i].astype(np.float64)])
        cdf = np.maximum.accumulate(np.concatenate([[0.0], members.done_by[i]]))
        cdf = cdf + np.arange(len(cdf)) * 1e-12  # strictly increasing for interp
        top, last = cdf[-1], grid[-1]
        out[i] = np.interp(u[i], cdf, grid)
        beyond = u[i] > top
        out[i, beyond] = last * (1.0 + (u[i, beyond] - top) / max(1.0 - top, 1e-12))
    return out


def topological(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """The milestones in an order where every blocker comes before what waits on it (``edges``:
    (blocker, dependent) positions, acyclic)."""
    waits = [0] * n
    after: list[list[int]] = [[] for _ in range(n)]
    for b, d in edges:
        waits[d] += 1
        after[b].append(d)
    ready = [i for i in range(n) if waits[i] == 0]
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for d in after[i]:
            waits[d] -= 1
            if waits[d] == 0:
                ready.append(d)
    return order


def _blockers(edges: list[tuple[int, int]]) -> dict[int, np.ndarray]:
    out: dict[int, list[int]] = {}
    for b, d in edges:
        out.setdefault(d, []).append(b)
    return {d: np.asarray(bs) for d, bs in out.items()}


def _carry(finish: np.ndarray, binder: np.ndarray, blockers: dict[int, np.ndarray], order, lag: float) -> None:
    """Move each milestone of ``order`` (blockers first) to its latest blocker's day + ``lag``
    where that is later, in place."""
    for d in order:
        bs = blockers.get(d)
        if bs is None:
            continue
        candidate = finish[bs] + lag
        j = np.argmax(candidate, axis=0)
        latest = np.take_along_axis(candidate, j[None, :], axis=0)[0]
        bound = latest > finish[d]
        finish[d] = np.where(bound, latest, finish[d])
        binder[d] = np.where(bound, bs[j], -1)


def propagate(own: np.ndarray, edges: list[tuple[int, int]], lag: float) -> tuple[np.ndarray, np.ndarray]:
    """Each milestone's completion day (rows) once its blockers are done (blocker's day + ``lag``
    where later than its own), and the blocker that set it (-1 where its own work did)."""
    finish = own.copy()
    binder = np.full(own.shape, -1, dtype=np.int64)
    _carry(finish, binder, _blockers(edges), topological(own.shape[0], edges), lag)
    return finish, binder


def simulate(members: Members, edges: list[tuple[int, int]], lag: float, team_rho: float, period_rho: float,
             draws: int, seed: int) -> Draws:
    """The program's Monte Carlo: ``draws`` correlated completion days per milestone, carried
    along ``edges`` ((blocker, dependent) positions, acyclic)."""
    rng = np.random.default_rng(seed)
    own = completion_days(members, ndtr(latent(members, team_rho, period_rho, draws, rng)))
    finish, binder = propagate(own, edges, lag)
    return Draws(own, finish, binder, finish > members.deadline[:, None])


def outcome(members: Members, draws: Draws) -> Outcome:
    """The chance, dates, criticality and critical path of a program's draws."""
    finish, binder = draws.finish, draws.binder
    m, n = finish.shape
    cols = np.arange(n)
    current = np.argmax(finish, axis=0)
    active = np.ones(n, dtype=bool)
    on_path = np.zeros((m, n), dtype=bool)
    chains: list[np.ndarray] = []
    for _ in range(m):  # a chain is at most every milestone long
        on_path[current[active], cols[active]] = True
        chains.append(np.where(active, current, -1))
        nxt = binder[current, cols]
        active &= nxt >= 0
        if not active.any():
            break
        current = np.where(active, nxt, current)
    stacked = np.stack(chains, axis=1)
    # each draw's chain as one number (a polynomial in its positions, wrapping round 2**64), so the
    # most frequent chain is found by sorting numbers, not rows
    key = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in stacked.T:
            key = key * np.uint64(m + 2) + (column + 1).astype(np.uint64)
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    best = stacked[first[int(np.argmax(counts))]]
    done = finish.max(axis=0)
    return Outcome(chance=float(1 - draws.late.any(axis=0).mean()), done_50=float(np.quantile(done, 0.5)),
                   done_85=float(np.quantile(done, 0.85)), criticality=on_path.mean(axis=1),
                   critical_path=[int(i) for i in reversed(best) if i >= 0], path_share=float(counts.max() / n))


def descendants(n: int, edges: list[tuple[int, int]], start: int) -> list[int]:
    """``start`` and everything that waits on it, directly or not, blockers first."""
    after: dict[int, list[int]] = {}
    for b, d in edges:
        after.setdefault(b, []).append(d)
    seen, stack = {start}, [start]
    while stack:
        for d in after.get(stack.pop(), []):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return [i for i in topological(n, edges) if i in seen]


def slip(members: Members, draws: Draws, edges: list[tuple[int, int]], lag: float,
         days: Mapping[int, float]) -> Draws:
    """The same draws with milestones' own work finishing later than drawn (``days``: position
    -> days later; negative: sooner), what waits on them moving with them."""
    own = draws.own.copy()
    for milestone, later in days.items():
        own[milestone] += later
    finish, binder = propagate(own, edges, lag)
    return Draws(own, finish, binder, finish > members.deadline[:, None])


def ripple(members: Members, draws: Draws, edges: list[tuple[int, int]], lag: float, milestone: int,
           days: float) -> float:
    """The program's chance if ``milestone``'s own work finishes ``days`` later than drawn, with
    the same draws (as ``slip``): only it and what waits on it are carried again."""
    moved = descendants(len(members), edges, milestone)
    blockers = _blockers(edges)
    new: dict[int, np.ndarray] = {}
    for d in moved:  # blockers first: each takes its blockers' new days where they moved
        own = draws.own[d] + days if d == milestone else draws.own[d]
        bs = blockers.get(d)
        if bs is None:
            new[d] = own
            continue
        latest = np.max([new[b] if b in new else draws.finish[b] for b in bs], axis=0) + lag
        new[d] = np.maximum(own, latest)
    late = draws.late.sum(axis=0) - draws.late[np.asarray(moved)].sum(axis=0)  # the others' late milestones
    for d, finish in new.items():
        late += finish > members.deadline[d]
    return float(np.mean(late == 0))
