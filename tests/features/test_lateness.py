"""How milestones slip together: the bivariate normal, the fitted latent correlation and the
overlap of spans."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from slipcast.features.lateness import bivariate_normal_cdf, fit_correlation, overlap


@pytest.mark.parametrize("h, k, rho", [(0.3, -1.2, 0.5), (-0.7, -0.2, 0.1), (1.5, 0.8, 0.9), (0.0, 0.4, 0.3)])
def test_bivariate_normal_cdf_matches_scipy(h, k, rho):
    expected = multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([h, k])
    assert bivariate_normal_cdf(np.array([h]), np.array([k]), np.array([rho]))[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6])
def test_the_planted_correlation_is_recovered(rho):
    rng = np.random.default_rng(7)
    n = 6000
    p_a, p_b = rng.uniform(0.2, 0.7, n), rng.uniform(0.2, 0.7, n)
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=n)
    slip_a = (z[:, 0] > np.quantile(rng.standard_normal(10**6), 1 - p_a)).astype(float)
    slip_b = (z[:, 1] > np.quantile(rng.standard_normal(10**6), 1 - p_b)).astype(float)
    assert fit_correlation(p_a, p_b, slip_a, slip_b, np.ones(n), cap=0.95) == pytest.approx(rho, abs=0.08)


def test_overlap_of_spans():
    assert overlap(0.0, 10.0, 0.0, 10.0) == pytest.approx(1.0)
    assert overlap(0.0, 10.0, 10.0, 20.0) == 0.0
    assert overlap(0.0, 10.0, 0.0, 40.0) == pytest.approx(10 / 20)
    spans = np.array([[0, 10], [5, 30], [20, 25], [0, 40]], dtype=float)
    matrix = overlap(spans[:, None, 0], spans[:, None, 1], spans[None, :, 0], spans[None, :, 1])
    assert np.linalg.eigvalsh(matrix).min() > -1e-9  # a valid correlation structure
