"""Why a forecast says what it says: factors a program manager recognises, and the features
under them.

A typical milestone (a real training row, ``metadata["typical"]``; the per-feature medians for a
model exported before it existed) is the reference. A factor's effect is this forecast minus the
served forecast with all of the factor's features set together to the typical milestone's values
(``features.milestone_features.FACTORS``); the effects plus a stated remainder add up to this
forecast minus the typical milestone's. Under each factor, each feature's effect is measured the
same way, a feature and its twin (counts and points) together, so they never show opposite
signs. Everything rides along in the forecast's own prediction and works for any model
(docs/features.md, "Factors").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slipcast.core.vocabulary import Direction
from slipcast.features.milestone_features import FACTORS, TWINS
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.reasons import remainder_sentence, sentence
from slipcast.scoring.records import Driver, Factor

OTHER = "other"  # the factor of a model feature the catalogue does not place
SHOWN_EFFECT = 0.005  # a factor moving the forecast by less than half a point is not put in words
SHOWN_REMAINDER = 0.05  # the remainder is put in words from 5 points


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value) if isinstance(value, (int, float, np.floating)) else str(value)


def plain_columns(inputs: dict[str, np.ndarray]) -> dict[str, list]:
    """Model inputs as JSON-ready Python values, column by column (NaN as None)."""
    out = {}
    for name, column in inputs.items():
        values = np.asarray(column)
        if values.dtype.kind == "f":  # as objects, numbers are Python floats
            plain = values.astype(object)
            plain[np.isnan(values)] = None
            out[name] = plain.tolist()
        else:
            out[name] = [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]
    return out


def typical_values(loaded: LoadedModel) -> dict:
    """The typical milestone's value of each feature."""
    return loaded.metadata.get("typical") or loaded.metadata["reference"]


def factors_of(features: list[str]) -> dict[str, list[tuple[str, ...]]]:
    """Each factor's units among ``features`` (a twin pair, or one feature), in the catalogue's order."""
    twin = {name: pair for pair in TWINS for name in pair}
    placed = {name: factor for factor, names in FACTORS.items() for name in names}
    out: dict[str, list[tuple[str, ...]]] = {}
    for name in features:
        unit = tuple(n for n in twin.get(name, (name,)) if n in features)
        units = out.setdefault(placed.get(name, OTHER), [])
        if unit not in units:
            units.append(unit)
    return out


@dataclass
class Plan:
    """The rows scored beside the forecasts: per explained row (``rows``), each factor, each of
    its units and the whole typical milestone, set to typical where that changes something."""

    rows: np.ndarray
    owner: np.ndarray  # per extra row: its position in ``rows``
    reset: list[tuple[str, ...]]  # per extra row: the features set to typical
    columns: dict[str, np.ndarray]


def _differs(values: np.ndarray, typical) -> np.ndarray:
    """Which ``values`` are not ``typical`` (a missing value is the typical one where that is missing)."""
    if values.dtype.kind == "f":
        if typical is None or (isinstance(typical, float) and np.isnan(typical)):
            return ~np.isnan(values)
        return values != typical
    return np.array([v != typical for v in values.tolist()], dtype=bool)


def plan(loaded: LoadedModel, inputs: dict[str, np.ndarray], rows: np.ndarray) -> Plan:
    """The variations of ``rows`` that their explanations need, as columns for one prediction."""
    typical = typical_values(loaded)
    names = loaded.features
    differs = {name: _differs(inputs[name][rows], typical.get(name)) for name in names}
    resets: list[tuple[str, ...]] = [tuple(names)]
    for units in factors_of(names).values():
        resets.append(tuple(n for unit in units for n in unit))
        if len(units) > 1:  # a factor of one unit: the unit's effect is the factor's
            resets += units
    owner, reset = [], []
    for i in range(len(rows)):
        for r in resets:
            if any(differs[n][i] for n in r):
                owner.append(i)
                reset.append(r)
    owner_arr = np.asarray(owner, dtype=np.intp)
    columns = {}
    for name in names:
        column = inputs[name][rows[owner_arr]]
        at = np.asarray([name in r for r in reset], dtype=bool)
        value = typical.get(name)
        column[at] = np.nan if value is None and column.dtype.kind == "f" else value
        columns[name] = column
    return Plan(rows, owner_arr, reset, columns)


@dataclass
class Why:
    """One forecast explained: its factors (largest first, each with its features' effects),
    the top features overall, the typical milestone's probability and what the factors leave."""

    factors: list[Factor]
    drivers: list[Driver]
    typical_probability: float
    remainder: float

    @property
    def reason(self) -> str | None:
        """The factors that move the forecast, in words, and the remainder where it is large."""
        shown = [f.sentence for f in self.factors if abs(f.effect) >= SHOWN_EFFECT]
        if abs(self.remainder) >= SHOWN_REMAINDER:
            shown.append(remainder_sentence(self.remainder))
        return " ".join(shown) or None


def explanations(loaded: LoadedModel, inputs: dict[str, np.ndarray], the_plan: Plan, probabilities: np.ndarray,
            varied: np.ndarray, top: int) -> list[Why]:
    """Each explained row's ``Why``: ``probabilities`` are the rows' own, ``varied`` the served
    probabilities of the plan's extra rows (a variation into a guarded horizon gets the base rate,
    as the service would answer it)."""
    typical = typical_values(loaded)
    names = loaded.features
    groups = factors_of(names)
    everything = tuple(names)
    effects: list[dict[tuple[str, ...], float]] = [{} for _ in the_plan.rows]
    for i, r, q in zip(the_plan.owner, the_plan.reset, varied):
        effects[i][r] = float(probabilities[i] - q)
    out = []
    for i, row in enumerate(the_plan.rows):
        mine = effects[i]
        values = {n: _plain(inputs[n][row]) for n in names}
        factors, units = [], []
        for factor, members in groups.items():
            whole = tuple(n for unit in members for n in unit)
            effect = round(mine.get(whole, 0.0), 4)
            unit_effects = [effect if len(members) == 1 else round(mine.get(unit, 0.0), 4) for unit in members]
            detail = [Driver(feature=n, value=values[n], reference=_plain(typical.get(n)), effect=e,
                             direction=_direction(e)) for unit, e in zip(members, unit_effects) for n in unit]
            detail = sorted((d for d in detail if d.effect != 0), key=lambda d: -abs(d.effect))
            units += detail
            factors.append(Factor(factor=factor, effect=effect, direction=_direction(effect),
                                  sentence=sentence(factor, values, typical, effect), drivers=detail))
        factors.sort(key=lambda f: -abs(f.effect))
        at_typical = float(probabilities[i]) - mine.get(everything, 0.0)
        remainder = float(probabilities[i]) - at_typical - sum(f.effect for f in factors)
        out.append(Why(factors=[f for f in factors if f.effect != 0],
                       drivers=sorted(units, key=lambda d: -abs(d.effect))[:top],
                       typical_probability=round(at_typical, 4), remainder=round(remainder, 4)))
    return out


def _direction(effect: float) -> Direction:
    return Direction.RAISES if effect >= 0 else Direction.LOWERS
