"""`slipcast replay`: the monitoring loop over a simulated history, against a model frozen at the start."""

from __future__ import annotations

import pandas as pd
import pytest

from slipcast.ingest.simulator import EPOCH, SimulationConfig, generate
from slipcast.monitoring.replay import replay, write_replay

# histories whose teams vary on their own and hold no programs, where the planted freeze alone moves
# the teams together (a shock every team meets would blur the change the loop must catch)
PLAIN = {"shared_shock": 0.0, "program_every_days": None}

pytestmark = pytest.mark.slow  # each replays months of weekly refits


def test_the_loop_retrains_when_its_forecasts_stop_coming_true_and_stays_better_calibrated(settings, tmp_path):
    tables = generate(SimulationConfig(projects=4, tickets=4000, seed=3, **PLAIN))
    start = pd.Timestamp(EPOCH) + pd.Timedelta(days=1400)
    loop = replay(settings, tables, start, every_days=14)
    frozen = replay(settings, tables, start, every_days=14, retrain=False)
    assert loop.retrains and not frozen.retrains
    for when, why in loop.retrains:  # judged on outcomes known by then, never fewer than the monitor asks
        assert when >= start and int(why.rsplit(" on ", 1)[1].split()[0]) >= settings.monitoring.min_outcomes
    assert len(loop.forecasts) == len(frozen.forecasts)  # the same milestones asked the same weeks
    later = loop.forecasts["as_of"].quantile(0.5)
    assert loop.ece_between(later) < frozen.ece_between(later)
    assert loop.overall["brier"] < frozen.overall["brier"]
    text = write_replay(loop, frozen, tmp_path)
    assert "with the loop" in text and "frozen at the start" in text and (tmp_path / "replay.md").exists()


def test_a_planted_change_of_behaviour_is_caught_retrained_for_and_recovered_from_and_none_without_it(settings):
    """From day 1150 every team freezes work in the last week before each due date and keeps
    planning as before (``SimulationConfig.freeze_from_day``): early in a milestone no feature
    sees it. The loop must break on it within a bounded number of weeks, retrain behind the
    champion guard, and be better calibrated afterwards than the model frozen at the start; the
    same history without the freeze must never retrain."""
    day = lambda d: pd.Timestamp(EPOCH) + pd.Timedelta(days=d)  # noqa: E731
    start, shift, until = day(1000), day(1150), day(1500)
    steady = replay(settings, generate(SimulationConfig(projects=12, tickets=8000, seed=3, **PLAIN)), start, until=until)
    assert not steady.retrains and not steady.drifts  # no threshold broken, not even by chance
    assert steady.forecasts["model_version"].eq(1).all()
    shifted = generate(SimulationConfig(projects=12, tickets=8000, seed=3, freeze_from_day=1150, **PLAIN))
    loop, frozen = replay(settings, shifted, start, until=until), replay(settings, shifted, start, until=until, retrain=False)
    assert loop.retrains, "the planted change was never caught"
    caught = loop.retrains[0][0]
    assert shift < caught <= shift + pd.Timedelta(weeks=30), caught
    assert all("ECE" in why for _, why in loop.retrains)
    # before the change both are the same model; from the retrain on, the loop recovers
    assert loop.ece_between(start, shift) == frozen.ece_between(start, shift)
    after = loop.ece_between(caught), frozen.ece_between(caught)
    print(f"planted freeze: caught {(caught - shift).days // 7} weeks after; ECE from then {after[0]:.3f} "
          f"with the loop, {after[1]:.3f} frozen")
    assert after[0] <= settings.monitoring.max_ece and after[0] < after[1] - 0.02


def test_on_a_larger_portfolio_the_planted_change_shows_as_feature_drift_within_weeks(settings):
    """The same freeze over 24 teams: its throughput pattern (weeks of nothing before each due
    date) moves ``throughput_cv`` beyond what as many teams show by chance, within weeks; the
    same portfolio without it never flags drift. (Over 12 teams the same move stays within
    chance: a dozen teams' twenty-odd open milestones move some feature that far by luck.)"""
    day = lambda d: pd.Timestamp(EPOCH) + pd.Timedelta(days=d)  # noqa: E731
    start, shift, until = day(1000), day(1150), day(1400)
    steady = replay(settings, generate(SimulationConfig(projects=24, tickets=16000, seed=3, **PLAIN)), start, until=until,
                    retrain=False)
    assert not steady.drifts
    shifted = replay(settings, generate(SimulationConfig(projects=24, tickets=16000, seed=3, freeze_from_day=1150, **PLAIN)),
                     start, until=until, retrain=False)
    assert shifted.drifts and all(t > shift for t, _ in shifted.drifts)
    first, why = shifted.drifts[0]
    print(f"planted freeze over 24 teams: drift flagged {(first - shift).days // 7} weeks after: {why}")
    assert first <= shift + pd.Timedelta(weeks=16) and "throughput" in why
