"""`slipcast replay`: the monitoring loop over a simulated history, against a model frozen at the start."""

from __future__ import annotations

import pandas as pd

from slipcast.features.synthetic import EPOCH, SimulationConfig, generate
from slipcast.monitoring.replay import replay, write_replay


def test_the_loop_retrains_when_its_forecasts_stop_coming_true_and_stays_better_calibrated(settings, tmp_path):
    tables = generate(SimulationConfig(projects=4, tickets=4000, seed=3))
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
