"""The ledger under writers in several processes at once (workers of one service, a backfill
beside them): every forecast recorded once, none lost, each process told what it added."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from slipcast.live.ledger import Ledger
from slipcast.scoring.records import Forecast, ModelRef
from tests.helpers import POSTGRES, postgres_ledger

pytestmark = pytest.mark.slow  # spawns a process per writer
PROCESSES, MILESTONES, DAYS = 4, 30, 10


def _forecasts(offset: int) -> list[Forecast]:
    """Each process's forecasts: its own milestones and half of its neighbour's (shared keys)."""
    model = ModelRef(name="slipcast-milestone", version="1", run_id="r", candidate="logistic", source="registry")
    start = datetime(2026, 1, 5, tzinfo=UTC)
    ids = [f"M{(offset * MILESTONES // 2 + i) % (PROCESSES * MILESTONES // 2)}" for i in range(MILESTONES)]
    return [Forecast(milestone_id=m, as_of=start + timedelta(days=d), status="ok", probability=0.5, basis="model",
                     risk_band="medium", features={"x": float(d)}, model=model) for m in ids for d in range(DAYS)]


def _record(url: str, offset: int, barrier, counts) -> None:
    ledger = Ledger(url)
    forecasts = _forecasts(offset)
    barrier.wait()  # every process inserts at the same moment
    added = 0
    for lo in range(0, len(forecasts), 25):  # in chunks, as refreshes and backfills do, interleaving
        chunk = forecasts[lo:lo + 25]
        added += ledger.record(chunk, ["P"] * len(chunk), [None] * len(chunk))
    counts[offset] = added
    ledger.engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=POSTGRES)])
def test_writers_in_several_processes_record_each_forecast_once(dialect, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}" if dialect == "sqlite" else postgres_ledger()
    Ledger(url).engine.dispose()  # made before, as a service's first worker makes it
    ctx = multiprocessing.get_context("spawn")
    barrier, counts = ctx.Barrier(PROCESSES), ctx.Manager().dict()
    procs = [ctx.Process(target=_record, args=(url, i, barrier, counts)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES  # no writer failed (a locked database, a conflict)
    expected = {(f.milestone_id, f.as_of) for i in range(PROCESSES) for f in _forecasts(i)}
    rows = Ledger(url).forecasts()
    assert len(rows) == len(expected) == len({(r["milestone_id"], r["as_of"]) for r in rows})
    assert sum(counts.values()) == len(expected)  # each row counted by the one process that added it
