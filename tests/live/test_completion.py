"""Completion chances shaped for a program's Monte Carlo: the served level, the model's timing."""

import numpy as np

from slipcast.live.completion import shaped


def test_a_guarded_flat_curve_takes_the_models_shape_at_the_served_level():
    own = np.array([[0.1, 0.4, 0.8, 0.95]])
    served = np.array([[0.3, 0.3, 0.3, 0.3]])  # the base rate, whatever the day
    out = shaped(served, own, np.array([1]))
    assert out[0, 1] == served[0, 1]  # at the deadline: what the service says
    assert np.allclose(out[0], [0.075, 0.3, 0.6, 0.7125])  # before and after: the model's timing
    assert (np.diff(out[0]) >= 0).all()


def test_a_row_the_guard_leaves_alone_is_unchanged():
    own = np.array([[0.2, 0.5, 0.9], [0.0, 0.0, 0.0]])
    served = np.array([[0.2, 0.5, 0.9], [0.1, 0.1, 0.1]])
    out = shaped(served, own, np.array([2, 1]))
    assert np.array_equal(out[0], own[0])
    assert np.array_equal(out[1], served[1])  # no model curve to shape: the served one
