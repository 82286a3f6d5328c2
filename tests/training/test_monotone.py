"""Gradient boosting held monotone where the domain fixes the direction (docs/features.md,
"Monotone features"), and the report's check of it."""

import numpy as np
import pandas as pd

from slipcast.core.settings import get_settings
from slipcast.features.milestone_features import MONOTONE
from slipcast.training.candidates import make_candidate, monotone_constraints
from slipcast.training.report import against_domain


def _wiggly(n: int = 6000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Milestones whose chance of slipping falls with done_share overall but wiggles against it:
    a free model learns the wiggles, a monotone one cannot."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"done_share": rng.uniform(0, 1, n), "days_left": rng.uniform(0, 60, n),
                      "bug_share": rng.uniform(0, 1, n), "kind": rng.choice(["release", "sprint"], n)})
    p = 0.75 - 0.4 * X["done_share"] + 0.2 * np.sin(25 * X["done_share"]) - 0.003 * X["days_left"]
    return X, (rng.uniform(size=n) < p.clip(0.02, 0.98)).astype(int)


def test_constraints_follow_the_catalogue_and_leave_other_columns_free():
    cst = monotone_constraints(["done_share", "bug_share", "days_left", "remaining_count"], ["kind"])
    assert cst == [0, MONOTONE["done_share"], 0, MONOTONE["days_left"], MONOTONE["remaining_count"]]
    assert cst[1] == -1 and cst[4] == 1  # more done lowers risk, more work left raises it


def test_boosting_is_monotone_only_when_asked_and_the_check_sees_it():
    X, y = _wiggly()
    numeric, categorical = ["done_share", "days_left", "bug_share"], ["kind"]
    settings = get_settings().training
    free = make_candidate("gradient_boosting", numeric, categorical,
                          settings.model_copy(update={"monotone": False})).fit(X, y)
    held = make_candidate("gradient_boosting", numeric, categorical,
                          settings.model_copy(update={"monotone": True})).fit(X, y)
    features = list(X.columns)
    free_against, held_against = against_domain(free, X, features), against_domain(held, X, features)
    assert set(held_against) == {"done_share", "days_left"}  # bug_share has no fixed direction
    assert held_against == {"done_share": 0.0, "days_left": 0.0}
    assert free_against["done_share"] > 0.05  # the free model follows the wiggles

    # along a grid of done_share the held model never rises
    grid = X.iloc[:1].loc[[X.index[0]] * 50].assign(done_share=np.linspace(0, 1, 50))
    assert np.all(np.diff(held.predict_proba(grid)[:, 1]) <= 1e-12)
    assert np.any(np.diff(free.predict_proba(grid)[:, 1]) > 0.005)


def test_a_tickets_model_is_free():
    """A ticket still open in a mostly done milestone is a straggler: its model is not held."""
    assert monotone_constraints(["done_share", "ticket_age_days"], []) == [0, 0]
    X, y = _wiggly()
    X["ticket_age_days"] = np.arange(len(X), dtype=float)
    model = make_candidate("gradient_boosting", ["done_share", "days_left", "ticket_age_days"], ["kind"],
                           get_settings().training).fit(X, y)
    assert against_domain(model, X, list(X.columns)) == {}
