"""The program Monte Carlo on planted distributions: slips carried along dependencies,
correlation, criticality, the critical path and the ripple."""

from __future__ import annotations

import numpy as np
import pytest

from slipcast.scoring.joint import Members, outcome, propagate, ripple, simulate, topological

DAYS = np.arange(1.0, 61.0)


def uniform_done_by(lo: float, hi: float) -> np.ndarray:
    """Done at a day drawn uniformly from (lo, hi)."""
    return np.clip((DAYS - lo) / (hi - lo), 0, 1)


def members(*ranges, deadline=(30.0,), team=None) -> Members:
    m = len(ranges)
    return Members(ids=[f"M{i}" for i in range(m)], days=np.tile(DAYS, (m, 1)),
                   done_by=np.stack([uniform_done_by(lo, hi) for lo, hi in ranges]),
                   window=np.full(m, 30.0), deadline=np.broadcast_to(np.asarray(deadline, float), (m,)).copy(),
                   team=np.arange(m) if team is None else np.asarray(team))


def test_draws_follow_each_milestones_distribution():
    ms = members((10, 20), (0, 40))
    d = simulate(ms, [], lag=0.0, team_rho=0.0, period_rho=0.0, draws=20_000, seed=1)
    assert d.own[0].min() >= 10 - 1e-6 and d.own[0].max() <= 20 + 1e-6
    assert np.mean(d.own[1] <= 30) == pytest.approx(0.75, abs=0.02)
    assert outcome(ms, d).chance == pytest.approx(0.75, abs=0.02)  # M0 always on time


def test_a_blocker_that_slips_moves_its_dependent():
    ms = members((20, 40), (5, 10))  # the dependent alone is always done by day 10
    alone = simulate(ms, [], lag=2.0, team_rho=0.0, period_rho=0.0, draws=10_000, seed=2)
    joined = simulate(ms, [(0, 1)], lag=2.0, team_rho=0.0, period_rho=0.0, draws=10_000, seed=2)
    assert (joined.finish[1] >= joined.finish[0] + 2.0 - 1e-9).all()
    assert (joined.binder[1] == 0).all()  # its blocker always set its date
    assert np.mean(alone.finish[1] <= 30) == 1.0
    assert np.mean(joined.finish[1] <= 30) == pytest.approx(np.mean(joined.own[0] <= 28), abs=1e-9)


def test_propagation_runs_through_chains_in_topological_order():
    own = np.array([[10.0], [1.0], [1.0]])  # one draw
    finish, binder = propagate(own, [(1, 2), (0, 1)], lag=1.0)
    assert finish.ravel().tolist() == [10.0, 11.0, 12.0] and binder.ravel().tolist() == [-1, 0, 1]
    assert topological(3, [(1, 2), (0, 1)]).index(0) < topological(3, [(1, 2), (0, 1)]).index(1)


def test_shared_shocks_make_all_on_time_likelier_than_independence_says():
    ms = members((10, 50), (10, 50), (10, 50))
    independent = simulate(ms, [], 0.0, 0.0, 0.0, 40_000, 3)
    shared = simulate(ms, [], 0.0, 0.0, 0.7, 40_000, 3)
    product = np.prod([np.mean(independent.own[i] <= 30) for i in range(3)])
    assert outcome(ms, independent).chance == pytest.approx(product, abs=0.01)
    assert outcome(ms, shared).chance > product + 0.05
    assert np.corrcoef(shared.own[0], shared.own[1])[0, 1] > 0.5
    # the marginals stay what each milestone's own forecast says
    assert np.mean(shared.own[0] <= 30) == pytest.approx(0.5, abs=0.02)


def test_criticality_and_the_critical_path():
    ms = members((30, 50), (1, 5), (1, 5))  # M0 always last; M1 waits on M0; M2 alone
    d = simulate(ms, [(0, 1)], lag=1.0, team_rho=0.0, period_rho=0.0, draws=5_000, seed=4)
    result = outcome(ms, d)
    assert result.critical_path == [0, 1] and result.path_share == 1.0
    assert result.criticality.tolist() == [1.0, 1.0, 0.0]
    assert result.done_50 == pytest.approx(41.0, abs=1.0)


def test_the_ripple_of_one_slip():
    ms = members((10, 30), (10, 30), deadline=(30.0,))
    d = simulate(ms, [(0, 1)], lag=0.0, team_rho=0.0, period_rho=0.0, draws=10_000, seed=5)
    before = outcome(ms, d).chance
    after = ripple(ms, d, [(0, 1)], 0.0, milestone=0, days=10.0)
    assert before == 1.0 and after == pytest.approx(0.5, abs=0.03)  # M0 and so M1 late when M0 is past day 20
    assert ripple(ms, d, [(0, 1)], 0.0, milestone=1, days=0.0) == before


def test_the_mass_past_the_grid_is_drawn_past_it():
    ms = members((10, 200))  # a third of the mass within the 60-day grid
    d = simulate(ms, [], 0.0, 0.0, 0.0, 20_000, 6)
    assert np.mean(d.own[0] > 60) == pytest.approx(1 - 50 / 190, abs=0.02)
