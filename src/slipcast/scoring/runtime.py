"""Process-level tuning of a serving process: model threads and the garbage collector.

Both are measured choices (docs/architecture.md, Serving): a one-row gradient-boosting
prediction opens one OpenMP region per tree, which in a server thread costs a thread wake-up
each; and a large request creates objects by the hundred thousand, which at Python's default
collector thresholds costs as much in collections as in parsing.
"""

from __future__ import annotations

import gc
import os

from slipcast.core.settings import Settings


def limit_model_threads(settings: Settings) -> None:
    """OpenMP threads per prediction; OpenMP reads this when scikit-learn first loads it, so
    call it before (workers started afterwards inherit it)."""
    os.environ["OMP_NUM_THREADS"] = str(settings.serving.model_threads)


def tune_collector(settings: Settings) -> None:
    """Freeze what is loaded by now (it lives as long as the process) out of the collector's
    way, and collect young objects less often."""
    gc.freeze()
    gc.set_threshold(*settings.serving.gc_thresholds)
