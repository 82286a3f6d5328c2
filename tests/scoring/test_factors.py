"""Factors: the catalogue places every feature once, and a served forecast's factors say what
setting each of them to typical does (a property over the trained store's milestones)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from slipcast.core.vocabulary import Basis
from slipcast.features.milestone_features import FACTORS, MILESTONE_FEATURES, TWINS
from slipcast.features.store_history import History
from slipcast.scoring.explain import typical_values
from slipcast.scoring.forecast import forecasts_of, guard
from slipcast.scoring.model_store import ModelStore
from slipcast.scoring.reasons import sentence


def test_every_feature_sits_in_one_factor_and_twins_in_the_same():
    placed = [name for names in FACTORS.values() for name in names]
    assert sorted(placed) == sorted(MILESTONE_FEATURES)
    for pair in TWINS:
        assert len({f for f, names in FACTORS.items() if set(pair) & set(names)}) == 1, pair


def test_a_sentence_carries_the_numbers():
    values = {"scope_count": 17.0, "scope_added_since_start": 7.0, "scope_removed_since_start": 0.0}
    said = sentence("scope_change", values, {"scope_added_since_start": 1.0}, 0.123)
    assert said == ("Scope change: 7 tickets (+70 %) added and 0 removed since the start; a typical milestone "
                    "adds 1 (+12 points, raises risk).")
    assert sentence("dependencies", {"open_cross_team_dependencies": 2.0, "blocked_count": 3.0}, {}, -0.02) == (
        "Dependencies: 2 tickets wait on other teams' open work and 3 are blocked (-2 points, lowers risk).")


@given(pick=st.integers(min_value=0, max_value=10**6))
@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_setting_a_shown_factor_to_typical_moves_the_served_forecast_as_stated(trained, pick):
    settings, tables = trained["settings"], trained["tables"]
    history = _history(tables, settings)
    store = ModelStore(settings, targets=("milestone",))
    store.refresh()
    loaded = store.get("milestone")
    rows = trained["sets"]["milestone"]
    row = rows.iloc[pick % len(rows)]
    who, feats, _ = history.features([row["milestone_id"]], [row["as_of"]])
    (forecast,) = forecasts_of([row["milestone_id"]], list(who["project"]), [row["as_of"]], feats,
                               np.arange(1), loaded, settings)
    if forecast.basis != Basis.MODEL:
        assert forecast.factors == [] and forecast.reason is None
        return
    typical = typical_values(loaded)
    inputs = loaded.inputs(feats)

    def served(names) -> float:
        moved = {n: (np.array([typical.get(n)], dtype=c.dtype) if n in names else c) for n, c in inputs.items()}
        return float(guard(loaded, moved["span_elapsed"], list(who["project"])).served(
            loaded.predict(loaded.frame(moved)))[0])

    for factor in forecast.factors:
        moved = served(FACTORS[factor.factor])
        assert abs((forecast.probability - moved) - factor.effect) <= 2e-4, factor
        assert (moved <= forecast.probability + 1e-4) == (factor.direction == "raises risk"), factor
    assert abs(sum(f.effect for f in forecast.factors) + forecast.remainder
               - (forecast.probability - forecast.typical_probability)) <= 5e-4


_histories: dict[int, History] = {}


def _history(tables, settings) -> History:
    """The trained store's history, coded once for every example."""
    if id(tables) not in _histories:
        _histories[id(tables)] = History(tables, settings.features)
    return _histories[id(tables)]


def test_typical_is_a_real_row(trained):
    store = ModelStore(trained["settings"], targets=("milestone",))
    store.refresh()
    typical = store.get("milestone").metadata["typical"]
    frame = trained["sets"]["milestone"]
    match = np.ones(len(frame), dtype=bool)
    for name, value in typical.items():
        column = frame[name]
        match &= column.isna().to_numpy() if value is None else (column == value).to_numpy()
    assert match.any()
    assert pd.notna(typical["done_share"])
