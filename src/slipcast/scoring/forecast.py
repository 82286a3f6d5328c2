"""Forecasts from feature rows: the model's probability, or the base rate where the skill guard
holds, with the forecast's status, band and drivers.

``served`` is the one rule for what probability the service gives a row (docs/architecture.md,
"The skill guard"): single forecasts, batches, the portfolio, its tickets and "when" all take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from slipcast.core.contracts import horizons_of, served_base_rate
from slipcast.core.settings import Settings
from slipcast.core.vocabulary import Basis, ForecastStatus
from slipcast.scoring.explain import explanations, plain_columns, plan
from slipcast.scoring.model_store import LoadedModel
from slipcast.scoring.records import Forecast, ModelRef, TicketForecast


def band(p: float, bands: dict[str, float]) -> str:
    """The highest risk band whose lower bound ``p`` reaches."""
    return max(((lo, name) for name, lo in bands.items() if p >= lo), default=(0, "low"))[1]


def model_ref(loaded: LoadedModel) -> ModelRef:
    meta = loaded.metadata
    return ModelRef(name=meta.get("model_name", ""), version=loaded.version, run_id=meta.get("run_id"),
                    candidate=meta.get("candidate"), source=loaded.source)


def guarded_cells(loaded: LoadedModel, span_elapsed, projects) -> tuple[list[str | None], list[dict | None]]:
    """For each row (its share of the span elapsed, its project): its horizon bucket, and the
    model's skill-guard cell where the model does not beat the base rate there
    (docs/architecture.md, "The skill guard"), None where the model serves. The project's own
    cell decides where it has one, else the pooled cell. A model exported before the guard
    existed has none."""
    horizons = horizons_of(span_elapsed)
    keys = list(zip(horizons, projects))
    cells = {key: guarded_cell(loaded, *key) for key in set(keys)}  # a few cells for many rows
    return horizons, [cells[key] for key in keys]


def guarded_cell(loaded: LoadedModel, horizon: str | None, project: str | None = None) -> dict | None:
    """The skill-guard cell of one horizon bucket and project (``guarded_cells``)."""
    cell = loaded.metadata.get("project_guard", {}).get(project or "", {}).get(horizon or "")
    if cell is None:
        cell = loaded.metadata.get("guard", {}).get(horizon or "")
    return cell if cell is not None and cell["guarded"] else None


@dataclass
class Guard:
    """The skill guard over a set of rows: each row's horizon bucket and guard cell (None where
    the model serves), whether it is guarded, and the base rate served there with what it is
    (the whole history's or the recent one)."""

    horizons: list[str | None]
    cells: list[dict | None]
    guarded: np.ndarray
    rate: float
    rate_basis: str

    def served(self, p: np.ndarray) -> np.ndarray:
        """The probabilities served for rows the model gave ``p``: the base rate where guarded."""
        return np.where(self.guarded, self.rate, p)

    def basis(self, i: int) -> Basis:
        return Basis.BASE_RATE if self.guarded[i] else Basis.MODEL


def guard(loaded: LoadedModel, span_elapsed, projects) -> Guard:
    """The skill guard of ``loaded`` over rows with these shares of the span elapsed and projects:
    the one rule for what the service serves, for single forecasts, batches, the portfolio, its
    tickets and "when" alike."""
    horizons, cells = guarded_cells(loaded, span_elapsed, projects)
    rate, rate_basis = served_base_rate(loaded.metadata)
    return Guard(horizons, cells, np.array([cell is not None for cell in cells], dtype=bool), rate, rate_basis)


def final_state_caveat(loaded: LoadedModel) -> list[str]:
    """What every answer of a model trained on an export of final states only says (none for a
    point-in-time model)."""
    if loaded.metadata.get("point_in_time", True):
        return []
    return ["trained on an export that holds no history (final states only): not point in time, accepted by "
            "--accept-final-state"]


def forecastable(feats: dict[str, np.ndarray], settings: Settings) -> np.ndarray:
    """Which rows get a probability: not past due, something committed, and at least
    ``features.min_history_weeks`` of the team's finished work (the others get a status and a
    message instead, ``forecasts_of``)."""
    return ((np.asarray(feats["days_left"]) > 0) & (np.asarray(feats["scope_count"]) > 0)
            & (np.asarray(feats["history_weeks"]) >= settings.features.min_history_weeks))


def forecasts_of(ids: list[str], projects: list[str], as_ofs: list[datetime], feats: dict[str, np.ndarray],
                 explain: np.ndarray, loaded: LoadedModel, settings: Settings) -> list[Forecast]:
    """The forecast of each milestone from its features (columns aligned with ``ids``), with
    drivers for the rows ``explain``: past due, insufficient history, withheld (``withheld`` in the
    model's metadata), guarded or the model's."""
    n = len(ids)
    if not n:
        return []
    days_left, remaining, scope, history = (feats[c] for c in ("days_left", "remaining_count", "scope_count",
                                                                 "history_weeks"))
    answered = forecastable(feats, settings)
    inputs = loaded.inputs(feats)
    g = guard(loaded, feats["span_elapsed"], projects)
    held = [loaded.metadata.get("withheld", {}).get(h or "") for h in g.horizons]
    explain = np.asarray([i for i in explain.tolist() if answered[i] and not g.guarded[i] and held[i] is None],
                         dtype=np.intp)
    if len(explain):  # the explanation's variations ride along in the same prediction, for the model's own only
        variations = plan(loaded, inputs, explain)
        p = loaded.predict(loaded.frame({name: np.concatenate([inputs[name], variations.columns[name]])
                                         for name in inputs}))
        # each variation as the service would serve it: the base rate where its horizon is guarded
        varied = guard(loaded, variations.columns["span_elapsed"],
                       [projects[explain[i]] for i in variations.owner]).served(p[n:])
        why = dict(zip(explain.tolist(), explanations(loaded, inputs, variations, p[explain], varied,
                                                      settings.serving.top_drivers)))
    else:
        p, why = loaded.predict(loaded.frame(inputs)), {}
    ref = model_ref(loaded)
    out = []
    min_weeks = settings.features.min_history_weeks
    probabilities = g.served(p[:n])
    caveat = final_state_caveat(loaded)
    plain = plain_columns(inputs)
    for i in range(n):
        values = {name: column[i] for name, column in plain.items()}
        common = {"milestone_id": ids[i], "as_of": as_ofs[i], "features": values, "model": ref}
        if days_left[i] <= 0:
            out.append(Forecast(status=ForecastStatus.PAST_DUE, probability=None, risk_band=None,
                                message="; ".join([f"the due date has passed with {int(remaining[i])} committed "
                                                   "tickets still open", *caveat]), **common))
            continue
        if not answered[i]:
            why_not = ("nothing is committed to the milestone yet" if scope[i] == 0 else
                       f"the team has {history[i]:.1f} weeks of finished work; "
                       f"{min_weeks} are needed (send its recently resolved tickets)")
            out.append(Forecast(status=ForecastStatus.INSUFFICIENT_HISTORY, probability=None, risk_band=None,
                                message="; ".join([f"insufficient history: {why_not}", *caveat]), **common))
            continue
        withheld = held[i]
        if withheld is not None:
            out.append(Forecast(status=ForecastStatus.WITHHELD, probability=None, basis=Basis.WITHHELD,
                                risk_band=None, message="; ".join([withheld["reason"], *caveat]), **common))
            continue
        notes = list(caveat)
        if days_left[i] > 7 * settings.features.monte_carlo_max_weeks:
            notes.append(f"due beyond the {settings.features.monte_carlo_max_weeks}-week Monte Carlo horizon: "
                         "monte_carlo_on_time is the chance of finishing within it")
        cell = g.cells[i]
        if cell is not None:  # the model does not beat the base rate here: say so, serve it
            low, high = cell["interval"]
            notes.insert(0, f"the model does not beat the base rate {g.horizons[i]} in its backtest"
                            f"{' for ' + cell['project'] if 'project' in cell else ''} (Brier skill "
                            f"{cell['brier_skill']:+.3f}, 95 % interval {low:+.3f} to {high:+.3f}): this is the "
                            f"base rate ({g.rate_basis}); the model said {float(p[i]):.4f}")
        probability = float(probabilities[i])
        reason = why.get(i)
        out.append(Forecast(status=ForecastStatus.OK, probability=round(probability, 4), basis=g.basis(i),
                            risk_band=band(probability, settings.serving.risk_bands),
                            message="; ".join(notes) or None, **common,
                            **({} if reason is None else {
                                "drivers": reason.drivers, "factors": reason.factors, "reason": reason.reason,
                                "typical_probability": reason.typical_probability, "remainder": reason.remainder})))
    return out


def ticket_forecasts_of(tickets: dict[str, np.ndarray], projects: list[str], loaded: LoadedModel) -> list[TicketForecast]:
    """The forecast of each open ticket from its features (``snap``: the position of its
    milestone, whose project is in ``projects``): the ticket model's, or the base rate where
    the ticket model does not beat it at that horizon (the skill guard), or none, with the reason,
    where what would be served was neither calibrated nor skilful there, tested forward
    (``withheld`` in the model's metadata)."""
    p = loaded.predict(loaded.frame(tickets)) if len(tickets["ticket_id"]) else np.zeros(0)
    g = guard(loaded, tickets["span_elapsed"], [projects[snap] for snap in tickets["snap"]])
    held = loaded.metadata.get("withheld", {})
    out = []
    for i, (t, q) in enumerate(zip(tickets["ticket_id"], g.served(p))):
        cell = held.get(g.horizons[i] or "")
        if cell is not None:
            out.append(TicketForecast(ticket_id=t, probability=None, basis=Basis.WITHHELD, reason=cell["reason"]))
        else:
            out.append(TicketForecast(ticket_id=t, probability=round(float(q), 4), basis=g.basis(i)))
    return out
