"""The champion lock: of two trainings that decide at once, one re-reads the champion and moves
the alias while the other waits (docs/architecture.md, "The champion"). Two processes contend
for it on purpose here; the end-to-end race is in test_training.py."""

from __future__ import annotations

import multiprocessing
import time

from slipcast.training.tracking import champion_lock
from tests.helpers import configured

HOLD = 1.0  # seconds the first holder stays inside


def _hold(settings, inside, log) -> None:
    with champion_lock(settings, "slipcast-milestone"):
        entered = time.monotonic()
        inside.set()
        time.sleep(HOLD)
        log.append(("first", entered, time.monotonic()))


def _contend(settings, log) -> None:
    with champion_lock(settings, "slipcast-milestone"):
        log.append(("second", time.monotonic(), time.monotonic()))


def test_a_second_training_waits_for_the_one_moving_the_alias(settings, tmp_path):
    s = configured(settings, tmp_path)
    ctx = multiprocessing.get_context("fork")
    inside, log = ctx.Event(), ctx.Manager().list()
    first = ctx.Process(target=_hold, args=(s, inside, log))
    first.start()
    assert inside.wait(30)
    second = ctx.Process(target=_contend, args=(s, log))  # asks while the first is inside
    second.start()
    first.join(30)
    second.join(30)
    assert first.exitcode == second.exitcode == 0
    (_, _, first_left), (_, second_entered, _) = sorted(log, key=lambda entry: entry[0])
    assert second_entered >= first_left  # never both inside
